from __future__ import annotations

import datetime as dt
import re

from hypothesis import given
from hypothesis import strategies as st

from worker.core.idempotency import idempotency_key
from worker.core.retry import backoff
from worker.core.watch import next_charge_check
from worker.vipps import operations as op

VIPPS_KEY = re.compile(r"^[^#?/\\]{1,40}$")


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=30),
       st.sampled_from([op.CREATE_CHARGE, op.CAPTURE_CHARGE]))
def test_idempotency_keys_are_valid_for_vipps_and_stable(command_id: str, msn: str, operation: op.Operation) -> None:
    key = idempotency_key(msn, command_id, operation)
    assert VIPPS_KEY.match(key)
    assert key == idempotency_key(msn, command_id, operation)
    assert key != idempotency_key(msn, command_id + "x", operation)
    assert key != idempotency_key(msn + "x", command_id, operation)


def test_each_operation_gets_its_own_key() -> None:
    keys = {idempotency_key("123456", "c-1", operation) for operation in op.V3_OPERATIONS}
    assert len(keys) == len(op.V3_OPERATIONS)


@given(st.integers(min_value=1, max_value=60))
def test_backoff_grows_and_stays_within_bounds(attempt: int) -> None:
    delay = backoff(attempt, 1.0, 300.0)
    ceiling = min(300.0, 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


def test_charge_checks_follow_the_processing_rounds() -> None:
    due = dt.date(2026, 12, 1)
    before = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    assert next_charge_check(before, due, 2) == dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    between = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert next_charge_check(between, due, 2) == dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC)
    last_round = dt.datetime(2026, 12, 3, 17, tzinfo=dt.UTC)
    assert next_charge_check(last_round, due, 2) == dt.datetime(2026, 12, 4, 0, 5, tzinfo=dt.UTC)
    assert next_charge_check(dt.datetime(2026, 12, 5, tzinfo=dt.UTC), due, 2) is None
