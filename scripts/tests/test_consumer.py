"""The loopback consumer as the agent and the tests meet it: a real process on 127.0.0.1, driven
over HTTP, each fault mode seen from the client's side."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hostmeter_tools import SCRIPTS_DIR
from hostmeter_tools.consumer_process import ConsumerProcess


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerProcess]:
    process = ConsumerProcess(tmp_path_factory.mktemp("consumer"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def fresh(consumer: ConsumerProcess) -> None:
    reset = post(consumer.control, "/reset", {})
    assert reset == (200, {"reset": True, "mode": "ok"})


def request(port: int, method: str, path: str, body: Any = None, content_type: str = "application/json",
            headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        connection.request(method, path, body=data, headers={"Content-Type": content_type, **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None, response
    finally:
        connection.close()


def post(port: int, path: str, body: Any, **options: Any) -> tuple[int, Any]:
    status, doc, _ = request(port, "POST", path, body, **options)
    return status, doc


def events(*ids: str) -> list[dict[str, Any]]:
    return [{"event_id": event_id, "instance_id": "i", "metrics": {"cpu_seconds": 1}} for event_id in ids]


def test_events_are_stored_once_and_redeliveries_counted(consumer: ConsumerProcess) -> None:
    assert post(consumer.port, "/events", events("a", "b")) == (200, {"accepted": 2, "duplicates": 0})
    assert post(consumer.port, "/events", events("b", "c")) == (200, {"accepted": 1, "duplicates": 1})
    stats = consumer.stats()
    assert (stats["unique_events"], stats["deliveries"], stats["duplicates"], stats["conflicts"]) == (3, 4, 1, 0)
    assert sorted(event_id for event_id, *_ in consumer.received()) == ["a", "b", "c"]
    changed = events("a")
    changed[0]["metrics"]["cpu_seconds"] = 2
    post(consumer.port, "/events", changed)
    assert consumer.stats()["conflicts"] == 1


def test_bad_batches_are_refused_whole(consumer: ConsumerProcess) -> None:
    assert post(consumer.port, "/events", events("a"), content_type="text/plain")[0] == 415
    status, doc = post(consumer.port, "/events", [{"event_id": "ok"}, {"no_id": 1}])
    assert status == 400 and "event 1 has no event_id" in doc["error"]
    assert post(consumer.port, "/events", b"[NaN]")[0] == 400
    assert post(consumer.port, "/elsewhere", events("a"))[0] == 404
    assert request(consumer.port, "GET", "/events")[0] == 405
    assert consumer.stats()["unique_events"] == 0


def test_cloudevents_are_read_by_the_sdk(consumer: ConsumerProcess) -> None:
    event = {"event_id": "ce-1", "instance_id": "i"}
    cloudevent = {"specversion": "1.0", "id": "ce-1", "source": "hostmeter", "type": "usage", "subject": "i",
                  "time": "2026-12-03T10:00:00Z", "data": event}
    content_type = "application/cloudevents-batch+json"
    assert post(consumer.port, "/cloudevents", [cloudevent], content_type=content_type) == \
        (200, {"accepted": 1, "duplicates": 0})
    status, doc = post(consumer.port, "/cloudevents", [{**cloudevent, "time": "yesterday"}], content_type=content_type)
    assert status == 400 and "RFC 3339" in doc["error"]


def test_status_mode_answers_its_status_for_count_requests_then_ok(consumer: ConsumerProcess) -> None:
    mode = consumer.mode("status", status=503, retry_after="7", count=2)
    assert mode == {"mode": "status", "remaining": 2, "status": 503, "retry_after": "7"}
    for _ in range(2):
        status, doc, response = request(consumer.port, "POST", "/events", events("x"))
        assert (status, response.getheader("Retry-After")) == (503, "7")
    assert post(consumer.port, "/events", events("x")) == (200, {"accepted": 1, "duplicates": 0})
    assert consumer.stats()["by_status"] == {"200": 1, "503": 2}


def test_poison_refuses_a_batch_holding_the_event(consumer: ConsumerProcess) -> None:
    consumer.mode("poison", event_ids=["bad"])
    assert post(consumer.port, "/events", events("good", "bad")) == (400, {"error": "poison event bad"})
    assert post(consumer.port, "/events", events("good")) == (200, {"accepted": 1, "duplicates": 0})


def test_slow_answers_after_its_delay(consumer: ConsumerProcess) -> None:
    consumer.mode("slow", seconds=0.5, count=1)
    started = time.monotonic()
    assert post(consumer.port, "/events", events("s"))[0] == 200
    assert time.monotonic() - started >= 0.5


def test_hang_closes_without_an_answer(consumer: ConsumerProcess) -> None:
    consumer.mode("hang", seconds=0.3, count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        request(consumer.port, "POST", "/events", events("h"))
    assert consumer.stats()["unique_events"] == 0
    assert consumer.stats()["by_status"] == {"0": 1}


@pytest.mark.parametrize("reset", [True, False])
def test_cut_writes_a_partial_head_and_stores_nothing(consumer: ConsumerProcess, reset: bool) -> None:
    consumer.mode("cut", reset=reset, count=1)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        request(consumer.port, "POST", "/events", events("c"))
    assert consumer.stats()["unique_events"] == 0


def test_cut_after_store_stores_then_cuts(consumer: ConsumerProcess) -> None:
    consumer.mode("cut_after_store", reset=True, count=1)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        request(consumer.port, "POST", "/events", events("k"))
    assert consumer.stats()["unique_events"] == 1
    # The agent resends what it never heard about: a duplicate, not a second event.
    assert post(consumer.port, "/events", events("k")) == (200, {"accepted": 0, "duplicates": 1})


def test_refuse_closes_the_port_and_ok_reopens_the_same_one(consumer: ConsumerProcess) -> None:
    consumer.mode("refuse")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", consumer.port), timeout=5):
        pass
    assert consumer.stats()["mode"] == "refuse"  # the control port still answers
    consumer.mode("ok")
    assert post(consumer.port, "/events", events("r")) == (200, {"accepted": 1, "duplicates": 0})


def test_the_control_api_validates_modes(consumer: ConsumerProcess) -> None:
    for body in ({"mode": "explode"}, {"mode": "status", "status": 99}, {"mode": "hang", "seconds": 601},
                 {"mode": "poison", "event_ids": "x"}, {"mode": "ok", "count": 0}, []):
        assert post(consumer.control, "/mode", body)[0] == 400, body
    assert request(consumer.control, "GET", "/health")[1] == \
        {"ok": True, "port": consumer.port, "control_port": consumer.control}


def test_requests_are_recorded_with_their_headers(consumer: ConsumerProcess) -> None:
    post(consumer.port, "/events", events("q"), headers={"Idempotency-Key": "key-1", "Authorization": "Bearer t"})
    _, recorded, _ = request(consumer.control, "GET", "/requests")
    assert [(r["path"], r["status"], r["events"], r["idempotency_key"], r["authorization"]) for r in recorded] == \
        [("/events", 200, 1, "key-1", "Bearer t")]


def test_gzip_bodies_are_decoded_and_recorded_with_their_wire_size(consumer: ConsumerProcess) -> None:
    plain = json.dumps(events("g1", "g2")).encode()
    packed = gzip.compress(plain)
    assert post(consumer.port, "/events", packed, headers={"Content-Encoding": "gzip"}) == \
        (200, {"accepted": 2, "duplicates": 0})
    _, recorded, _ = request(consumer.control, "GET", "/requests")
    assert [(r["content_encoding"], r["body_bytes"]) for r in recorded] == [("gzip", len(packed))]


def test_bad_encodings_are_refused_and_store_nothing(consumer: ConsumerProcess) -> None:
    plain = json.dumps(events("b1")).encode()
    assert post(consumer.port, "/events", plain, headers={"Content-Encoding": "br"})[0] == 415
    status, doc = post(consumer.port, "/events", plain, headers={"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in doc["error"]
    cut = gzip.compress(plain)[:-6]
    assert post(consumer.port, "/events", cut, headers={"Content-Encoding": "gzip"})[0] == 400
    # 17 MiB of zeros packs into a few kB: the decoded size is held to the 16 MiB limit.
    bomb = gzip.compress(b"[" + b" " * (17 << 20) + b"]")
    status, doc = post(consumer.port, "/events", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "over the" in doc["error"]
    assert consumer.stats()["unique_events"] == 0


def test_cloudevents_subjects_are_recorded_in_order(consumer: ConsumerProcess) -> None:
    batch = [{"specversion": "1.0", "id": f"s-{n}", "source": "hostmeter", "type": "usage", "subject": subject,
              "time": "2026-12-03T10:00:00Z", "data": {"event_id": f"s-{n}"}}
             for n, subject in enumerate(["user-b", "user-a"])]
    assert post(consumer.port, "/cloudevents", batch, content_type="application/cloudevents-batch+json")[0] == 200
    _, recorded, _ = request(consumer.control, "GET", "/requests")
    assert [json.loads(r["subjects"]) for r in recorded] == [["user-b", "user-a"]]


def test_the_old_entry_path_runs_the_same_program() -> None:
    result = subprocess.run([sys.executable, str(SCRIPTS_DIR / "consumer.py"), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and "--port-file" in result.stdout
