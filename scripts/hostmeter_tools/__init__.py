"""hostmeter's Python tooling: the loopback test consumer, the chaos suite, the benchmark report,
the dashboard checker and the architecture check, with the helpers they share.

Modules:

* ``config``: the agent's YAML configuration written from a dict, every value quoted as JSON.
* ``agent``: ``AgentProcess``, a real ``hostmeter run`` in a process group of its own, its API port
  read from its ``API listening`` log line (the one way these tools learn it).
* ``consumer``: the loopback billing consumer with fault modes (``scripts/consumer.py`` runs it);
  ``consumer_process``: that consumer started as a child process, with its control API.
* ``processes``: process groups, bounded waits; ``httputil``: loopback HTTP clients.
* ``bench_proc``, ``bench_production``, ``bench_peers``, ``bench_targets``: the benchmark report's
  parts (/proc readings and wakeups; the side-by-side production runs, with 100 real VMs; the C
  floor of a host sample (``scripts/bench/host_reader.c``) and nginx beside ``/get``; the targets
  table of issue 18).
* ``chaos``, ``bench_report``, ``dashboards``, ``archcheck``: the programs (each ``python3 -m
  hostmeter_tools.NAME``; the old paths under ``scripts/`` still run them).

Only the standard library is needed, except the consumer's CloudEvents reader (``cloudevents``).
"""

from pathlib import Path

#: The package's folder, ``scripts/`` (put on ``sys.path`` to import the package), and the repository.
PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = PACKAGE_DIR.parent
REPO = SCRIPTS_DIR.parent
