"""The agent launcher and the process-group helpers, against a small stand-in program that speaks
the agent's start-up protocol (logs its bound port, answers HTTP on it, has a child of its own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hostmeter_tools import agent, processes
from hostmeter_tools.agent import AgentProcess, AgentStartError

STAND_IN = textwrap.dedent('''\
    import http.server, json, os, signal, subprocess, sys, time
    assert sys.argv[1:3] == ["run", "--config"], sys.argv
    config = open(sys.argv[3]).read()
    if "exit" in config:
        sys.exit(3)
    if "silent" in config:
        time.sleep(30)
    child = subprocess.Popen(["sleep", "60"])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"config": config, "child": child.pid,
                               "environment": {k: v for k, v in os.environ.items()
                                               if k.startswith(("HOSTMETER_", "SWIFT_", "EXTRA"))}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print('ts=1 level=info msg="API listening" api.port=%d api.tls=off' % server.server_port,
          file=sys.stderr, flush=True)
    server.serve_forever()
''')


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "hostmeter"
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


def gone(pid: int) -> bool:
    state = processes.process_state(pid)
    return state is None or state == "Z"


def test_the_port_comes_from_the_log_line() -> None:
    line = 'ts=2026-12-03T10:00:00Z level=info msg="API listening" api.port=43117 api.tls=off\n'
    assert agent.listening_port("other line\n" + line) == 43117
    assert agent.listening_port('msg="API listening soon"\n') is None


def test_start_learns_the_port_and_the_api_answers(binary: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTMETER_SINK_URL", "http://elsewhere")
    launched = AgentProcess.with_config(binary, tmp_path, {"host_id": "t", "api": {"listen": agent.LISTEN_ANY_PORT}},
                                        environment={"EXTRA": "1"})
    try:
        port = launched.start(timeout=30)
        assert port == launched.port and port > 0
        answer = launched.get("/health")
        assert answer["config"] == 'host_id: "t"\napi:\n  listen: "127.0.0.1:0"\n'
        # No HOSTMETER_* override leaks in from our environment.
        assert answer["environment"] == {"SWIFT_BACKTRACE": "enable=no", "EXTRA": "1"}
        assert os.getpgid(launched.pid) == launched.pid
        assert launched.terminate(grace=10) == 0
    finally:
        launched.stop()


def test_kill9_ends_the_whole_group_and_it_starts_again(binary: Path, tmp_path: Path) -> None:
    launched = AgentProcess.with_config(binary, tmp_path, {"host_id": "t"})
    try:
        launched.start(timeout=30)
        child = launched.get("/health")["child"]
        launched.kill9()
        assert processes.wait_until(lambda: gone(child), 5)
        assert not launched.alive()
        launched.start(timeout=30)
        assert launched.starts == 2 and len(launched.pids) == 2
        assert launched.log_since_start().count("API listening") == 1
    finally:
        launched.stop()


def test_an_agent_that_exits_while_starting_is_an_error(binary: Path, tmp_path: Path) -> None:
    launched = AgentProcess.with_config(binary, tmp_path, {"mode": "exit"})
    with pytest.raises(AgentStartError, match="exited with 3 while starting"):
        launched.start(timeout=30)


def test_an_agent_that_never_logs_its_port_is_an_error(binary: Path, tmp_path: Path) -> None:
    launched = AgentProcess.with_config(binary, tmp_path, {"mode": "silent"})
    try:
        with pytest.raises(AgentStartError, match="did not log its API port within 1 s"):
            launched.start(timeout=1)
    finally:
        launched.stop(grace=1)
    assert not launched.alive()


def test_stop_group_ends_a_child_that_ignores_sigterm() -> None:
    children = processes.Children()
    script = "trap '' TERM; sleep 60 & echo $!; wait"
    leader = children.start(["/bin/sh", "-c", script], stdout=subprocess.PIPE, text=True)
    grandchild = int(leader.stdout.readline())
    started = time.monotonic()
    children.stop(leader, grace=0.5)
    assert processes.wait_until(lambda: gone(grandchild), 5)
    assert time.monotonic() - started < 10 and children.processes == []
    leader.stdout.close()


def test_stop_all_ends_every_child() -> None:
    children = processes.Children()
    started = [children.start(["sleep", "60"]) for _ in range(3)]
    children.stop_all()
    assert all(process.returncode == -signal.SIGTERM for process in started) and children.processes == []


def test_run_json_returns_the_document_and_bounds_the_time() -> None:
    children = processes.Children()
    assert children.run_json([sys.executable, "-c", "print('{\"a\": 1}')"], 30) == {"a": 1}
    with pytest.raises(RuntimeError, match="ran past 1 s"):
        children.run_json(["sleep", "30"], 1)
    with pytest.raises(RuntimeError, match="exited 2"):
        children.run_json([sys.executable, "-c", "raise SystemExit(2)"], 30)
    assert children.processes == []


def test_wait_until_returns_the_last_value_within_its_bound() -> None:
    values = iter([0, 0, 5])
    assert processes.wait_until(lambda: next(values), 5, 0.01) == 5
    started = time.monotonic()
    assert processes.wait_until(lambda: None, 0.2, 0.05) is None
    assert time.monotonic() - started < 2
