"""A real ``hostmeter run`` as a child process: started in a process group of its own with a
configuration file, its stdout and stderr appended to a log file, stopped as a group.

The API port is learned one way only: the configuration listens on ``127.0.0.1:0`` and the agent
logs ``msg="API listening" … api.port=N`` once its listener is bound, so there is no window in
which another process could take a port picked in advance. (The Swift tests' launchers read the
same line.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from . import config as configuration
from .httputil import LOOPBACK, http_json
from .processes import Children, signal_group, stop_group, wait_until

#: The log line that names the bound API port.
API_LISTENING = re.compile(r'msg="API listening".*?api\.port=(\d+)')
#: The listen address that lets the kernel pick a free port.
LISTEN_ANY_PORT = f"{LOOPBACK}:0"


class AgentStartError(RuntimeError):
    """The agent exited while starting, or did not log its API port in time."""


def listening_port(log_text: str) -> int | None:
    """The port of the first ``API listening`` line in ``log_text``, or None."""
    match = API_LISTENING.search(log_text)
    return int(match.group(1)) if match else None


def agent_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment less every ``HOSTMETER_*`` variable (each would override a configuration
    key), with Swift's backtracer off (a crash report takes seconds and a killed agent is expected
    here), plus ``extra``."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HOSTMETER_")}
    environment["SWIFT_BACKTRACE"] = "enable=no"
    environment.update(extra or {})
    return environment


class AgentProcess:
    """One ``hostmeter run --config CONFIG`` at a time; ``start`` again after it ended."""

    def __init__(self, binary: Path | str, config: Path, log_path: Path, *, cwd: Path | None = None,
                 environment: dict[str, str] | None = None, children: Children | None = None,
                 via_env: bool = False) -> None:
        """``environment`` is added to ``agent_environment()``; with ``via_env`` the agent is started
        through ``/usr/bin/env`` (needed under libfaketime, see ``start``); ``children`` keeps the
        process in a caller's list so that its ``stop_all`` ends it too."""
        self.binary, self.config, self.log_path = Path(binary), Path(config), Path(log_path)
        self.cwd = cwd
        self.extra_environment = dict(environment or {})
        self.children = children if children is not None else Children()
        self.via_env = via_env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.pids: list[int] = []
        self._log_offset = 0

    @classmethod
    def with_config(cls, binary: Path | str, work: Path, document: dict[str, Any], **options: Any) -> AgentProcess:
        """An agent whose configuration ``document`` is written to WORK/hostmeter.yaml, logging to
        WORK/agent.log."""
        path = configuration.write(work / "hostmeter.yaml", document)
        return cls(binary, path, work / "agent.log", **options)

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60) -> int:
        """Starts the agent and waits (at most ``timeout`` s) for its API port, which it returns."""
        with open(self.log_path, "a") as f:
            f.write(f"--- start {self.starts + 1} at {time.time():.3f}\n")
            self._log_offset = f.tell()
        command = [str(self.binary), "run", "--config", str(self.config)]
        if self.via_env:
            # Started directly, hostmeter sees no arguments under libfaketime 0.9.10: the library's
            # constructor adds FAKETIME_SHARED to the environment with setenv, and Swift then no
            # longer finds argv. env(1) loads the library first, so the variable is already there
            # when it execs the agent (same pid).
            command.insert(0, "/usr/bin/env")
        with open(self.log_path, "ab") as log:
            self.process = self.children.start(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               env=agent_environment(self.extra_environment), cwd=self.cwd)
        self.pids.append(self.process.pid)
        self.starts += 1
        port = wait_until(self._listening_port, timeout)
        if not port:
            raise AgentStartError(f"agent start {self.starts} did not log its API port within {timeout:.0f} s:\n"
                                  f"{self.log_tail()}")
        self.port = port
        return port

    def _listening_port(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            status = self.process.returncode if self.process is not None else None
            raise AgentStartError(f"agent exited with {status} while starting:\n{self.log_tail()}")
        return listening_port(self.log_since_start())

    @property
    def pid(self) -> int:
        assert self.process is not None, "the agent is not running"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Sends ``signum`` to the agent itself (SIGHUP: reload)."""
        assert self.process is not None, "the agent is not running"
        self.process.send_signal(signum)

    def kill9(self) -> None:
        """SIGKILL to the agent's group, and reap it."""
        assert self.process is not None, "the agent is not running"
        signal_group(self.process, signal.SIGKILL)
        self.process.wait(10)
        self.children.forget(self.process)
        self.process = None

    def terminate(self, grace: float = 30) -> int:
        """SIGTERM, then SIGKILL after ``grace`` s; the exit status (-9 when it had to be killed)."""
        assert self.process is not None, "the agent is not running"
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(grace)
        except subprocess.TimeoutExpired:
            status = -9
        stop_group(self.process, grace=0)
        self.children.forget(self.process)
        return status

    def stop(self, grace: float = 10) -> int | None:
        """Stops the agent's group if it runs (``stop_group``); its exit status."""
        if self.process is None:
            return None
        status = stop_group(self.process, grace)
        self.children.forget(self.process)
        return status

    # ------------------------------------------------------------------ log and API

    def log_since_start(self) -> str:
        with open(self.log_path, errors="replace") as f:
            f.seek(self._log_offset)
            return f.read()

    def log_tail(self, lines: int = 30) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def get(self, path: str, timeout: float = 5) -> Any:
        """The JSON answer of GET ``path`` on the agent's API (error statuses' bodies too)."""
        return http_json(self.url(path), timeout=timeout)
