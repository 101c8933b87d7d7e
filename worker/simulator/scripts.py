"""Scripted outcomes: rules that decide how charge attempts and user decisions turn out.

Persistent rules live here; one-off user actions (accept, reject, stop, change max amount) are carried
out by the engine when posted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.simulator.models import Agreement, Charge

FAILURE_REASONS = {
    "user_action_required": "User action required",
    "charge_amount_too_high": "Charge amount too high",
    "non_technical_error": "Non-technical error",
    "technical_error": "Technical error",
}
DEFAULT_REASON = "user_action_required"
# Rules that stay until the scripts are cleared, and user actions carried out when posted.
RULES = (
    "charge_amount_fails",
    "agreement_fails",
    "charge_fails",
    "agreement_never_accepts",
    "agreement_rejects",
    "charge_creation_fails",
)
# A batch charge that cannot be created for a reason of Vipps's own.
CREATION_FAILURE_REASON = "technical_error"
USER_ACTIONS = ("user_accepts", "user_rejects", "user_stops", "user_max_amount")


class ScriptError(ValueError):
    pass


def check_rule_names(payload: dict[str, Any]) -> None:
    unknown = sorted(set(payload) - {*RULES, *USER_ACTIONS})
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ScriptError(f"unknown rule {names} (known: {', '.join((*RULES, *USER_ACTIONS))})")


@dataclass
class ChargeRule:
    reason: str
    # Attempts still to fail; None = every attempt fails.
    remaining: int | None = None


@dataclass
class Scripts:
    amount_fails: dict[int, str] = field(default_factory=dict)
    agreement_fails: dict[str, str] = field(default_factory=dict)
    charge_fails: dict[str, ChargeRule] = field(default_factory=dict)
    never_accepts: set[str] = field(default_factory=set)
    rejects: set[str] = field(default_factory=set)
    # orderId -> the failureReason of its charge-creation-failed (batch charges only).
    creation_fails: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "charge_amount_fails": {str(k): v for k, v in sorted(self.amount_fails.items())},
            "agreement_fails": dict(sorted(self.agreement_fails.items())),
            "charge_fails": {
                k: {"reason": r.reason, "remaining": r.remaining} for k, r in sorted(self.charge_fails.items())
            },
            "agreement_never_accepts": sorted(self.never_accepts),
            "agreement_rejects": sorted(self.rejects),
            "charge_creation_fails": dict(sorted(self.creation_fails.items())),
        }

    def add_rules(self, payload: dict[str, Any]) -> None:
        for item in as_list(payload.get("charge_amount_fails")):
            amount, reason = _target(item, "amount")
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise ScriptError("charge_amount_fails: amount must be an integer (minor units)")
            self.amount_fails[amount] = reason
        for item in as_list(payload.get("agreement_fails")):
            agreement_id, reason = _target(item, "agreement_id")
            self.agreement_fails[str(agreement_id)] = reason
        for item in as_list(payload.get("charge_fails")):
            charge_id, reason = _target(item, "charge_id")
            attempts = item.get("attempts") if isinstance(item, dict) else None
            if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
                raise ScriptError("charge_fails: attempts must be a positive integer")
            self.charge_fails[str(charge_id)] = ChargeRule(reason, attempts)
        for item in as_list(payload.get("agreement_never_accepts")):
            self.never_accepts.add(str(item))
        for item in as_list(payload.get("agreement_rejects")):
            self.rejects.add(str(item))
        for item in as_list(payload.get("charge_creation_fails")):
            order_id, reason = _target(item, "charge_id")
            self.creation_fails[str(order_id)] = reason if isinstance(item, dict) else CREATION_FAILURE_REASON

    def refuses(self, agreement: Agreement) -> bool:
        return agreement.id in self.never_accepts or (agreement.phone_number or "") in self.never_accepts

    def auto_rejects(self, agreement: Agreement) -> bool:
        return agreement.id in self.rejects or (agreement.phone_number or "") in self.rejects

    def attempt_failure(self, charge: Charge, agreement: Agreement) -> str | None:
        """The failure reason of one processing attempt, or None when it succeeds."""
        rule = self.charge_fails.get(charge.id)
        if rule is not None:
            if rule.remaining is None:
                return rule.reason
            if rule.remaining > 0:
                rule.remaining -= 1
                return rule.reason
        if charge.amount in self.amount_fails:
            return self.amount_fails[charge.amount]
        if agreement.id in self.agreement_fails:
            return self.agreement_fails[agreement.id]
        if (
            charge.type == "RECURRING"
            and agreement.pricing_type == "VARIABLE"
            and agreement.max_amount is not None
            and charge.amount > agreement.max_amount
        ):
            return "charge_amount_too_high"
        return None


def as_list(value: Any) -> list[Any]:
    """A rule's value: one item or a list of them."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _target(item: Any, key: str) -> tuple[Any, str]:
    if isinstance(item, dict):
        if key not in item:
            raise ScriptError(f"missing {key}")
        reason = item.get("reason", DEFAULT_REASON)
        if reason not in FAILURE_REASONS:
            raise ScriptError(f"reason must be one of {', '.join(FAILURE_REASONS)}")
        return item[key], reason
    return item, DEFAULT_REASON
