"""The loopback consumer (``hostmeter_tools.consumer``) as a child process: ports from its port file,
fault modes and statistics over its control API, the stored events from its database."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from . import SCRIPTS_DIR
from .httputil import LOOPBACK, http_json
from .processes import Children, wait_until


class ConsumerStartError(RuntimeError):
    """The consumer exited at start or did not write its port file in time."""


def consumer_command(database: Path, port_file: Path) -> list[str]:
    """The command line that runs the consumer with this Python."""
    return [sys.executable, "-m", "hostmeter_tools.consumer", "--db", str(database), "--port-file", str(port_file),
            "--quiet"]


class ConsumerProcess:
    """``python3 -m hostmeter_tools.consumer`` in WORK (its database, port file and log there)."""

    def __init__(self, work: Path, *, children: Children | None = None, log: bool = True,
                 timeout: float = 15) -> None:
        """Starts the consumer and waits (at most ``timeout`` s) for its port file. With ``log`` its
        output goes to WORK/consumer.log, otherwise nowhere."""
        self.work = work
        self.database = work / "consumer.sqlite"
        self.children = children if children is not None else Children()
        port_file = work / "consumer-ports.json"
        self._log: IO[bytes] | None = open(work / "consumer.log", "wb") if log else None
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS_DIR), environment.get("PYTHONPATH")]))
        self.process = self.children.start(
            consumer_command(self.database, port_file), stdin=subprocess.DEVNULL,
            stdout=self._log if log else subprocess.DEVNULL, stderr=subprocess.STDOUT, env=environment)

        def written() -> bool:
            if self.process.poll() is not None:
                raise ConsumerStartError(f"the consumer exited {self.process.returncode} at start (see consumer.log)")
            return port_file.exists() and port_file.stat().st_size > 0

        try:
            if not wait_until(written, timeout):
                raise ConsumerStartError(f"the consumer did not write its port file within {timeout:.0f} s "
                                         "(see consumer.log)")
        except ConsumerStartError:
            self.stop()
            raise
        doc = json.loads(port_file.read_text())
        self.port: int = doc["port"]
        self.control: int = doc["control_port"]

    @property
    def url(self) -> str:
        """The ingest URL of ``POST /events``."""
        return f"http://{LOOPBACK}:{self.port}/events"

    def control_url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.control}{path}"

    def mode(self, mode: str, **parameters: Any) -> Any:
        """Sets a fault mode (``POST /mode``)."""
        return http_json(self.control_url("/mode"), {"mode": mode, **parameters})

    def stats(self) -> dict[str, Any]:
        return http_json(self.control_url("/stats"))

    def received(self) -> list[tuple[str, dict[str, Any], float, int]]:
        """(event_id, event, first_seen, deliveries) of every stored event, read from its database."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db:
            rows = db.execute("SELECT event_id, body, first_seen, deliveries FROM received").fetchall()
        return [(event_id, json.loads(body), first_seen, deliveries) for event_id, body, first_seen, deliveries in rows]

    def stop(self, grace: float = 10) -> None:
        """SIGTERM (the consumer closes its database), SIGKILL after ``grace`` s."""
        self.children.stop(self.process, grace)
        if self._log is not None:
            self._log.close()
            self._log = None
