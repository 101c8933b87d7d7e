"""Support's reads: a failure reason in plain words, and the confirmation URL from a timeline."""

from __future__ import annotations

from worker.core.lookups import FAILURE_REASONS, confirmation_url, failure_in_words
from worker.vipps import models


def test_every_failure_reason_vipps_sends_has_plain_words_and_advice() -> None:
    assert set(FAILURE_REASONS) == {r.value for r in models.FailureReason}
    said = failure_in_words(models.FailureReason("charge_amount_too_high"))
    assert said is not None and said.startswith("charge_amount_too_high: ")
    assert "maximum amount in the Vipps app" in said


def test_an_unknown_or_missing_reason() -> None:
    assert failure_in_words("something_new") == "something_new"
    assert failure_in_words(None) is None


def test_the_confirmation_url_is_the_created_event_s() -> None:
    events = [{"type": "agreement.snapshot"}, {"type": "agreement.created", "vipps_confirmation_url": "https://x/c"},
              {"type": "agreement.activated"}]
    assert confirmation_url(events) == "https://x/c"
    assert confirmation_url(events[:1]) is None
