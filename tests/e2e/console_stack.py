"""The support console as a browser meets it: `vipps-billing console serve` over plain http on loopback, in
front of real Redis, the simulator and a running worker, with users of each role and something to look at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import SCRATCH, Simulator, due_in, wait_for
from worker.console.users import hash_password
from worker.core.control import CommandFailed, Control
from worker.local.processes import free_port

# username -> role; each one's password is password(username).
USERS = {"alice": "agent", "victor": "viewer", "olga": "operator"}
EXTERNAL_ID = "cust-4711"
CHARGED_AMOUNT = 29900
RESERVED_AMOUNT = 10000
# A capture of a charge Vipps never made: refused (not retried), so the worker dead-letters it at once.
DEAD_COMMAND_ID = "browser-capture-unknown"
UNKNOWN_CHARGE = "chr_nosuchcharge4711"
# Few, short retries: the dead letter is there within seconds, whichever way Vipps answers.
FAST_RETRIES = {"RETRY_MAX_ATTEMPTS": "2", "RETRY_MIN_BACKOFF_SECONDS": "0.2", "RETRY_MAX_BACKOFF_SECONDS": "0.5",
                "VIPPS_MAX_ATTEMPTS": "1"}


def password(username: str) -> str:
    return f"{username}-correct-horse-battery"


def write_users(path: Path) -> Path:
    path.write_text(json.dumps({"users": [{"username": name, "password_hash": hash_password(password(name)),
                                           "role": role} for name, role in USERS.items()]}))
    return path


@dataclass(frozen=True)
class Seeded:
    agreement_id: str
    charged_id: str        # CHARGED: captured in full, nothing refunded yet
    reserved_id: str       # RESERVED: nothing captured yet
    dead_letter_id: str


def _run(ops: Control, command_id: str, **fields: Any) -> dict[str, Any]:
    """The command's first event, once the worker has carried it out."""
    outcome = ops.run({"command_id": command_id, **fields}, timeout=30)
    return outcome.events[0]


def _charge(ops: Control, agreement_id: str, name: str, amount: int, transaction_type: str) -> str:
    event = _run(ops, f"browser-{name}", type="charge.create", agreement_id=agreement_id, amount=amount,
                 description=f"Gym {name}", due=due_in(1), retry_days=2, transaction_type=transaction_type)
    return str(event["charge_id"])


def charge_at_vipps(simulator: Simulator, agreement_id: str, charge_id: str) -> dict[str, Any]:
    """The charge as the simulator holds it, read through its admin API: the tests' own checks spend none
    of Vipps's rate budget (10 fetches a minute per charge), which the console's pages need."""
    state = simulator.admin.get(f"/agreements/{agreement_id}").raise_for_status().json()
    charge: dict[str, Any] = next(c for c in state["charges"] if c["id"] == charge_id)
    return charge


def _has_status(simulator: Simulator, agreement_id: str, charge_id: str, status: str) -> bool:
    return charge_at_vipps(simulator, agreement_id, charge_id)["status"] == status


def seed(ops: Control, simulator: Simulator) -> Seeded:
    """An ACTIVE agreement (externalId EXTERNAL_ID), a CHARGED and a RESERVED charge, and a dead letter."""
    created = _run(ops, "browser-create", type="agreement.create", product_name="Gym Premium",
                   pricing={"amount": CHARGED_AMOUNT}, interval={"unit": "MONTH", "count": 1},
                   merchant_redirect_url="https://example.com/back",
                   merchant_agreement_url="https://example.com/agreements/4711", phone_number="4791234567",
                   external_id=EXTERNAL_ID)
    agreement_id = str(created["agreement_id"])
    _run(ops, "browser-accept", type="agreement.force_accept", agreement_id=agreement_id, phone_number="4791234567")
    charged = _charge(ops, agreement_id, "charged", CHARGED_AMOUNT, "DIRECT_CAPTURE")
    reserved = _charge(ops, agreement_id, "reserved", RESERVED_AMOUNT, "RESERVE_CAPTURE")
    simulator.advance(2 * 86_400)  # past the due date: Vipps processes both charges
    for charge_id, status in ((charged, "CHARGED"), (reserved, "RESERVED")):
        wait_for(partial(_has_status, simulator, agreement_id, charge_id, status), 30, interval=0.2,
                 what=f"{charge_id} {status}")
    with pytest.raises(CommandFailed):  # the worker refuses it for good, and dead-letters it
        ops.run({"command_id": DEAD_COMMAND_ID, "type": "charge.capture", "agreement_id": agreement_id,
                 "charge_id": UNKNOWN_CHARGE, "amount": 1000, "description": "Shipped"}, timeout=30)
    letters = wait_for(lambda: ops.dead_letters.find(command_id=DEAD_COMMAND_ID), 30, what="the dead letter")
    return Seeded(agreement_id, charged, reserved, letters[0].id)


class ConsoleServer:
    """`vipps-billing console serve` on a free loopback port, its cookie not Secure since it is plain http."""

    def __init__(self, redis_url: str, simulator_url: str, users_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="console-", suffix=".log", delete=False,  # noqa: SIM115
                                               dir=SCRATCH.name)
        # None of the caller's console settings; no operations port, which would be a fixed one (9194).
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSOLE_")} | {
            "REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator_url,
            "CONSOLE_USERS_FILE": str(users_file), "CONSOLE_SESSION_SECRET": "browser-tests-" + "s" * 32,
            "CONSOLE_COOKIE_SECURE": "false", "CONSOLE_PORT": str(self.port), "CONSOLE_METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "worker.cli.app", "console", "serve"], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, interval=0.2, what="the console")

    def _up(self) -> bool:
        assert self.process.poll() is None, f"the console exited: {self.output()[-2000:]}"
        try:
            return httpx.get(f"{self.url}/login", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        with open(self.log.name) as fh:
            return fh.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
