"""Real processes for integration tests: the simulator over HTTP, a worker, and event readers."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import redis

from worker.core.producer import Producer
from worker.local.processes import free_port
from worker.local.wait import wait_until
from worker.runtime.settings import WorkerSettings
from worker.store.keys import DramatiqKeys

EVENTS_QUEUE = "vipps.events"

# Worker logs and metrics files of a test session, removed when it ends.
SCRATCH = tempfile.TemporaryDirectory(prefix="vipps-billing-tests-")


def due_in(days: int = 1) -> str:
    """A due date ``days`` after today (UTC), computed when called: a run may cross midnight."""
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    return wait_until(predicate, timeout, what or str(predicate), every=interval, error=AssertionError)


class Simulator:
    """``vipps-billing simulator *args``; ``Simulator(*write_merchants_file(dir).simulator_args)`` serves
    tests/merchants.py's three merchants."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "worker.cli.app", "simulator", "--host", "127.0.0.1",
                                         "--port", str(self.port), *args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.admin = httpx.Client(base_url=f"{self.url}/_simulator", timeout=10)
        wait_for(self._up, 20, what="simulator")

    def _up(self) -> bool:
        try:
            return self.admin.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self.admin.post("/clock/advance", json={"seconds": seconds}).raise_for_status().json()
        return result

    def effects(self, **params: Any) -> Any:
        return self.admin.get("/effects", params=params).raise_for_status().json()

    def requests(self, **params: Any) -> Any:
        """Every Recurring and Management call: its MSN header, MSN and key set (``?msn=`` and so on)."""
        return self.admin.get("/requests", params=params).raise_for_status().json()

    def faults(self, **faults: Any) -> Any:
        return self.admin.put("/faults", json=faults).raise_for_status().json()

    def scripts(self, **rules: Any) -> Any:
        return self.admin.post("/scripts", json=rules).raise_for_status().json()

    def stop_as_user(self, agreement_id: str) -> Any:
        """The user stops the agreement in the app: ``agreement-stopped`` with actor USER; RESERVED charges stay."""
        return self.admin.post(f"/agreements/{agreement_id}/user-stop").raise_for_status().json()

    def stop_as_admin(self, agreement_id: str | None = None, phone_number: str | None = None) -> Any:
        """The user's profile is deleted (the user of ``agreement_id``, or of ``phone_number``): Vipps stops every
        ACTIVE agreement of theirs, actor ADMIN. ``{"phone_number", "stopped": [agreement ids]}``."""
        body = {"agreement_id": agreement_id} if phone_number is None else {"phone_number": phone_number}
        return self.admin.post("/profiles/delete", json=body).raise_for_status().json()

    def webhook_deliveries(self, **params: Any) -> Any:
        """Every delivery attempt (``registration=``, ``event=``, ``agreement_id=``, ``result=``, ``since=``...)."""
        return self.admin.get("/webhooks/deliveries", params=params).raise_for_status().json()

    def webhook_pending(self) -> Any:
        """Deliveries not yet delivered or dropped, each with the delivery it waits behind."""
        return self.admin.get("/webhooks/pending").raise_for_status().json()

    def webhook_registrations(self) -> Any:
        return self.admin.get("/webhooks/registrations").raise_for_status().json()

    def webhook_faults(self, **faults: Any) -> Any:
        """Replace the delivery faults: ``fail_rate``, ``duplicate_rate``, ``delay_seconds``, ``seed``, ``events``."""
        return self.admin.put("/webhooks/faults", json=faults).raise_for_status().json()

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Worker:
    """``vipps-billing worker`` in its own process group, so it can be killed whole."""

    def __init__(self, redis_url: str, simulator_url: str, *, threads: int = 4, processes: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.metrics_port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False,  # noqa: SIM115
                                               dir=SCRATCH.name)
        self.env = dict(os.environ) | {
            "REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
            "METRICS_PORT": str(self.metrics_port), "METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="prom-", dir=SCRATCH.name),
            "HEARTBEAT_TIMEOUT_MS": "3000", "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
            "AGREEMENT_POLL_START_SECONDS": "0.5", "AGREEMENT_POLL_SECONDS": "0.5",
        } | (env or {})
        self.args = [sys.executable, "-m", "worker.cli.app", "worker", "--threads", str(threads),
                     "--processes", str(processes)]
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> None:
        self.process = self._start()

    def stop(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def output(self) -> str:
        with open(self.log.name) as fh:
            return fh.read()


class Events:
    """Reads (without consuming) the events the worker published on the events queue."""

    def __init__(self, client: redis.Redis, namespace: str = "dramatiq") -> None:
        self.redis = client
        self.key = DramatiqKeys(namespace).messages(EVENTS_QUEUE)

    def all(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.redis.hvals(self.key):
            message = json.loads(raw)
            event = message["args"][0]
            assert message["message_id"] == event["event_id"], "message_id must be the event_id"
            out.append(event)
        return out

    def of(self, command_id: str | None = None, type: str | None = None, **match: Any) -> list[dict[str, Any]]:
        found = []
        for e in self.all():
            if command_id is not None and e.get("command_id") != command_id:
                continue
            if type is not None and e.get("type") != type:
                continue
            if all(e.get(k) == v for k, v in match.items()):
                found.append(e)
        return found

    def wait(self, timeout: float = 30.0, **criteria: Any) -> dict[str, Any]:
        found = wait_for(lambda: self.of(**criteria), timeout, what=f"event {criteria}")
        event: dict[str, Any] = found[0]
        return event


def producer(redis_url: str) -> Producer:
    return Producer(redis_url, layout=WorkerSettings().layout())


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.stop()
