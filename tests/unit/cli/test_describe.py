from __future__ import annotations

from worker.cli.common import describe
from worker.vipps.errors import BudgetExhaustedError


def test_a_budget_refusal_is_not_reported_as_a_vipps_answer() -> None:
    text = describe(BudgetExhaustedError("ListAgreementsV3: rate budget exhausted, not sent; retry in 41.000s",
                                         operation="ListAgreementsV3", retry_after=41.0))
    assert not text.startswith("Vipps said no") and "not sent; retry in 41.000s" in text and "rate limit" in text
