"""Loopback HTTP clients: one JSON request, and GETs over a kept-alive connection."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

LOOPBACK = "127.0.0.1"


def http_json(url: str, body: Any = None, timeout: float = 5) -> Any:
    """The JSON answer of a GET (or a POST of ``body`` as JSON); also of an error status, such as
    /health's 503."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return json.load(error)


class Scraper:
    """GET over one kept-alive loopback connection, reconnecting when the server closes it."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of GET ``path``; one reconnect when the kept connection was closed."""
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
            try:
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, body
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def get_once(port: int, path: str) -> bytes:
    """The body of one GET that must answer 200."""
    scraper = Scraper(port)
    try:
        status, body = scraper.get(path)
    finally:
        scraper.close()
    if status != 200:
        raise RuntimeError(f"{path} answered {status}")
    return body


def wait_for(port: int, path: str, process: subprocess.Popen[Any], seconds: float) -> bytes:
    """Polls GET ``path`` until it answers 200 (its body is returned), ``process`` exits, or ``seconds``
    pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited {process.returncode} before answering {path}")
        try:
            scraper = Scraper(port)
            try:
                status, body = scraper.get(path)
            finally:
                scraper.close()
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{LOOPBACK}:{port}{path} did not answer within {seconds:.0f} s")
