"""Child processes in process groups of their own, and bounded waits.

Every child is started in a new session (so its pid is its process group's id) and stopped as a
group: SIGTERM, a grace period, then SIGKILL for anything left in the group (a benchmark's helper
children, a shell's subprocess). Every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], seconds: float, step: float = 0.1) -> Any:
    """Polls ``condition`` until it returns something truthy or ``seconds`` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, T, Z, …), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    """Sends ``signum`` to the process group ``process`` leads; nothing if it is already gone."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(process: subprocess.Popen[Any], grace: float = 10) -> int | None:
    """SIGTERM to the group, up to ``grace`` seconds for the leader to exit, then SIGKILL to whatever is
    left of the group. Returns the leader's exit status (negative for a signal), None if it outlived
    even SIGKILL's 5 s."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Anything left in its group goes too, leader or not.
    signal_group(process, signal.SIGKILL)
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


class Children:
    """Every process a program starts, each in its own session, all stopped at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[Any]] = []

    def start(self, arguments: list[str], **options: Any) -> subprocess.Popen[Any]:
        """Starts ``arguments`` in a new session (its own process group) and keeps it for stop_all."""
        process = subprocess.Popen(arguments, start_new_session=True, **options)
        self.processes.append(process)
        return process

    def forget(self, process: subprocess.Popen[Any]) -> None:
        """Drops a process that has ended from the list."""
        if process in self.processes:
            self.processes.remove(process)

    def stop(self, process: subprocess.Popen[Any], grace: float = 10) -> int | None:
        """Stops ``process``'s group (``stop_group``) and forgets it."""
        status = stop_group(process, grace)
        self.forget(process)
        return status

    def stop_all(self) -> None:
        """Stops every process still kept, newest first."""
        for process in reversed(list(self.processes)):
            self.stop(process, grace=3)

    def run_json(self, arguments: list[str], timeout: float, environment: dict[str, str] | None = None) -> Any:
        """Runs a command that prints one JSON document; its stderr goes to ours."""
        process = self.start(arguments, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=environment)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process, grace=1)
            raise RuntimeError(f"{' '.join(arguments)} ran past {timeout:.0f} s") from None
        finally:
            if process.poll() is not None:
                self.forget(process)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments)} exited {process.returncode}")
        return json.loads(output)
