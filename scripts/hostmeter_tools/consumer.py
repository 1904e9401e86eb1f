"""A test billing consumer for hostmeter: receives usage events over loopback HTTP.

hostmeter's tests and chaos runs ship `UsageEvent` batches to this program. It
stores every event once (deduplicated by ``event_id``) in SQLite, counts repeated
deliveries, records every ingest request, and can be told over a separate control
port to misbehave (error statuses, hangs, cut connections, poison events, a closed
port) so that the agent's shipper can be tested against a realistic, unreliable
consumer.

Command line (``scripts/consumer.py`` is the same program at the path the Swift tests use;
``consumer_process.ConsumerProcess`` starts it from Python)::

    python3 -m hostmeter_tools.consumer --db PATH [--port N] [--control-port N] [--port-file F] [--quiet]

Main (ingest) port, 127.0.0.1 only:

* ``POST /events``       Content-Type ``application/json``: a JSON array of
  objects, each with a non-empty string ``event_id``.
* ``POST /cloudevents``  Content-Type ``application/cloudevents-batch+json``: a
  JSON array of structured-mode CloudEvents 1.0 whose ``data`` is the event.

A body may be sent with ``Content-Encoding: gzip``; it is decoded (at most 16 MiB
decoded) before it is read. Answers: 200 ``{"accepted": n, "duplicates": m}``;
400 ``{"error": ...}`` for a body that is not a valid batch or not valid gzip
(nothing of it is stored); 415 for a wrong Content-Type or another encoding;
404 for another path; 405 for another method on an ingest path; 413 for a body
over 16 MiB. Every response closes the connection. Every request
on this port is recorded in the ``requests`` table; ``status`` is 0 when the
connection was closed without a complete response (hang, cut, cut_after_store).

Control port, 127.0.0.1 only (works while the main port is closed):

* ``POST /mode`` ``{"mode": M, "count": K, ...}``: K (positive integer, absent =
  unlimited) ingest requests (POSTs to an ingest path with a body within the
  limit) get mode M, then the mode returns to "ok". Modes and their parameters:
  ``ok``; ``status`` (``status`` default 500, ``retry_after`` string sent verbatim);
  ``hang`` (``seconds`` default 30, max 600: read, sleep, close without answer);
  ``slow`` (``seconds`` default 1, max 600: sleep, then normal); ``cut`` and
  ``cut_after_store`` (``reset`` default true: RST, false: FIN; write a partial
  head and close; the second stores the events first); ``poison``
  (``event_ids``: list; a batch holding one gets 400 ``poison event <id>``);
  ``refuse`` (close the main port; any other mode re-opens it on the same port;
  ``count`` is ignored). Answers 200 with the mode as ``GET /mode`` shows it.
* ``GET /mode``: ``{"mode": M, "remaining": K|null, ...parameters}``.
* ``GET /stats``: ``{"requests", "by_status", "unique_events", "deliveries",
  "duplicates", "conflicts", "mode"}``; ``conflicts`` counts redeliveries whose
  body differed from the stored one (kept in memory, cleared by reset).
* ``GET /events``: the stored event bodies, oldest first.
* ``GET /requests``: the ``requests`` table as a JSON array, oldest first (with each
  request's ``content_encoding``, ``body_bytes`` on the wire and, for CloudEvents, ``subjects``).
* ``POST /reset``: empty both tables, zero the counters, mode "ok".
* ``GET /health``: ``{"ok": true, "port": P, "control_port": C}``.

Only the standard library and the PyPI package ``cloudevents`` are used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import socketserver
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

LOG = logging.getLogger("consumer")

HOST = "127.0.0.1"
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Oversized bodies up to this size are read and discarded before the 413 is sent,
#: so the client sees the answer instead of a connection reset.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024
MAX_CHUNK_LINE = 4096
MAX_TRAILER_LINES = 100
SOCKET_TIMEOUT_S = 60.0
MAX_FAULT_SECONDS = 600.0
DEFAULT_HANG_SECONDS = 30.0
DEFAULT_SLOW_SECONDS = 1.0
REOPEN_ATTEMPTS = 50
REOPEN_DELAY_S = 0.1
SERVE_POLL_S = 0.05

EVENTS_PATH = "/events"
CLOUDEVENTS_PATH = "/cloudevents"
EVENTS_CONTENT_TYPE = "application/json"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents-batch+json"

#: Status recorded in ``requests`` when the connection was closed without a
#: complete response (modes "hang", "cut", "cut_after_store").
NO_RESPONSE_STATUS = 0
#: Body length promised by the partial head that the "cut" modes write.
CUT_PROMISED_BYTES = 64

MODES = ("ok", "status", "hang", "slow", "cut", "cut_after_store", "poison", "refuse")

RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS received(
    event_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    first_seen REAL NOT NULL,
    deliveries INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests(
    id INTEGER PRIMARY KEY,
    at REAL,
    path TEXT,
    status INTEGER,
    events INTEGER,
    idempotency_key TEXT,
    content_type TEXT,
    authorization TEXT,
    content_encoding TEXT,
    body_bytes INTEGER,
    subjects TEXT
);
"""


# --------------------------------------------------------------------------- errors


class RequestError(Exception):
    """A request the consumer rejects; carries the HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------- CloudEvents SDK


def _make_sdk_reader() -> tuple[str, Callable[[dict[str, Any]], tuple[str, Any]]]:
    """Return (description, reader) for the installed ``cloudevents`` SDK.

    The reader takes one structured-mode CloudEvent as a dict and returns the
    event's id and data as the SDK read them, raising on anything the SDK rejects.
    cloudevents 2.x offers ``cloudevents.core.formats.json.JSONFormat``; 1.x offers
    ``cloudevents.http.from_dict``.
    """
    try:
        from cloudevents.core.formats.json import JSONFormat
        from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
    except ImportError:
        from cloudevents.http import from_dict  # cloudevents 1.x

        def read_v1(raw: dict[str, Any]) -> tuple[str, Any]:
            event = from_dict(dict(raw))
            return event["id"], event.data

        return "cloudevents.http.from_dict", read_v1

    fmt = JSONFormat()

    def read_core(raw: dict[str, Any]) -> tuple[str, Any]:
        event = fmt.read(CoreCloudEvent, json.dumps(raw).encode("utf-8"))
        return event.get_id(), event.get_data()

    return "cloudevents.core.formats.json.JSONFormat().read", read_core


# ------------------------------------------------------------------- validation


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(body: bytes) -> Any:
    """Parse a request body as strict JSON, raising RequestError(400) if it is not."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}") from None


def describe_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_usage_batch(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    """Check a ``/events`` batch; return (event_id, event) pairs or raise 400."""
    if not isinstance(doc, list):
        raise RequestError(400, f"body must be a JSON array of events, got {describe_type(doc)}")
    out: list[tuple[str, dict[str, Any]]] = []
    for index, event in enumerate(doc):
        if not isinstance(event, dict):
            raise RequestError(400, f"event {index} is not a JSON object (got {describe_type(event)})")
        event_id = event.get("event_id")
        if "event_id" not in event:
            raise RequestError(400, f"event {index} has no event_id")
        if not isinstance(event_id, str):
            raise RequestError(
                400, f"event {index}: event_id must be a string, got {describe_type(event_id)}"
            )
        if not event_id:
            raise RequestError(400, f"event {index}: event_id is empty")
        out.append((event_id, event))
    return out


def check_rfc3339(value: Any) -> str | None:
    """Return None if ``value`` is an RFC 3339 date-time string, else the problem."""
    if not isinstance(value, str):
        return f"must be an RFC 3339 string, got {describe_type(value)}"
    if not RFC3339_RE.match(value):
        return f"{value!r} is not an RFC 3339 date-time"
    normalized = value.upper().replace("Z", "+00:00")
    try:
        datetime.fromisoformat(normalized)
    except ValueError as exc:
        return f"{value!r} is not a valid date-time: {exc}"
    return None


def decode_content(body: bytes, encoding: str | None) -> bytes:
    """Undo a request's ``Content-Encoding``: none (or ``identity``) or ``gzip``.

    The decoded body is held to MAX_BODY_BYTES like a plain one (413), so a small
    compressed body cannot expand without bound; a body that is not gzip, or is cut
    short, is a 400; another encoding a 415.
    """
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body
    if name != "gzip":
        raise RequestError(415, f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        decoded = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise RequestError(400, f"gzip body does not decode: {exc}") from None
    if len(decoded) > MAX_BODY_BYTES:
        raise RequestError(413, f"gzip body decodes to over the {MAX_BODY_BYTES} byte limit")
    if not inflater.eof or inflater.unused_data:
        raise RequestError(400, "gzip body is cut short or has bytes after its end")
    return decoded


def validate_cloudevents_batch(
    doc: Any, sdk_read: Callable[[dict[str, Any]], tuple[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """Check a ``/cloudevents`` batch; return (id, data) pairs or raise 400.

    Every event is checked here against hostmeter's requirements and read by the
    cloudevents SDK as an independent reader; the id and data stored are the ones
    the SDK returned.
    """
    if not isinstance(doc, list):
        raise RequestError(
            400, f"body must be a JSON array of CloudEvents, got {describe_type(doc)}"
        )
    out: list[tuple[str, dict[str, Any]]] = []
    for index, ce in enumerate(doc):
        where = f"cloudevent {index}"
        if not isinstance(ce, dict):
            raise RequestError(400, f"{where} is not a JSON object (got {describe_type(ce)})")
        if ce.get("specversion") != "1.0":
            if "specversion" not in ce:
                raise RequestError(400, f"{where}: missing specversion")
            raise RequestError(400, f"{where}: specversion must be \"1.0\", got {ce['specversion']!r}")
        for attr in ("id", "source", "type", "subject"):
            if attr not in ce:
                raise RequestError(400, f"{where}: missing {attr}")
            if not isinstance(ce[attr], str):
                raise RequestError(
                    400, f"{where}: {attr} must be a string, got {describe_type(ce[attr])}"
                )
            if not ce[attr]:
                raise RequestError(400, f"{where}: {attr} is empty")
        where = f"cloudevent {index} (id {ce['id']!r})"
        if "time" not in ce:
            raise RequestError(400, f"{where}: missing time")
        problem = check_rfc3339(ce["time"])
        if problem:
            raise RequestError(400, f"{where}: time {problem}")
        if "data" not in ce:
            raise RequestError(400, f"{where}: missing data")
        if not isinstance(ce["data"], dict):
            raise RequestError(
                400, f"{where}: data must be a JSON object, got {describe_type(ce['data'])}"
            )
        if ce["data"].get("event_id") != ce["id"]:
            raise RequestError(
                400,
                f"{where}: data.event_id {ce['data'].get('event_id')!r} does not equal the id",
            )
        try:
            sdk_id, sdk_data = sdk_read(ce)
        except Exception as exc:  # noqa: BLE001 - the SDK raises several unrelated types
            raise RequestError(400, f"{where}: rejected by the cloudevents SDK: {exc}") from None
        if sdk_id != ce["id"] or not isinstance(sdk_data, dict):
            raise RequestError(
                400, f"{where}: the cloudevents SDK read id {sdk_id!r} and data of another shape"
            )
        out.append((sdk_id, sdk_data))
    return out


def media_type(header: str | None) -> str:
    """Return the lower-cased media type of a Content-Type header, without parameters."""
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


# ------------------------------------------------------------------ fault modes


@dataclass
class FaultMode:
    """The current fault mode and its parameters, as set with ``POST /mode``."""

    name: str = "ok"
    remaining: int | None = None  # ingest requests left before returning to "ok"
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    event_ids: frozenset[str] = field(default_factory=frozenset)
    reset: bool = True  # "cut" modes: close with RST (True) or FIN (False)

    def describe(self) -> dict[str, Any]:
        """The mode as JSON for the control API."""
        out: dict[str, Any] = {"mode": self.name, "remaining": self.remaining}
        if self.name == "status":
            out["status"] = self.status
            out["retry_after"] = self.retry_after
        elif self.name in ("hang", "slow"):
            out["seconds"] = self.seconds
        elif self.name == "poison":
            out["event_ids"] = sorted(self.event_ids)
        elif self.name in ("cut", "cut_after_store"):
            out["reset"] = self.reset
        return out

    @classmethod
    def from_request(cls, doc: Any) -> FaultMode:
        """Build a mode from a ``POST /mode`` body, raising RequestError(400) if invalid."""
        if not isinstance(doc, dict):
            raise RequestError(400, "body must be a JSON object")
        name = doc.get("mode")
        if name not in MODES:
            raise RequestError(400, f"mode must be one of {', '.join(MODES)}; got {name!r}")
        mode = cls(name=name)
        count = doc.get("count")
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise RequestError(400, "count must be a positive integer (or absent for unlimited)")
            if name not in ("ok", "refuse"):
                mode.remaining = count
        if name == "status":
            status = doc.get("status", 500)
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise RequestError(400, "status must be an integer HTTP status 100-599")
            mode.status = status
            retry_after = doc.get("retry_after")
            if retry_after is not None:
                if isinstance(retry_after, bool) or not isinstance(retry_after, (str, int)):
                    raise RequestError(400, "retry_after must be a string (or an integer)")
                retry_after = str(retry_after)
                if "\r" in retry_after or "\n" in retry_after:
                    raise RequestError(400, "retry_after must not contain line breaks")
            mode.retry_after = retry_after
        if name in ("hang", "slow"):
            default = DEFAULT_HANG_SECONDS if name == "hang" else DEFAULT_SLOW_SECONDS
            seconds = doc.get("seconds", default)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise RequestError(400, "seconds must be a number")
            if not 0 <= seconds <= MAX_FAULT_SECONDS:
                raise RequestError(400, f"seconds must be between 0 and {MAX_FAULT_SECONDS:g}")
            mode.seconds = float(seconds)
        if name == "poison":
            ids = doc.get("event_ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise RequestError(400, "event_ids must be a list of strings")
            mode.event_ids = frozenset(ids)
        if name in ("cut", "cut_after_store"):
            reset = doc.get("reset", True)
            if not isinstance(reset, bool):
                raise RequestError(400, "reset must be a boolean")
            mode.reset = reset
        return mode


# ---------------------------------------------------------------------- servers


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that skips the reverse DNS lookup in server_bind."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], consumer: Consumer):
        self.consumer = consumer
        super().__init__((HOST, port), handler)

    def server_bind(self) -> None:
        """Bind without socket.getfqdn, which may block on DNS."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log unexpected handler errors; ignore clients that went away."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        LOG.exception("error while handling a request from %s", client_address)


class Consumer:
    """The one object holding all mutable state: database, fault mode, listeners.

    ``_lock`` guards the database connection, the fault mode and the counters;
    ``_listener_lock`` serialises opening and closing the main listening socket
    and is always taken before ``_lock``.
    """

    def __init__(self, db_path: str) -> None:
        self._lock = threading.Lock()
        self._listener_lock = threading.Lock()
        self._stopping = threading.Event()
        self._mode = FaultMode()
        self._conflicts = 0
        self._closed = False
        self.sdk_name, self._sdk_read = _make_sdk_reader()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self.port = 0
        self.control_port = 0
        self._main: LoopbackHTTPServer | None = None
        self._main_thread: threading.Thread | None = None
        # While refusing: the port stays bound (without listen, so connections are refused) and
        # no other process on the machine can be given it in the meantime.
        self._placeholder: socket.socket | None = None
        self._control: LoopbackHTTPServer | None = None
        self._control_thread: threading.Thread | None = None

    # ----------------------------------------------------------- lifecycle

    def start(self, port: int, control_port: int) -> None:
        """Open both listeners and start serving them in background threads."""
        with self._listener_lock:
            self._open_main(port)
        self._control = LoopbackHTTPServer(control_port, ControlHandler, self)
        self.control_port = self._control.server_address[1]
        self._control_thread = threading.Thread(
            target=self._control.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_S},
            name="control",
            daemon=True,
        )
        self._control_thread.start()

    def _open_main(self, port: int) -> None:
        """Bind and serve the main port; caller holds ``_listener_lock``."""
        server = LoopbackHTTPServer(port, IngestHandler, self)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_S},
            name=f"ingest-{self.port}",
            daemon=True,
        )
        thread.start()
        self._main, self._main_thread = server, thread

    def _close_main(self) -> None:
        """Stop serving and close the main listening socket; caller holds ``_listener_lock``."""
        server, thread = self._main, self._main_thread
        self._main = self._main_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def _hold_port(self) -> None:
        """Keep the closed main port bound, not listening; caller holds ``_listener_lock``."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind((HOST, self.port))
        except OSError:
            holder.close()
            return
        self._placeholder = holder

    def _release_port(self) -> None:
        """Let go of the held port just before re-opening it; caller holds ``_listener_lock``."""
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    def _reopen_main(self) -> None:
        """Re-open the main port on the same port number, retrying a bounded number of times."""
        last: OSError | None = None
        for _ in range(REOPEN_ATTEMPTS):
            try:
                self._open_main(self.port)
                return
            except OSError as exc:
                last = exc
                time.sleep(REOPEN_DELAY_S)
        raise RequestError(500, f"could not re-open port {self.port}: {last}")

    def request_stop(self) -> None:
        """Ask the consumer to stop (safe to call from a signal handler)."""
        self._stopping.set()

    def wait_for_stop(self) -> None:
        """Block until request_stop is called."""
        self._stopping.wait()

    def sleep(self, seconds: float) -> None:
        """Sleep for a fault, waking early if the consumer is stopping."""
        self._stopping.wait(seconds)

    def close(self) -> None:
        """Stop both listeners and close the database."""
        self._stopping.set()
        with self._listener_lock:
            self._close_main()
            self._release_port()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
        if self._control_thread is not None:
            self._control_thread.join(timeout=5)
        with self._lock:
            self._closed = True
            self._db.close()

    # --------------------------------------------------------------- modes

    def set_mode(self, mode: FaultMode) -> dict[str, Any]:
        """Switch to ``mode``, closing or re-opening the main port as needed."""
        with self._listener_lock:
            listening = self._main is not None
            if mode.name == "refuse" and listening:
                self._close_main()
                self._hold_port()
            elif mode.name != "refuse" and not listening:
                self._release_port()
                self._reopen_main()
            with self._lock:
                self._mode = mode
                return mode.describe()

    def current_mode(self) -> dict[str, Any]:
        """The current mode as JSON."""
        with self._lock:
            return self._mode.describe()

    def take_mode(self) -> FaultMode:
        """Return the mode that applies to one ingest request, counting it down."""
        with self._lock:
            mode = self._mode
            if mode.remaining is not None:
                mode.remaining -= 1
                if mode.remaining <= 0:
                    self._mode = FaultMode()
            return mode

    def reset(self) -> None:
        """Clear both tables and the counters, and go back to mode "ok"."""
        self.set_mode(FaultMode())
        with self._lock:
            self._check_open()
            self._conflicts = 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM received")
                self._db.execute("DELETE FROM requests")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------ database

    def _check_open(self) -> None:
        if self._closed:
            raise RequestError(503, "consumer is shutting down")

    def record(
        self,
        info: dict[str, Any],
        status: int,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        event_count: int | None = None,
    ) -> tuple[int, int]:
        """Record one request and, if ``events`` is given, store them deduplicated.

        Both happen in one transaction. Returns (accepted, duplicates).
        """
        accepted = duplicates = 0
        if events is not None:
            event_count = len(events)
        with self._lock:
            self._check_open()
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for event_id, body in events or ():
                    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO received(event_id, body, first_seen, deliveries)"
                        " VALUES (?, ?, ?, 1)",
                        (event_id, text, now),
                    )
                    if cur.rowcount == 1:
                        accepted += 1
                        continue
                    duplicates += 1
                    self._db.execute(
                        "UPDATE received SET deliveries = deliveries + 1 WHERE event_id = ?",
                        (event_id,),
                    )
                    (stored,) = self._db.execute(
                        "SELECT body FROM received WHERE event_id = ?", (event_id,)
                    ).fetchone()
                    if json.loads(stored) != body:
                        self._conflicts += 1
                        LOG.warning("event %s redelivered with a different body", event_id)
                self._db.execute(
                    "INSERT INTO requests(at, path, status, events, idempotency_key,"
                    " content_type, authorization, content_encoding, body_bytes, subjects)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        now,
                        info["path"],
                        status,
                        event_count,
                        info["idempotency_key"],
                        info["content_type"],
                        info["authorization"],
                        info.get("content_encoding"),
                        info.get("body_bytes"),
                        info.get("subjects"),
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return accepted, duplicates

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /stats``."""
        with self._lock:
            self._check_open()
            (requests,) = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()
            by_status = {
                str(status): n
                for status, n in self._db.execute(
                    "SELECT status, COUNT(*) FROM requests GROUP BY status ORDER BY status"
                )
            }
            unique, deliveries = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(deliveries), 0) FROM received"
            ).fetchone()
            return {
                "requests": requests,
                "by_status": by_status,
                "unique_events": unique,
                "deliveries": deliveries,
                "duplicates": deliveries - unique,
                "conflicts": self._conflicts,
                "mode": self._mode.name,
            }

    def events(self) -> list[Any]:
        """Stored event bodies, parsed, in order of first arrival."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT body FROM received ORDER BY first_seen, rowid"
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def requests(self) -> list[dict[str, Any]]:
        """Recorded ingest requests, oldest first."""
        with self._lock:
            self._check_open()
            cur = self._db.execute(
                "SELECT id, at, path, status, events, idempotency_key, content_type,"
                " authorization, content_encoding, body_bytes, subjects FROM requests ORDER BY id"
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def sdk_read(self, raw: dict[str, Any]) -> tuple[str, Any]:
        """Read one CloudEvent with the SDK."""
        return self._sdk_read(raw)


# --------------------------------------------------------------------- handlers


class JSONHandler(BaseHTTPRequestHandler):
    """Common parts of both handlers: bounded body reading and JSON answers.

    Every response carries ``Connection: close``, so each request has its own
    connection; this keeps "refuse", "hang" and "cut" simple and exact.
    """

    protocol_version = "HTTP/1.1"
    server_version = "hostmeter-test-consumer/1.0"
    timeout = SOCKET_TIMEOUT_S
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        """Send the access log to the logger instead of raw stderr."""
        LOG.info("%s %s", self.server.server_port, format % args)

    def send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        """Write a complete JSON response and mark the connection for closing."""
        body = json.dumps(doc).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _drain(self, length: int) -> None:
        """Read and discard ``length`` body bytes (bounded by MAX_DRAIN_BYTES)."""
        left = min(length, MAX_DRAIN_BYTES)
        for _ in range(left // READ_CHUNK + 1):
            if left <= 0:
                break
            chunk = self.rfile.read(min(READ_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)

    def read_body(self) -> bytes:
        """Read the request body, raising RequestError(413/400) if too big or malformed."""
        encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if encoding:
            if encoding != "chunked":
                raise RequestError(400, f"unsupported Transfer-Encoding {encoding!r}")
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length.strip())
        except ValueError:
            raise RequestError(400, f"invalid Content-Length {raw_length!r}") from None
        if length < 0:
            raise RequestError(400, f"invalid Content-Length {raw_length!r}")
        if length > MAX_BODY_BYTES:
            self._drain(length)
            raise RequestError(413, f"body of {length} bytes is over the {MAX_BODY_BYTES} byte limit")
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self) -> bytes:
        """Read a chunked body; each non-final chunk holds at least one byte, so the
        loop runs at most MAX_BODY_BYTES + 1 times."""
        parts: list[bytes] = []
        total = 0
        for _ in range(MAX_BODY_BYTES + 1):
            line = self.rfile.readline(MAX_CHUNK_LINE)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise RequestError(400, "malformed chunked body") from None
            if size == 0:
                break
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                raise RequestError(413, f"chunked body is over the {MAX_BODY_BYTES} byte limit")
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.read(2) != b"\r\n":
                raise RequestError(400, "malformed chunked body")
            parts.append(data)
        else:
            raise RequestError(413, "chunked body has too many chunks")
        for _ in range(MAX_TRAILER_LINES):
            if self.rfile.readline(MAX_CHUNK_LINE) in (b"\r\n", b"\n", b""):
                break
        return b"".join(parts)


class IngestHandler(JSONHandler):
    """The main port: ``POST /events`` and ``POST /cloudevents``, under the fault mode."""

    def _info(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "content_type": self.headers.get("Content-Type"),
            "authorization": self.headers.get("Authorization"),
            "content_encoding": self.headers.get("Content-Encoding"),
        }

    def handle_expect_100(self) -> bool:
        """Answer 413 before the body is sent when the announced length is too big."""
        try:
            length = int((self.headers.get("Content-Length") or "0").strip())
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            message = f"body of {length} bytes is over the {MAX_BODY_BYTES} byte limit"
            self._answer(self._info(), 413, {"error": message})
            return False
        return super().handle_expect_100()

    def _answer(
        self, info: dict[str, Any], status: int, doc: Any, headers: dict[str, str] | None = None,
        event_count: int | None = None,
    ) -> None:
        """Record the request, then send a JSON answer."""
        try:
            self.server.consumer.record(info, status, event_count=event_count)
        except RequestError as exc:
            status, doc = exc.status, {"error": exc.message}
        self.send_json(status, doc, headers)

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        """Handle an ingest request."""
        info = self._info()
        try:
            body = self.read_body()
            info["body_bytes"] = len(body)
            body = decode_content(body, info["content_encoding"])
        except RequestError as exc:
            self._answer(info, exc.status, {"error": exc.message})
            return
        route = urlsplit(self.path).path
        if route not in (EVENTS_PATH, CLOUDEVENTS_PATH):
            self._answer(info, 404, {"error": f"no such path {route!r}"})
            return
        self._ingest(info, route, body)

    def _other_method(self) -> None:
        info = self._info()
        try:
            self.read_body()
        except RequestError as exc:
            self._answer(info, exc.status, {"error": exc.message})
            return
        route = urlsplit(self.path).path
        if route in (EVENTS_PATH, CLOUDEVENTS_PATH):
            self._answer(info, 405, {"error": f"{self.command} not allowed on {route}"},
                         {"Allow": "POST"})
        else:
            self._answer(info, 404, {"error": f"no such path {route!r}"})

    do_GET = do_PUT = do_DELETE = do_PATCH = _other_method  # noqa: N815

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib name)
        """HEAD gets headers only; every path answers 404 or 405."""
        route = urlsplit(self.path).path
        status = 405 if route in (EVENTS_PATH, CLOUDEVENTS_PATH) else 404
        self.server.consumer.record(self._info(), status)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    @staticmethod
    def _count_events(body: bytes) -> int | None:
        """Best-effort event count of a body, for requests that are not parsed."""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return len(doc) if isinstance(doc, list) else None

    def _cut(self, reset: bool) -> None:
        """Write a partial response (status line and one header, no blank line) and close.

        With ``reset`` the socket is closed with SO_LINGER 0, so the client reads the
        partial head and then gets "connection reset". Without it the close is a FIN;
        lenient HTTP parsers (curl, Python's http.client) then take the partial head as
        complete, so the one header promises a body that never comes (Content-Length),
        which such clients still report as a truncated transfer.
        """
        try:
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % CUT_PROMISED_BYTES
            )
            self.wfile.flush()
            if reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _ingest(self, info: dict[str, Any], route: str, body: bytes) -> None:
        """Apply the fault mode, then validate and store the batch."""
        consumer = self.server.consumer
        mode = consumer.take_mode()
        if mode.name == "status":
            headers = {"Retry-After": mode.retry_after} if mode.retry_after is not None else {}
            self._answer(info, mode.status, {"error": f"injected status {mode.status}"}, headers,
                         event_count=self._count_events(body))
            return
        if mode.name == "hang":
            consumer.record(info, NO_RESPONSE_STATUS, event_count=self._count_events(body))
            consumer.sleep(mode.seconds)
            self.close_connection = True
            return
        if mode.name == "cut":
            consumer.record(info, NO_RESPONSE_STATUS, event_count=self._count_events(body))
            self._cut(mode.reset)
            return
        if mode.name == "slow":
            consumer.sleep(mode.seconds)

        try:
            events = self._validate(info, route, body)
            if mode.name == "poison":
                for event_id, _ in events:
                    if event_id in mode.event_ids:
                        raise RequestError(400, f"poison event {event_id}")
        except RequestError as exc:
            self._answer(info, exc.status, {"error": exc.message},
                         event_count=self._count_events(body))
            return

        if mode.name == "cut_after_store":
            consumer.record(info, NO_RESPONSE_STATUS, events)
            self._cut(mode.reset)
            return
        try:
            accepted, duplicates = consumer.record(info, 200, events)
        except RequestError as exc:
            self.send_json(exc.status, {"error": exc.message})
            return
        self.send_json(200, {"accepted": accepted, "duplicates": duplicates})

    def _validate(
        self, info: dict[str, Any], route: str, body: bytes
    ) -> list[tuple[str, dict[str, Any]]]:
        """Check content type and body for ``route``; return (event_id, body) pairs.

        For CloudEvents the subjects of the batch, in order, go into ``info`` (the
        ``subjects`` column of ``requests``, a JSON array).
        """
        ctype = media_type(self.headers.get("Content-Type"))
        if route == EVENTS_PATH:
            if ctype != EVENTS_CONTENT_TYPE:
                raise RequestError(
                    415, f"Content-Type must be {EVENTS_CONTENT_TYPE}, got {ctype or 'none'}"
                )
            return validate_usage_batch(parse_json_body(body))
        if ctype != CLOUDEVENTS_CONTENT_TYPE:
            raise RequestError(
                415, f"Content-Type must be {CLOUDEVENTS_CONTENT_TYPE}, got {ctype or 'none'}"
            )
        doc = parse_json_body(body)
        events = validate_cloudevents_batch(doc, self.server.consumer.sdk_read)
        info["subjects"] = json.dumps([ce["subject"] for ce in doc])
        return events


class ControlHandler(JSONHandler):
    """The control port: fault modes, statistics, stored events, reset."""

    def _dispatch(self) -> None:
        consumer = self.server.consumer
        try:
            body = self.read_body()
            route = (self.command, urlsplit(self.path).path)
            if route == ("POST", "/mode"):
                mode = FaultMode.from_request(parse_json_body(body))
                self.send_json(200, consumer.set_mode(mode))
            elif route == ("GET", "/mode"):
                self.send_json(200, consumer.current_mode())
            elif route == ("GET", "/stats"):
                self.send_json(200, consumer.stats())
            elif route == ("GET", "/events"):
                self.send_json(200, consumer.events())
            elif route == ("GET", "/requests"):
                self.send_json(200, consumer.requests())
            elif route == ("POST", "/reset"):
                consumer.reset()
                self.send_json(200, {"reset": True, "mode": "ok"})
            elif route == ("GET", "/health"):
                self.send_json(200, {"ok": True, "port": consumer.port,
                                     "control_port": consumer.control_port})
            else:
                self.send_json(404, {"error": f"no such control endpoint {self.command} {route[1]}"})
        except RequestError as exc:
            self.send_json(exc.status, {"error": exc.message})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch  # noqa: N815


# ------------------------------------------------------------------------- main


def write_port_file(path: str, port: int, control_port: int) -> None:
    """Write the ports as JSON to ``path`` atomically (temp file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".consumer-ports-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"port": port, "control_port": control_port}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Billing consumer for hostmeter tests: stores usage events, injects faults."
    )
    parser.add_argument("--db", required=True, help="SQLite database path (created if missing)")
    parser.add_argument("--port", type=int, default=0, help="ingest port (0: pick a free one)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="control port (0: pick a free one)")
    parser.add_argument("--port-file", help="write {\"port\": P, \"control_port\": C} here")
    parser.add_argument("--quiet", action="store_true", help="no per-request log on stderr")
    args = parser.parse_args(argv)
    for name in ("port", "control_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 65535")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the consumer until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="consumer: %(message)s",
        stream=sys.stderr,
    )
    try:
        consumer = Consumer(args.db)
    except ImportError as exc:
        print(f"consumer: the cloudevents package is required "
              f"(python3 -m pip install cloudevents): {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"consumer: cannot open database {args.db}: {exc}", file=sys.stderr)
        return 2
    # Server threads inherit a mask that blocks SIGTERM/SIGINT, so the kernel
    # delivers them to the main thread, which wakes from wait_for_stop at once.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        consumer.start(args.port, args.control_port)
    except OSError as exc:
        print(f"consumer: cannot listen: {exc}", file=sys.stderr)
        consumer.close()
        return 2

    def on_signal(signum: int, _frame: Any) -> None:
        consumer.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    try:
        if args.port_file:
            write_port_file(args.port_file, consumer.port, consumer.control_port)
        print(f"consumer listening on {HOST}:{consumer.port} (control {HOST}:{consumer.control_port})",
              flush=True)
        LOG.info("cloudevents SDK reader: %s", consumer.sdk_name)
        consumer.wait_for_stop()
    finally:
        consumer.close()
        if args.port_file:
            try:
                os.unlink(args.port_file)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
