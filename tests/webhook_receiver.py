"""A tiny webhook receiver for tests: an HTTP server on a free loopback port, in a thread, that records every
request and answers with the statuses it is told to (then ``default``; ``answer(body)`` decides first when it
returns a status), after ``hold`` seconds.

``verify(secret, url, received)`` checks a delivery's signature the way a receiver must (NOTES §6.4), written
here on its own so the simulator's signing is checked against an independent reading of the rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(
        self,
        *answers: int,
        default: int = 200,
        hold: float = 0.0,
        answer: Callable[[dict[str, Any]], int | None] | None = None,
    ) -> None:
        self.answers = list(answers)
        self.default = default
        self.answer = answer
        self.hold = hold
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    status = receiver.answer(json.loads(body)) if receiver.answer else None
                    if status is None:
                        status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body, time.time(), status))
                if receiver.hold:
                    time.sleep(receiver.hold)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/vipps?src=tests") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.json() for r in self.received]

    def wait(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` requests, once that many have come."""
        wait_until(lambda: len(self.received) >= count, timeout, f"{count} deliveries")
        with self.lock:
            return self.received[:count]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def verify(secret: str, url: str, received: Received, max_skew: float = 300.0) -> bool:
    """Content hash, signature over the registered URL's path and host, and an x-ms-date within ``max_skew``
    seconds of the real clock."""
    headers = received.headers
    content_hash = base64.b64encode(hashlib.sha256(received.body).digest()).decode()
    if headers.get("x-ms-content-sha256") != content_hash:
        return False
    parts = urlsplit(url)
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    date = headers["x-ms-date"]
    to_sign = f"POST\n{path_and_query}\n{date};{parts.netloc};{content_hash}"
    signature = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
    expected = f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"
    fresh = abs(parsedate_to_datetime(date).timestamp() - time.time()) <= max_skew
    return hmac.compare_digest(headers.get("authorization", ""), expected) and fresh and headers["host"] == parts.netloc
