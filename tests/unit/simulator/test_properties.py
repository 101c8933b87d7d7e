"""State-machine properties under random operation sequences (hypothesis).

Whatever the merchant and the clock do: captured never exceeds the amount, refunded never exceeds
captured, terminal states never change, every observed transition is one the state machine allows,
money totals only grow, and no effect is ever applied twice.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sim_harness import Vipps

TERMINAL = {"FAILED", "CANCELLED", "REFUNDED"}
EDGES = {
    "PENDING": {"DUE", "CANCELLED"},
    "DUE": {"CHARGED", "RESERVED", "FAILED", "CANCELLED"},
    "RESERVED": {"PARTIALLY_CAPTURED", "CHARGED", "CANCELLED"},
    "PARTIALLY_CAPTURED": {"PARTIALLY_CAPTURED", "CHARGED"},
    "CHARGED": {"PARTIALLY_REFUNDED", "REFUNDED"},
    "PARTIALLY_REFUNDED": {"PARTIALLY_REFUNDED", "REFUNDED"},
}


def reachable(start: str, end: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in EDGES.get(todo.pop(), ()):
            if nxt == end:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return start == end


class ChargeMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.vipps = Vipps(rate_limits_enabled=False)
        self.vipps.set_clock("2030-03-01T10:00:00Z")
        self.vipps.token = self.vipps.fetch_token().json()["access_token"]
        self.vipps.admin("POST", "/scripts", {"charge_amount_fails": [151, 1510, 15100]})
        self.agreement_id = self.vipps.active_agreement(pricing={"type": "LEGACY", "amount": 20000, "currency": "NOK"})
        self.charge_ids: list[str] = []
        self.seen: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str, Any, str]] = []

    def _send(self, method: str, path: str, body: Any) -> None:
        key = f"prop-{len(self.sent)}"
        self.sent.append((method, path, body, key))
        self.vipps.call(method, path, body, key=key)

    @rule(
        amount=st.sampled_from([100, 151, 1510, 5000, 15100, 99999, 100000]),
        reserve=st.booleans(),
        due_days=st.integers(1, 40),
        retry_days=st.integers(0, 3),
    )
    def create(self, amount: int, reserve: bool, due_days: int, retry_days: int) -> None:
        response = self.vipps.create_charge(
            self.agreement_id,
            amount,
            due=self.vipps.due(due_days),
            retryDays=retry_days,
            transactionType="RESERVE_CAPTURE" if reserve else "DIRECT_CAPTURE",
        )
        if response.status_code == 201:
            self.charge_ids.append(response.json()["chargeId"])
        else:
            assert response.json()["type"].endswith("#charge-amount-too-high") or response.status_code == 400

    @rule(hours=st.integers(1, 24 * 20))
    def advance(self, hours: int) -> None:
        self.vipps.advance(hours * 3600)

    @precondition(lambda self: self.charge_ids)
    @rule(data=st.data(), amount=st.sampled_from([100, 2500, 5000, 10000, 100000]))
    def capture(self, data: st.DataObject, amount: int) -> None:
        charge_id = data.draw(st.sampled_from(self.charge_ids))
        path = f"/recurring/v3/agreements/{self.agreement_id}/charges/{charge_id}/capture"
        self._send("POST", path, {"amount": amount, "description": "c"})

    @precondition(lambda self: self.charge_ids)
    @rule(data=st.data(), amount=st.sampled_from([100, 2500, 5000, 10000, 100000]))
    def refund(self, data: st.DataObject, amount: int) -> None:
        charge_id = data.draw(st.sampled_from(self.charge_ids))
        path = f"/recurring/v3/agreements/{self.agreement_id}/charges/{charge_id}/refund"
        self._send("POST", path, {"amount": amount, "description": "r"})

    @precondition(lambda self: self.charge_ids)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        charge_id = data.draw(st.sampled_from(self.charge_ids))
        self._send("DELETE", f"/recurring/v3/agreements/{self.agreement_id}/charges/{charge_id}", None)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry_same_key(self, data: st.DataObject) -> None:
        method, path, body, key = data.draw(st.sampled_from(self.sent))
        self.vipps.call(method, path, body, key=key)

    @rule()
    def stop(self) -> None:
        self._send("PATCH", f"/recurring/v3/agreements/{self.agreement_id}", {"status": "STOPPED"})

    @invariant()
    def money_and_states_hold(self) -> None:
        if not hasattr(self, "vipps"):
            return
        snapshot = self.vipps.admin("GET", f"/agreements/{self.agreement_id}")
        for charge in snapshot["charges"]:
            s = charge["summary"]
            assert 0 <= s["captured"] <= charge["amount"]
            assert 0 <= s["refunded"] <= s["captured"]
            assert s["captured"] + s["cancelled"] <= charge["amount"]
            history = charge["history"]
            assert sum(e["amount"] for e in history if e["event"] == "CAPTURE") == s["captured"]
            assert sum(e["amount"] for e in history if e["event"] == "REFUND") == s["refunded"]
            before = self.seen.get(charge["id"])
            if before is not None:
                if before["status"] in TERMINAL:
                    assert charge["status"] == before["status"]
                assert reachable(before["status"], charge["status"]), (before["status"], charge["status"])
                for field in ("captured", "refunded", "cancelled"):
                    assert s[field] >= before["summary"][field]
            self.seen[charge["id"]] = charge
        if snapshot["agreement"]["status"] == "STOPPED":
            assert all(c["status"] not in ("PENDING", "DUE", "RESERVED") for c in snapshot["charges"])
        assert self.vipps.effects(duplicates="true") == []

    def teardown(self) -> None:
        if hasattr(self, "vipps"):
            self.vipps.http.close()


TestChargeMachine = ChargeMachine.TestCase
TestChargeMachine.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
