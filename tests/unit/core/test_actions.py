"""Support actions' rules without Vipps: who and why, what may be done to a charge, amounts in kroner."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core.actions import Refused, audit, possible_moves
from worker.core.money import money, parse_kroner
from worker.vipps import models


def charge(status: str, amount: int = 10_000, captured: int = 0, refunded: int = 0,
           cancelled: int = 0) -> models.ChargeResponseV3:
    return models.ChargeResponseV3.model_validate({
        "id": "chr_1", "agreementId": "agr_1", "status": status, "type": "RECURRING", "amount": amount,
        "currency": "NOK", "description": "d", "due": "2030-01-01", "transactionType": "RESERVE_CAPTURE",
        "retryDays": 0, "externalId": None, "transactionId": "1", "history": [],
        "summary": {"captured": captured, "refunded": refunded, "cancelled": cancelled}})


def test_who_and_why_are_required() -> None:
    assert audit(" alice ", " ticket 4711 ") == {"operator": "alice", "reason": "ticket 4711"}
    with pytest.raises(Refused, match="reason is required"):
        audit("alice", "  ")
    with pytest.raises(Refused, match="operator is required"):
        audit("", "ticket 4711")


def test_what_may_be_done_to_a_charge() -> None:
    assert possible_moves(charge("RESERVED")) == {"capture", "cancel"}
    assert possible_moves(charge("CHARGED", captured=10_000)) == {"refund"}
    assert possible_moves(charge("PARTIALLY_REFUNDED", captured=10_000, refunded=9_950)) == set()
    assert possible_moves(charge("PARTIALLY_REFUNDED", captured=10_000, refunded=5_000)) == {"refund"}
    assert possible_moves(charge("REFUNDED", captured=10_000, refunded=10_000)) == set()
    assert possible_moves(charge("PENDING")) == {"cancel"}
    assert possible_moves(charge("FAILED")) == set()


@pytest.mark.parametrize("text, minor", [("10", 1000), ("10.5", 1050), ("10,50", 1050), ("1 000,05", 100005),
                                          (" 0.99 ", 99)])
def test_kroner_are_read_as_ore(text: str, minor: int) -> None:
    assert parse_kroner(text) == minor


@pytest.mark.parametrize("text", ["", "abc", "10.555", "-5", "1e3", "10.", "12,3,4"])
def test_what_is_not_an_amount_is_refused_with_the_format(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount in kroner"):
        parse_kroner(text)


@given(st.integers(min_value=0, max_value=2_147_483_647))
def test_an_amount_shown_reads_back_as_itself(minor: int) -> None:
    assert parse_kroner(money(minor).removesuffix(" NOK")) == minor
