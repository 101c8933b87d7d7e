"""A refused charge creation recognised as the command's own charge, or not: the rule that keeps a resend (a lost
answer, a crash mid-batch, an upgrade) from turning a made charge into a failed command."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import EventType
from tests.unit.core.test_charge_and_agreement_fields import MSN, charge_command, context
from worker.core import charge_creation
from worker.core.idempotency import batch_key, charge_order_id
from worker.vipps import errors, models

OWN = {"amount": 29900, "description": "March", "due": "2026-12-05", "status": "PENDING",
       "transactionType": "DIRECT_CAPTURE"}


class Vipps:
    """Charges by id at one agreement; counts what was asked."""

    def __init__(self, charges: dict[str, dict[str, Any]]) -> None:
        self.charges = charges
        self.fetched: list[str] = []
        self.listed = 0

    def fetch_charge(self, agreement_id: str, charge_id: str) -> models.ChargeResponseV3:
        self.fetched.append(charge_id)
        if charge_id not in self.charges:
            raise errors.PermanentError("FetchChargeV3: 404", operation="FetchChargeV3", status=404)
        return models.ChargeResponseV3.model_validate({"id": charge_id} | self.charges[charge_id])

    def list_charges(self, agreement_id: str) -> list[models.ChargeResponseV3]:
        self.listed += 1
        return [models.ChargeResponseV3.model_validate({"id": cid} | ch) for cid, ch in self.charges.items()]


def refused(status: int, detail: str, kind: type[errors.PermanentError] = errors.PermanentError) -> errors.VippsError:
    return kind(f"CreateChargeV3: {detail}", operation="CreateChargeV3", status=status,
                problem=errors.Problem(type="charge-creation-failed", detail=detail, status=status))


def cmd_and_id() -> tuple[Any, str]:
    cmd = charge_command(due="2026-12-05", retry_days=2)
    return cmd, charge_order_id(MSN, cmd.command_id)


def test_a_first_attempt_refused_for_another_reason_fetches_nothing() -> None:
    cmd, order_id = cmd_and_id()
    vipps = Vipps({order_id: OWN})
    made = charge_creation.already_created(context(vipps), cmd, refused(400, "Agreement is not active"), 1)
    assert made is None and vipps.fetched == []


@pytest.mark.parametrize(("status", "detail", "attempts"), [
    (400, "Agreement is not active", 2),            # an earlier attempt may have made it
    (409, "Conflict", 1),                           # the single endpoint's answer to a taken orderId
    (400, "orderId is already in use", 1),          # the batch endpoint's, in words
])
def test_a_refusal_that_may_mean_it_exists_finds_the_commands_own_charge(status: int, detail: str,
                                                                         attempts: int) -> None:
    cmd, order_id = cmd_and_id()
    vipps = Vipps({order_id: OWN})
    made = charge_creation.already_created(context(vipps), cmd, refused(status, detail), attempts)
    assert made is not None and vipps.fetched == [order_id]
    [event] = made.events
    assert event.type is EventType.CHARGE_CREATED and event.charge_id == order_id and event.completion == "done"


def test_another_charge_under_the_orderid_or_none_leaves_the_refusal_standing() -> None:
    cmd, order_id = cmd_and_id()
    assert charge_creation.already_created(context(Vipps({order_id: OWN | {"amount": 100}})), cmd,
                                           refused(409, "Conflict"), 2) is None
    assert charge_creation.already_created(context(Vipps({})), cmd, refused(409, "Conflict"), 2) is None
    for status in (429, 503):  # not a refusal of this charge
        assert not charge_creation.may_exist(refused(status, "orderId already"), 3)


def test_a_key_first_sent_without_an_orderid_finds_the_charge_by_what_it_is() -> None:
    """An upgrade: an older worker sent the command without an orderId; the resend's body differs, so Vipps
    answers 409 idempotency-conflict. The charge it made has Vipps's own id."""
    cmd, _ = cmd_and_id()
    vipps = Vipps({"chr-AbC123x": OWN, "chr-other": OWN | {"description": "April"}})
    conflict = refused(409, "idempotency-conflict", errors.IdempotencyConflictError)
    made = charge_creation.already_created(context(vipps), cmd, conflict, 2)
    assert made is not None and made.events[0].charge_id == "chr-AbC123x" and vipps.listed == 1
    twice = Vipps({"chr-1": OWN, "chr-2": OWN})  # two such charges: which one is unknown, the refusal stands
    assert charge_creation.already_created(context(twice), cmd, conflict, 2) is None


def test_order_ids_and_batch_keys_are_stable_and_within_vipps_rules() -> None:
    order_id = charge_order_id(MSN, "inv-2026-12-0042")
    assert order_id == charge_order_id(MSN, "inv-2026-12-0042") != charge_order_id("654321", "inv-2026-12-0042")
    assert len(order_id) == 20 and order_id.replace("-", "").isalnum() and order_id.islower()
    key = batch_key(MSN, b'[{"orderId":"a"}]')
    assert key == batch_key(MSN, b'[{"orderId":"a"}]') != batch_key(MSN, b'[{"orderId":"b"}]')
    assert len(key) <= 40 and not set(key) & set("#?/\\")
