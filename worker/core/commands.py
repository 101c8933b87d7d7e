"""A command as support sees it: its ledger record with its dead letter, replays and what followed, or its
rejection; shared by ``vipps-billing command show`` and the console's command page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.core.control import Control
from worker.core.replay import replay_id
from worker.store.deadletters import dead_letter_id

# Replays are <id>.r1, <id>.r2, ...; a command is not replayed more often than this in practice.
MAX_REPLAYS = 20


def lookup(ops: Control, command_id: str, msn: str | None = None) -> dict[str, Any] | None:
    """A command's ledger record with its dead letter and replays (or its rejection), looked up as the
    merchant ``msn``; None if neither is kept."""
    record = ops.record(command_id, msn)
    if record is None:
        return _rejected(ops, command_id, msn)
    letter = ops.dead_letters.get(dead_letter_id("command", ops.ref(command_id, msn)))
    payload = record.get("payload")
    sent = payload if isinstance(payload, dict) else {}
    replays = []
    for n in range(1, MAX_REPLAYS + 1):
        replay = ops.record(replay_id(command_id, n), msn)
        if replay is None:
            break
        replays.append({"command_id": replay_id(command_id, n), "status": replay.get("status")})
    return {
        "command_id": command_id,
        "type": record.get("type"),
        "status": record.get("status"),
        "attempts": _int(record.get("attempts")),
        "first_attempt": _at(record.get("first_attempt_ms")),
        "finished": _at(record.get("finished_ms")),
        "next_attempt": _at(record.get("next_attempt_ms")),
        "lease_until": _at(record.get("lease_until")) if record.get("status") == "in_progress" else None,
        "error": record.get("error") or None,
        "operator": sent.get("operator"),
        "reason": sent.get("reason"),
        "command": payload,
        "events": record.get("events") or [],
        "later": later_events(ops, command_id, record.get("events") or []),
        "waiting": record.get("waiting") or None,
        "dead_letter": letter.id if letter else None,
        "replays": replays,
    }


def later_events(ops: Control, command_id: str, own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What became of the resources the command made or changed afterwards (a charge's DUE, CHARGED, ...),
    from their timelines: the events caused by this command that are not its own outcome."""
    seen = {e.get("event_id") for e in own}
    resources = {(e["agreement_id"], e.get("charge_id")) for e in own if e.get("agreement_id")}
    later = [e for agreement_id, charge_id in sorted(resources, key=str)
             for e in ops.ledger.timeline(agreement_id, charge_id)
             if e.get("command_id") == command_id and e.get("event_id") not in seen]
    return sorted(later, key=lambda e: str(e.get("occurred_at")))


def _rejected(ops: Control, command_id: str, msn: str | None) -> dict[str, Any] | None:
    """A command rejected as invalid has no ledger record, only its dead letter (and its event)."""
    letters = [letter for letter in ops.dead_letters.find(limit=20, command_id=command_id)
               if msn is None or letter.msn in (None, msn)][:1]
    if not letters:
        return None
    letter = letters[0]
    return {"command_id": command_id, "type": letter.command_type, "status": "rejected", "attempts": 0,
            "first_attempt": None, "finished": _at(letter.at_ms), "next_attempt": None, "lease_until": None,
            "error": letter.problem or {"reason": letter.reason, "detail": letter.detail},
            "command": letter.payload, "events": [], "later": [], "waiting": None, "dead_letter": letter.id,
            "replays": []}


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _at(ms: Any) -> str | None:
    millis = _int(ms)
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat() if millis else None
