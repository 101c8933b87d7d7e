"""The Vipps go-live checklist, run through the queues: commands in, events out, state verified by fetching.

Vipps wants four things to exist in the test environment before go-live: an agreement ACTIVE, an
agreement STOPPED, a RECURRING charge CHARGED and a RECURRING charge REFUNDED. On the simulator
the clock is moved past the charges' due date; at Vipps the charges complete on their due date,
so the run records what it created in a state file and ``--resume`` finishes it later.

Every command id derives from the run id and the step, so resuming after a crash re-sends the
same commands and the ledger makes each happen once. A run is for one merchant: its commands carry
that merchant's MSN, recorded with the run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from worker.core.control import Control, OperationError, Outcome, Progress
from worker.local.wait import wait_until

ACTIVE, STOPPED, CHARGED, REFUNDED = "agreement ACTIVE", "agreement STOPPED", "charge CHARGED", "charge REFUNDED"
STEPS = ("create agreements", "accept agreements", "agreements active", "create charges", "stop agreement",
         "charges processed", "refund charge", "verify")
CHARGE_AMOUNT = 19900
SIMULATOR_PHONE = "4791234567"  # the test user force-accept names on the simulator (it accepts any number)


@dataclass
class RunState:
    run_id: str
    env: str
    started_at: str
    phone: str
    agreements: dict[str, str] = field(default_factory=dict)    # "active"/"stopped" -> agreement id
    charges: dict[str, str] = field(default_factory=dict)       # "charged"/"refunded" -> charge id
    due: str | None = None
    done: list[str] = field(default_factory=list)
    events: dict[str, list[str]] = field(default_factory=dict)  # resource id -> event types seen
    # resource id -> event type -> what saw that transition first (webhook, poll or command)
    seen_by: dict[str, dict[str, str]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    msn: str | None = None                                      # the merchant; None: the only one

    @classmethod
    def load(cls, path: Path) -> RunState:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise OperationError(f"no checklist run is recorded in {path}; run `vipps-billing checklist` first") \
                from None
        except (OSError, ValueError, TypeError) as exc:
            raise OperationError(f"cannot read the checklist state {path}: {exc}") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


@dataclass
class Report:
    status: str                       # passed, failed or waiting
    state: RunState
    message: str = ""

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.state.results


class SimulatorClock:
    """The simulator's admin API: its notion of today, and moving it on."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_simulator", timeout=10)

    def today(self) -> dt.date:
        return dt.datetime.fromisoformat(self.http.get("/clock").raise_for_status().json()["now"]
                                         .replace("Z", "+00:00")).date()

    def advance(self, seconds: float) -> None:
        self.http.post("/clock/advance", json={"seconds": seconds}).raise_for_status()

    def close(self) -> None:
        self.http.close()


class Checklist:
    def __init__(self, ops: Control, state: RunState, state_path: Path, *, clock: SimulatorClock | None,
                 progress: Callable[[str, int], None] | None = None, timeout: float = 60.0,
                 notice: Callable[[str], None] | None = None,
                 merchant_url: str = "https://example.com/vipps-billing/agreements") -> None:
        self.ops = ops
        self.state = state
        self.path = state_path
        self.clock = clock
        self.progress = progress or (lambda _text, _n: None)
        self.notice = notice or (lambda _text: None)
        self.timeout = timeout
        self.merchant_url = merchant_url
        self._seq = 0

    @staticmethod
    def new_state(env: str, phone: str, msn: str | None = None) -> RunState:
        return RunState(run_id=uuid.uuid4().hex[:10], env=env, started_at=dt.datetime.now(dt.UTC).isoformat(),
                        phone=phone, msn=msn)

    # -- plumbing ------------------------------------------------------------------------------------

    def _cid(self, name: str) -> str:
        return f"checklist-{self.state.run_id}-{name}"

    def _record(self, outcome: Outcome) -> Outcome:
        for event in outcome.events:
            self._seen(event)
        return outcome

    def _seen(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type"))
        label = kind
        if kind == "charge.status_changed" and event.get("transition"):
            label = f"{kind}→{event['transition'].get('to')}"
        for resource in (event.get("charge_id"), event.get("agreement_id")):
            if resource:
                seen = self.state.events.setdefault(str(resource), [])
                if label not in seen:
                    seen.append(label)
                if event.get("observed_by") in ("webhook", "poll", "command"):
                    self.state.seen_by.setdefault(str(resource), {}).setdefault(label, event["observed_by"])
                break

    def _watch_events(self) -> None:
        """Events the watchlist published about our resources (still on the queue, if nobody took them)."""
        ours = set(self.state.agreements.values()) | set(self.state.charges.values())
        for event in self.ops.published_events():
            if event.get("agreement_id") in ours or event.get("charge_id") in ours:
                self._seen(event)

    def _run(self, name: str, command: dict[str, Any]) -> Outcome:
        def waiting(progress: Progress) -> None:
            if progress.status == "retry_wait":  # a lost answer or a rate limit: say what it waits for
                self.notice(f"{command['type']}: {progress.describe()}")

        merchant = {"msn": self.state.msn} if self.state.msn else {}
        return self._record(self.ops.run({"command_id": self._cid(name), **command, **merchant}, self.timeout,
                                         on_progress=waiting))

    def _fetch(self, command: dict[str, Any]) -> Outcome:
        self._seq += 1
        name = f"{command['type'].replace('.', '-')}-{int(time.time())}-{self._seq}"
        return self._run(name, command)

    def _step(self, name: str) -> bool:
        """True when the step still has to run; reports progress either way."""
        self.progress(name, STEPS.index(name))
        return name not in self.state.done

    def _done(self, name: str) -> None:
        self.state.done.append(name)
        self.state.save(self.path)

    def _until(self, what: str, check: Callable[[], bool]) -> None:
        wait_until(check, self.timeout, what, every=0.5, error=OperationError)

    def agreement_status(self, agreement_id: str) -> str:
        snap = self._fetch({"type": "agreement.fetch", "agreement_id": agreement_id}).event("agreement.snapshot")
        return str((snap or {}).get("agreement", {}).get("status"))

    def _agreement_is(self, agreement_id: str, status: str) -> Callable[[], bool]:
        return lambda: self.agreement_status(agreement_id) == status

    def _charge_is(self, charge_id: str, status: str) -> Callable[[], bool]:
        return lambda: self.charge(self.state.agreements["active"], charge_id).get("status") == status

    def charge(self, agreement_id: str, charge_id: str) -> dict[str, Any]:
        snap = self._fetch({"type": "charge.fetch", "agreement_id": agreement_id,
                            "charge_id": charge_id}).event("charge.snapshot")
        charge: dict[str, Any] = (snap or {}).get("charge") or {}
        return charge

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> Report:
        """Every step not done yet, in order; a step may end the run early (failed, or waiting for Vipps)."""
        steps: dict[str, Callable[[], Report | None]] = {
            "create agreements": self._create_agreements, "accept agreements": self._accept_agreements,
            "agreements active": self._agreements_active, "create charges": self._create_charges,
            "stop agreement": self._stop_agreement, "charges processed": self._charges_processed,
            "refund charge": self._refund_charge}
        for name, step in steps.items():
            if self._step(name):
                early = step()
                if early is not None:
                    return early
                self._done(name)
        self._step("verify")
        return self.verify()

    def _create_agreements(self) -> None:
        for role in ("active", "stopped"):
            created = self._run(f"{role}-create", self._agreement(role)).event("agreement.created")
            self.state.agreements[role] = str((created or {}).get("agreement_id"))

    def _accept_agreements(self) -> None:
        for role, agreement_id in self.state.agreements.items():
            self._run(f"{role}-accept", {"type": "agreement.force_accept", "agreement_id": agreement_id,
                                         "phone_number": self.state.phone})

    def _agreements_active(self) -> None:
        for agreement_id in self.state.agreements.values():
            self._until(f"agreement {agreement_id} to become ACTIVE", self._agreement_is(agreement_id, "ACTIVE"))

    def _create_charges(self) -> None:
        s = self.state
        today = self.clock.today() if self.clock else dt.datetime.now(dt.UTC).date()
        s.due = (today + dt.timedelta(days=1)).isoformat()
        for role in ("charged", "refunded"):
            created = self._run(f"{role}-charge", {
                "type": "charge.create", "agreement_id": s.agreements["active"], "amount": CHARGE_AMOUNT,
                "description": f"Go-live check ({role})", "due": s.due, "retry_days": 2,
                "transaction_type": "DIRECT_CAPTURE"}).event("charge.created")
            s.charges[role] = str((created or {}).get("charge_id"))

    def _stop_agreement(self) -> None:
        stopped = self.state.agreements["stopped"]
        self._run("stop", {"type": "agreement.update", "agreement_id": stopped, "status": "STOPPED"})
        self._until(f"agreement {stopped} to become STOPPED", self._agreement_is(stopped, "STOPPED"))

    def _charges_processed(self) -> Report | None:
        s = self.state
        if self.clock is not None:
            self.clock.advance(2 * 86_400)  # past the due date's processing rounds
            for charge_id in s.charges.values():
                self._until(f"charge {charge_id} to be CHARGED", self._charge_is(charge_id, "CHARGED"))
            return None
        statuses = {c: self.charge(s.agreements["active"], c).get("status") for c in s.charges.values()}
        if all(st == "CHARGED" for st in statuses.values()):
            return None
        failed = {c: st for c, st in statuses.items() if st in ("FAILED", "CANCELLED")}
        if failed:
            return self._finish("failed", f"charges did not go through: {failed}")
        s.save(self.path)
        return Report("waiting", s, f"charges are {', '.join(sorted(set(map(str, statuses.values()))))}"
                      f"; Vipps processes them on {s.due} (07:00-08:00 UTC, later on retries): run "
                      f"`vipps-billing checklist --resume` after that")

    def _refund_charge(self) -> None:
        refunded = self.state.charges["refunded"]
        self._run("refund", {"type": "charge.refund", "agreement_id": self.state.agreements["active"],
                             "charge_id": refunded, "amount": CHARGE_AMOUNT, "description": "Go-live check refund"})
        self._until(f"charge {refunded} to be REFUNDED", self._charge_is(refunded, "REFUNDED"))

    def verify(self) -> Report:
        """Fetch the four resources and judge them on what Vipps says now."""
        s = self.state
        agreements = {role: self.agreement_status(a) for role, a in s.agreements.items()}
        listed = self._fetch({"type": "agreement.list_charges", "agreement_id": s.agreements["active"]})
        charges = {c["id"]: c for c in (listed.event("agreement.charges") or {}).get("charges", [])}
        for charge_id in s.charges.values():
            if charge_id not in charges:  # listing defaults to some statuses only: ask for it directly
                charges[charge_id] = self.charge(s.agreements["active"], charge_id)
        self._watch_events()
        rows = []
        for name, role, expected in ((ACTIVE, "active", "ACTIVE"), (STOPPED, "stopped", "STOPPED")):
            rows.append({"state": name, "agreement_id": s.agreements[role], "charge_id": None,
                         "observed": agreements[role], "holds": agreements[role] == expected,
                         "events": s.events.get(s.agreements[role], []),
                         "seen_by": s.seen_by.get(s.agreements[role], {})})
        for name, role, expected in ((CHARGED, "charged", "CHARGED"), (REFUNDED, "refunded", "REFUNDED")):
            charge = charges.get(s.charges[role], {})
            observed = f"{charge.get('status')} ({charge.get('type')})"
            rows.append({"state": name, "agreement_id": s.agreements["active"], "charge_id": s.charges[role],
                         "observed": observed,
                         "holds": charge.get("status") == expected and charge.get("type") == "RECURRING",
                         "events": s.events.get(s.charges[role], []),
                         "seen_by": s.seen_by.get(s.charges[role], {})})
        s.results = rows
        ok = all(r["holds"] for r in rows)
        return self._finish("passed" if ok else "failed",
                            "all four go-live states hold" if ok else "some go-live states do not hold")

    def _finish(self, status: str, message: str) -> Report:
        self.state.finished = True
        self.state.save(self.path)
        return Report(status, self.state, message)

    def _agreement(self, role: str) -> dict[str, Any]:
        return {"type": "agreement.create", "product_name": f"Go-live check ({role})",
                "pricing": {"amount": CHARGE_AMOUNT}, "interval": {"unit": "MONTH", "count": 1},
                "merchant_redirect_url": f"{self.merchant_url}/{self.state.run_id}-{role}/return",
                "merchant_agreement_url": f"{self.merchant_url}/{self.state.run_id}-{role}",
                "phone_number": self.state.phone, "external_id": f"checklist-{self.state.run_id}-{role}"}
