"""The batch sender: each merchant's parked ``charge.create`` commands, sent through the batch endpoint.

Every worker process runs one (a background loop). It takes a merchant's oldest parked commands under a
lease (``ChargeBatches.take``: no two senders send the same command), sends them as one request, and records
each command's outcome on its own, exactly as the pipeline records a single command's:

- in ``validCharges``: ``charge.created`` with ``completion: accepted``; the watcher then looks for the charge,
  which Vipps creates later (``charge.creation_failed`` if it never appears, or Vipps says so by webhook);
- in ``invalidCharges``: ``command.failed`` with Vipps's reasons and a dead letter, unless the charge turns out
  to exist already as the command's own (an earlier send whose answer was lost): then ``charge.created``;
- a transient failure of the whole request: each command is retried on its own schedule, and comes back to
  a batch; a permanent one: each fails with it.

A batch of one goes through the single endpoint (``CHARGE_BATCH=auto``), for its synchronous answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from schemas import CommandAdapter
from schemas import commands as c
from worker.core import charge_creation
from worker.core.batching import BatchPolicy
from worker.core.context import Context
from worker.core.idempotency import batch_key
from worker.core.logcontext import command_context
from worker.core.pipeline import Pipeline
from worker.store.batches import ChargeBatches, Taken
from worker.store.ledger import Terminal
from worker.vipps import Completion, errors, models
from worker.vipps import operations as op

log = logging.getLogger("worker.core.charge_runs")

INVALID_CHARGE = "invalid-charge"  # our problem type for a charge the batch endpoint refused


@dataclass(frozen=True)
class Item:
    taken: Taken
    cmd: c.ChargeCreate

    @property
    def command(self) -> dict[str, Any]:
        return self.taken.command


class ChargeRuns:
    def __init__(self, pipeline: Pipeline, batches: ChargeBatches, policy: BatchPolicy,
                 msns: Callable[[], Iterable[str]], *, lease_ms: int, broker_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pipeline = pipeline
        self.batches = batches
        self.policy = policy
        self.msns = msns
        self.lease_ms = lease_ms
        self.broker_id = broker_id
        self.clock = clock
        self._held: dict[str, float] = {}  # msn -> until when Vipps (or our budget) asked us to wait

    def flush(self) -> int:
        """Send every merchant's batch that is due; returns how many commands were sent."""
        now = self.clock()
        due = [msn for msn, waiting in self.batches.waiting(self.msns()).items()
               if self.policy.due(waiting) and self._held.get(msn, 0.0) <= now]
        return sum(self._flush(msn) for msn in due)

    def _flush(self, msn: str) -> int:
        taken = self.batches.take(msn, limit=self.policy.size, lease_ms=self.lease_ms,
                                  owner=f"batch-{uuid.uuid4().hex}", broker_id=self.broker_id)
        ctx = self.pipeline.contexts.of(msn)
        items = [item for item in (self._item(t) for t in taken) if item is not None]
        if len(items) == 1:
            self._alone(ctx, items[0])
        elif items:
            self._send(ctx, items)
        return len(taken)

    def _item(self, taken: Taken) -> Item | None:
        try:
            cmd = CommandAdapter.validate_python(taken.command)
        except ValidationError:
            # Valid when it was parked; only a change of the contract in between gets here.
            self.pipeline.reject(taken.command, "parked command no longer valid")
            self.pipeline.ledger.finish(taken.command, status="rejected", events=[])
            return None
        assert isinstance(cmd, c.ChargeCreate)
        return Item(taken, cmd)

    def _alone(self, ctx: Context, item: Item) -> None:
        cmd = item.cmd
        with command_context(cmd.command_id, cmd.correlation_id, cmd.type, ctx.msn):
            self.pipeline.attempt(ctx, cmd, item.command, item.taken.attempts, item.taken.first_attempt_ms)

    def _send(self, ctx: Context, items: list[Item]) -> None:
        by_order: dict[str, Item] = {}
        body: list[models.CreateChargeAsyncV3] = []
        alone: list[Item] = []
        for item in items:
            order_id = charge_creation.order_id(ctx, item.cmd)
            if order_id in by_order:
                alone.append(item)  # two commands naming one orderId: the single endpoint decides the second
                continue
            try:
                body.append(charge_creation.batch_item(ctx, item.cmd))
            except ValidationError as exc:
                refusal = errors.RequestValidationError(f"{op.CREATE_CHARGES_ASYNC.id}: {exc.error_count()} invalid "
                                                        "field(s) in the charge", operation=op.CREATE_CHARGES_ASYNC.id)
                self._failed(ctx, item, refusal)
                continue
            by_order[order_id] = item
        if by_order:
            # In orderId order: the same charges make the same body, so the same key (a replay at Vipps).
            self._request(ctx, by_order, models.ChargeBatchV3(sorted(body, key=lambda charge: charge.orderId)))
        for item in alone:
            self._alone(ctx, item)

    def _request(self, ctx: Context, by_order: dict[str, Item], body: models.ChargeBatchV3) -> None:
        try:
            answer = ctx.client.create_charges(body, idempotency_key=batch_key(ctx.msn, to_json(body.to_wire())))
        except errors.PermanentError as exc:
            for item in by_order.values():
                self._failed(ctx, item, exc)
            self.pipeline.observer.charge_batch(ctx.msn, len(by_order), "refused")
            return
        except (errors.TransientError, errors.AuthError) as exc:
            if isinstance(exc, errors.RateLimitedError) and exc.retry_after:
                self._held[ctx.msn] = self.clock() + exc.retry_after
            for item in by_order.values():
                self._transient(ctx, item, exc)
            outcome = "not_sent" if isinstance(exc, errors.BudgetExhaustedError) else "failed"
            self.pipeline.observer.charge_batch(ctx.msn, len(by_order), outcome)
            return
        self.pipeline.observer.charge_batch(ctx.msn, len(by_order), "sent")
        self._answered(ctx, by_order, answer)

    def _answered(self, ctx: Context, by_order: dict[str, Item], answer: models.AsyncChargeResponseV3) -> None:
        succeeded: list[tuple[Item, Terminal]] = []
        for order_id in answer.validCharges:
            item = by_order.pop(order_id, None)
            if item is not None:
                made = charge_creation.created(ctx, item.cmd, order_id, Completion.ACCEPTED, status=None)
                succeeded.append((item, Terminal(item.command, "succeeded", made.events, made.watch)))
        for invalid in answer.invalidCharges:
            item = by_order.pop(invalid.order_id, None) if invalid.order_id else None
            if item is None:
                continue
            refusal = errors.PermanentError(
                f"{op.CREATE_CHARGES_ASYNC.id}: Vipps refused the charge: {invalid.reasons()}",
                operation=op.CREATE_CHARGES_ASYNC.id, status=202,
                problem=errors.Problem(type=INVALID_CHARGE, title="Charge refused by the batch endpoint",
                                       detail=invalid.reasons(), status=202))
            try:
                found = charge_creation.already_created(ctx, item.cmd, refusal, item.taken.attempts)
            except (errors.TransientError, errors.AuthError) as exc:
                self._transient(ctx, item, exc)
                continue
            if found is None:
                self._failed(ctx, item, refusal)
            else:
                succeeded.append((item, Terminal(item.command, "succeeded", found.events, found.watch)))
        for item in by_order.values():
            missing = errors.UnexpectedResponseError(
                f"{op.CREATE_CHARGES_ASYNC.id}: the charge is in neither list of Vipps's answer",
                operation=op.CREATE_CHARGES_ASYNC.id, status=202, maybe_applied=True)
            self._transient(ctx, item, missing)
        self.pipeline.ledger.finish_many([terminal for _, terminal in succeeded])
        for item, _ in succeeded:
            self.pipeline.done(item.cmd, "succeeded")

    def _failed(self, ctx: Context, item: Item, exc: errors.VippsError) -> None:
        with command_context(item.cmd.command_id, item.cmd.correlation_id, item.cmd.type, ctx.msn):
            self.pipeline.failed(ctx, item.cmd, item.command, exc, item.taken.attempts)

    def _transient(self, ctx: Context, item: Item, exc: errors.VippsError) -> None:
        with command_context(item.cmd.command_id, item.cmd.correlation_id, item.cmd.type, ctx.msn):
            self.pipeline.transient(ctx, item.cmd, item.command, exc, item.taken.attempts,
                                    item.taken.first_attempt_ms)
