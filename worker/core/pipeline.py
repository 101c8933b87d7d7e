"""The pipeline every command goes through.

1. decode and validate (invalid: ``command.rejected`` + dead letter, never retried);
2. claim the command in the ledger (finished before: re-publish its events; held by
   a live attempt: leave it; same id with another payload: reject);
3. call Vipps with an idempotency key derived from the command;
4. classify: success, permanent (``command.failed`` + dead letter) or transient
   (retry later with backoff, never sooner than Vipps or our budget allows,
   bounded in attempts and time; then ``command.dead_lettered``);
5. record the outcome, publish its events (or keep them in the outbox) and apply
   watch changes, atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from schemas import COMMAND_TYPES, Command, CommandAdapter, EventType, actor_name
from schemas import commands as c
from schemas.commands import MAX_COMMAND_BYTES
from schemas.problems import field_errors
from worker.core import charge_creation
from worker.core.batching import BatchPolicy
from worker.core.context import Context, Contexts, Outcome
from worker.core.events import Origin
from worker.core.handlers import FIRST_CALL, budget_slot, handle
from worker.core.logcontext import command_context
from worker.core.observer import PipelineObserver
from worker.core.retry import RetryPolicy, retry_reason, vipps_problem
from worker.store.clock import now_ms
from worker.store.deadletters import DeadLetter, DeadLetterStore, dead_letter_id
from worker.store.externals import ExternalIds
from worker.store.keys import command_ref
from worker.store.ledger import Claim, ClaimStatus, DeliveryAck, Ledger
from worker.vipps import errors
from worker.vipps.budgets import BudgetSlot
from worker.vipps.merchants import UnknownMerchant

log = logging.getLogger("worker.core.pipeline")


@dataclass(frozen=True)
class Delivery:
    """What dramatiq handed us."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    actor: str
    queue: str
    message_id: str
    enqueued_ms: int | None = None
    ack: DeliveryAck | None = None  # given: the outcome acks the delivery in the same step


class Pipeline:
    def __init__(self, contexts: Contexts, ledger: Ledger, dead_letters: DeadLetterStore, *, retry: RetryPolicy,
                 lease_ms: int, broker_id: str, observer: PipelineObserver | None = None,
                 batching: BatchPolicy | None = None, externals: ExternalIds | None = None) -> None:
        self.contexts = contexts
        self.ledger = ledger
        self.dead_letters = dead_letters
        self.retry = retry
        self.lease_ms = lease_ms
        self.broker_id = broker_id
        self.observer = observer or PipelineObserver()
        self.batching = batching  # None: every charge.create goes to the single endpoint at once
        self.externals = externals  # None: agreements' externalIds are not indexed for support's search

    def handle(self, delivery: Delivery) -> str:
        """Carry out one delivery; returns the outcome label. Raises only on unexpected errors."""
        if delivery.enqueued_ms:
            self.observer.waited_in_queue(delivery.queue, max(0.0, time.time() - delivery.enqueued_ms / 1000))
        raw = delivery.args[0] if len(delivery.args) == 1 and not delivery.kwargs else None
        if not isinstance(raw, dict):
            # Keep args and kwargs both: the dead letter must show what was actually sent.
            return self.reject(raw if raw is not None else {"args": list(delivery.args), "kwargs": delivery.kwargs},
                               "a command message carries exactly one JSON object as its only argument")
        if len(to_json(raw, fallback=str)) > MAX_COMMAND_BYTES:
            return self.reject(raw, f"command larger than {MAX_COMMAND_BYTES} bytes")
        try:
            cmd = CommandAdapter.validate_python(raw)
        except ValidationError as exc:
            problems: list[dict[str, Any]] = list(field_errors(exc))
            return self.reject(raw, f"invalid command: {len(problems)} field error(s)", problems)
        if actor_name(cmd.type) != delivery.actor:
            return self.reject(raw, f"command type {cmd.type} was sent to actor {delivery.actor}")
        try:
            merchant = self.contexts.merchants.resolve(cmd.msn)
        except UnknownMerchant as exc:
            # Nothing may reach Vipps: it would be called as some other merchant, or as none.
            return self.reject(raw, str(exc), [{"field": "msn", "text": str(exc)}])
        if cmd.msn is None:
            cmd = cmd.model_copy(update={"msn": merchant.msn})  # recorded with its merchant from here on
        command = cmd.model_dump(mode="json")
        with command_context(cmd.command_id, cmd.correlation_id, cmd.type, merchant.msn):
            return self._run(self.contexts.of(merchant.msn), cmd, command, delivery)

    def _run(self, ctx: Context, cmd: Command, command: dict[str, Any], delivery: Delivery) -> str:
        if self.batching is not None and self.batching.batches(cmd):
            return self._park(ctx, cmd, command, delivery)
        slot = budget_slot(ctx, cmd)
        claim = self.ledger.claim(command, owner=delivery.message_id, broker_id=self.broker_id,
                                  lease_ms=self.lease_ms, budget=slot)
        if claim.status is not ClaimStatus.CLAIMED:
            return self._not_claimed(cmd, command, claim)
        return self.attempt(ctx, cmd, command, claim.attempts, claim.first_attempt_ms, ack=delivery.ack, slot=slot,
                            budget_wait_ms=claim.budget_wait_ms)

    def _park(self, ctx: Context, cmd: Command, command: dict[str, Any], delivery: Delivery) -> str:
        """A charge.create for the batch endpoint: claimed and parked in its merchant's batch, where the batch
        sender takes it (``worker.core.charge_runs``)."""
        claim = self.ledger.park(command, batch=self.ledger.keys.charge_batch(ctx.msn), owner=delivery.message_id,
                                 broker_id=self.broker_id, lease_ms=self.lease_ms, ack=delivery.ack)
        if claim.status is ClaimStatus.PARKED:
            return "parked"
        return self._not_claimed(cmd, command, claim)

    def _not_claimed(self, cmd: Command, command: dict[str, Any], claim: Claim) -> str:
        if claim.status is ClaimStatus.MISMATCH:
            return self.reject(command, "command_id was used before for a different command", reused=True)
        if claim.status is ClaimStatus.DONE:
            self.ledger.observe(claim.events)
            self.observer.replayed(cmd.type, cmd.msn)
            self.observer.finished(cmd.type, "duplicate", None, cmd.msn)
            return "duplicate"
        # BUSY or WAIT: another attempt holds it, a retry is scheduled, or it waits in a charge batch: that path
        # finishes it (the sweeper re-drives it if its holder dies), so this delivery has nothing to add.
        self.observer.finished(cmd.type, "duplicate", None, cmd.msn)
        return "duplicate"

    def attempt(self, ctx: Context, cmd: Command, command: dict[str, Any], attempts: int, first_ms: int, *,
                ack: DeliveryAck | None = None, slot: BudgetSlot | None = None, budget_wait_ms: int = 0) -> str:
        """One attempt of a command this worker holds: call Vipps and record what came of it."""
        try:
            if budget_wait_ms:
                raise self._budget_exhausted(cmd, budget_wait_ms / 1000, slot.rule if slot else "")
            with ctx.client.prepaid(slot):
                outcome = self._handle(ctx, cmd, attempts)
        except errors.PermanentError as exc:
            return self.failed(ctx, cmd, command, exc, attempts)
        except (errors.TransientError, errors.AuthError) as exc:
            return self.transient(ctx, cmd, command, exc, attempts, first_ms)
        except Exception:
            self.ledger.release(command_ref(cmd.msn, cmd.command_id))
            raise
        self.ledger.finish(command, status="succeeded", events=outcome.events, watch=outcome.watch, ack=ack)
        self._index_external_id(cmd, outcome)
        self.done(cmd, "succeeded")
        return "succeeded"

    def _index_external_id(self, cmd: Command, outcome: Outcome) -> None:
        """Support finds agreements by the merchant's externalId, which Vipps cannot look up (store.externals)."""
        external_id = getattr(cmd, "external_id", None)
        if self.externals is None or not external_id or cmd.type not in ("agreement.create", "agreement.update"):
            return
        agreement_id = next((e.agreement_id for e in outcome.events if e.agreement_id), None)
        self.externals.remember(cmd.msn, external_id, agreement_id)

    @staticmethod
    def _handle(ctx: Context, cmd: Command, attempts: int) -> Outcome:
        try:
            return handle(ctx, cmd)
        except errors.PermanentError as refusal:
            if isinstance(cmd, c.ChargeCreate):
                made = charge_creation.already_created(ctx, cmd, refusal, attempts)
                if made is not None:
                    return made
            raise

    def _budget_exhausted(self, cmd: Command, wait: float, rule: str) -> errors.BudgetExhaustedError:
        operation = FIRST_CALL[cmd.type].id
        self.observer.budget_wait(operation, cmd.msn)
        return errors.BudgetExhaustedError(
            f"{operation}: rate budget exhausted, not sent; retry in {wait:.3f}s ({rule})", operation=operation,
            retry_after=wait)

    # -- outcomes --------------------------------------------------------------------------------

    def failed(self, ctx: Context, cmd: Command, command: dict[str, Any], exc: errors.VippsError,
                attempts: int) -> str:
        problem = vipps_problem(exc, "vipps_problem" if exc.status else "request_invalid")
        event = ctx.event(cmd, EventType.COMMAND_FAILED, **_ids(cmd), problem=problem, attempts=attempts)
        letter = self._dead_letter(cmd, command, "vipps_problem", str(exc), problem, attempts)
        if self.ledger.finish(command, status="failed", events=[event], error=problem, dead_letter=letter):
            self.observer.dead_lettered(letter.reason, cmd.msn)
        log.warning("command failed", extra={"problem_type": problem.get("type"), "status": exc.status,
                                             "context_id": problem.get("context_id")})
        self.done(cmd, "failed")
        return "failed"

    def transient(self, ctx: Context, cmd: Command, command: dict[str, Any], exc: errors.VippsError,
                   attempts: int, first_ms: int) -> str:
        reason = retry_reason(exc)
        not_sent = isinstance(exc, errors.BudgetExhaustedError)
        delay = self.retry.delay(attempts, exc)
        elapsed = (now_ms() - first_ms) / 1000
        used = attempts - (1 if not_sent else 0)
        problem = vipps_problem(exc, reason)
        if self.retry.exhausted(used, elapsed, delay):
            problem["reason"] = "retries_exhausted"
            event = ctx.event(cmd, EventType.COMMAND_DEAD_LETTERED, **_ids(cmd), problem=problem,
                                   attempts=used)
            letter = self._dead_letter(cmd, command, "retries_exhausted", str(exc), problem, used)
            if self.ledger.finish(command, status="dead_lettered", events=[event], error=problem, dead_letter=letter):
                self.observer.dead_lettered(letter.reason, cmd.msn)
            self.done(cmd, "dead_lettered")
            return "dead_lettered"
        self.ledger.retry_later(command_ref(cmd.msn, cmd.command_id), at_ms=now_ms() + int(delay * 1000), error=problem,
                                not_sent=not_sent)
        self.observer.retry_scheduled(cmd.type, reason, cmd.msn)
        log.info("retry scheduled", extra={"reason": reason, "delay_seconds": round(delay, 3),
                                           "attempt": used, "status": exc.status})
        return "retry"

    def reject(self, raw: Any, detail: str, problems: list[dict[str, Any]] | None = None, *,
               reused: bool = False) -> str:
        """Invalid input: one ``command.rejected`` event and a dead letter; nothing is sent to Vipps."""
        cid = raw.get("command_id") if isinstance(raw, dict) else None
        cid = cid if isinstance(cid, str) and 0 < len(cid) <= 64 else None
        ctype = raw.get("type") if isinstance(raw, dict) else None
        ctype = ctype if ctype in COMMAND_TYPES else None
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
        problem: dict[str, Any] = {"reason": "command_id_reused" if reused else "invalid_command",
                                   "detail": detail, "errors": problems or []}
        msn = self.msn_of(raw)
        origin = Origin(cid, _str_or_none(raw, "correlation_id"), msn, ctype)
        # The event before the dead letter: whoever sees the letter can see the event.
        self.ledger.observe([self.contexts.events.rejected(origin, digest, problem)])
        if self.dead_letters.add(DeadLetter(id=dead_letter_id("rejected", digest), reason=problem["reason"],
                                            detail=detail, at_ms=now_ms(), command_id=cid, command_type=ctype,
                                            problem=problem, payload=_bounded(raw), msn=msn)):
            self.observer.dead_lettered(problem["reason"], msn)
        self.observer.finished(ctype or "invalid", "rejected", None, msn)
        log.warning("command rejected", extra={"command_id": cid, "detail": detail})
        return "rejected"

    def msn_of(self, raw: Any) -> str | None:
        """The merchant a command that could not be carried out names, when it is one of ours (never arbitrary
        input); the only one, if it names none."""
        given = raw.get("msn") if isinstance(raw, dict) else None
        if isinstance(given, str) and self.contexts.merchants.get(given) is not None:
            return given
        only = self.contexts.merchants.only
        return only.msn if only is not None and given is None else None

    @staticmethod
    def _dead_letter(cmd: Command, command: dict[str, Any], reason: str, detail: str, problem: dict[str, Any],
                     attempts: int) -> DeadLetter:
        """The letter a command's terminal failure leaves; the ledger keeps it with the outcome, in one step."""
        return DeadLetter(id=dead_letter_id("command", command_ref(cmd.msn, cmd.command_id)), reason=reason,
                          detail=detail, at_ms=now_ms(), command_id=cmd.command_id, command_type=cmd.type,
                          attempts=attempts, problem=problem, payload=command, queue=None,
                          actor=actor_name(cmd.type), msn=cmd.msn)

    def done(self, cmd: Command, outcome: str) -> None:
        issued = cmd.issued_at if cmd.issued_at.tzinfo else cmd.issued_at.replace(tzinfo=dt.UTC)
        self.observer.finished(cmd.type, outcome, issued, cmd.msn)


def _ids(cmd: Command) -> dict[str, Any]:
    return {"agreement_id": getattr(cmd, "agreement_id", None), "charge_id": getattr(cmd, "charge_id", None)}


def _str_or_none(raw: Any, name: str) -> str | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    return value[:128] if isinstance(value, str) else None


def _bounded(raw: Any, limit: int = 32_768) -> Any:
    text = json.dumps(raw, default=str)
    return raw if len(text) <= limit else {"truncated": text[:limit]}
