from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import COMMAND_TYPES, CommandAdapter, actor_name
from schemas.export import JSON_DIR, render, schemas
from schemas.problems import field_errors

NOW = "2026-11-24T08:00:00Z"


def cmd(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"command_id": "c-1", "issued_at": NOW}
    base.update(fields)
    return base


def test_json_schema_files_match_the_models() -> None:
    for name, schema in schemas().items():
        on_disk = (JSON_DIR / name).read_text()
        assert on_disk == render(schema), f"schemas/json/{name} is stale: run `uv run python -m schemas.export`"


def test_every_command_type_has_a_model_and_an_actor_name() -> None:
    variants = {v["properties"]["type"]["const"] for v in CommandAdapter.json_schema()["$defs"].values()
                if "type" in v.get("properties", {}) and "const" in v["properties"]["type"]
                and "command_id" in v["properties"]}
    assert variants == set(COMMAND_TYPES)
    assert actor_name("charge.create") == "charge_create"


def test_charge_create_parses_with_integer_minor_units() -> None:
    c = CommandAdapter.validate_python(cmd(type="charge.create", agreement_id="agr_1", amount=49900,
                                           description="November", due="2026-12-01", retry_days=3,
                                           transaction_type="DIRECT_CAPTURE"))
    assert c.type == "charge.create"
    assert c.amount == 49900
    assert c.due == dt.date(2026, 12, 1)


@pytest.mark.parametrize("amount", [99.5, 150.0, "150", -100, 0, 99, True, 2**31])
def test_charge_amount_must_be_an_integer_of_at_least_100(amount: Any) -> None:
    with pytest.raises(ValidationError):
        CommandAdapter.validate_python(cmd(type="charge.create", agreement_id="agr_1", amount=amount,
                                           description="x", due="2026-12-01", retry_days=0,
                                           transaction_type="DIRECT_CAPTURE"))


def test_stop_must_change_nothing_else() -> None:
    stop = CommandAdapter.validate_python(cmd(type="agreement.update", agreement_id="agr_1", status="STOPPED"))
    assert stop.type == "agreement.update" and stop.status == "STOPPED"
    with pytest.raises(ValidationError, match="a stop changes nothing else"):
        CommandAdapter.validate_python(cmd(type="agreement.update", agreement_id="agr_1", status="STOPPED",
                                           product_name="New"))
    with pytest.raises(ValidationError, match="at least one field"):
        CommandAdapter.validate_python(cmd(type="agreement.update", agreement_id="agr_1"))


@pytest.mark.parametrize("bad", [
    {"type": "charge.explode"},
    {"type": "charge.fetch", "agreement_id": "agr_1"},
    {"type": "charge.fetch", "agreement_id": "agr_1", "charge_id": "c/../x"},
    {"type": "charge.fetch", "agreement_id": "agr_1", "charge_id": "chr-1", "extra": 1},
    {"type": "agreement.fetch", "agreement_id": "agr_1", "command_id": "x" * 65},
    {"type": "agreement.fetch", "agreement_id": "agr_1", "command_id": "spaces are bad"},
    {"type": "agreement.fetch", "agreement_id": "agr_1", "msn": "12"},
])
def test_malformed_commands_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CommandAdapter.validate_python(cmd(**bad))


def test_agreement_create_pricing_rules() -> None:
    base = cmd(type="agreement.create", product_name="Gym", interval={"unit": "MONTH", "count": 1},
               merchant_redirect_url="https://example.com/back", merchant_agreement_url="https://example.com/a")
    ok = CommandAdapter.validate_python({**base, "pricing": {"amount": 29900}})
    assert ok.type == "agreement.create" and ok.pricing.amount == 29900
    with pytest.raises(ValidationError):
        CommandAdapter.validate_python({**base, "pricing": {"type": "VARIABLE", "amount": 29900}})
    with pytest.raises(ValidationError):
        CommandAdapter.validate_python({**base, "pricing": {"amount": 29900},
                                        "merchant_agreement_url": "http://insecure.example.com"})


@pytest.mark.parametrize(("campaign", "valid"), [
    ({"type": "PRICE_CAMPAIGN", "price": 100, "end": "2027-01-01T00:00:00Z"}, True),
    ({"type": "PERIOD_CAMPAIGN", "price": 0, "period": {"unit": "WEEK", "count": 10}}, True),
    ({"type": "EVENT_CAMPAIGN", "price": 4900, "event_date": "2027-03-01T00:00:00+01:00",
      "event_text": "until the season starts"}, True),
    ({"type": "FULL_FLEX_CAMPAIGN", "price": 1000, "interval": {"unit": "WEEK", "count": 1},
      "end": "2027-01-01T00:00:00Z"}, True),
    ({"type": "PRICE_CAMPAIGN", "price": 100}, False),                                   # no end
    ({"type": "PRICE_CAMPAIGN", "price": 100, "end": "2027-01-01T00:00:00"}, False),     # no UTC offset
    ({"type": "PRICE_CAMPAIGN", "price": 1.5, "end": "2027-01-01T00:00:00Z"}, False),    # not minor units
    ({"type": "PRICE_CAMPAIGN", "price": -1, "end": "2027-01-01T00:00:00Z"}, False),
    ({"type": "PERIOD_CAMPAIGN", "price": 100, "end": "2027-01-01T00:00:00Z"}, False),   # fields of another type
    ({"type": "LEGACY_CAMPAIGN", "price": 100}, False),                                  # not for new agreements
])
def test_agreement_create_campaigns(campaign: dict[str, Any], valid: bool) -> None:
    base = cmd(type="agreement.create", product_name="Gym", interval={"unit": "MONTH", "count": 1},
               pricing={"amount": 29900}, merchant_redirect_url="https://example.com/back",
               merchant_agreement_url="https://example.com/a", campaign=campaign)
    if valid:
        assert CommandAdapter.validate_python(base).campaign.type == campaign["type"]
    else:
        with pytest.raises(ValidationError):
            CommandAdapter.validate_python(base)


def test_no_campaign_with_variable_pricing() -> None:
    with pytest.raises(ValidationError, match="VARIABLE"):
        CommandAdapter.validate_python(cmd(
            type="agreement.create", product_name="Gym", interval={"unit": "MONTH", "count": 1},
            pricing={"type": "VARIABLE", "suggested_max_amount": 50000}, merchant_redirect_url="https://e.com/b",
            merchant_agreement_url="https://example.com/a",
            campaign={"type": "PERIOD_CAMPAIGN", "price": 0, "period": {"unit": "WEEK", "count": 2}}))


CHARGE = cmd(type="charge.create", agreement_id="agr_1", amount=49900, description="November",
             transaction_type="DIRECT_CAPTURE")


@pytest.mark.parametrize("given", [
    {"due": "2026-12-01", "retry_days": 3},
    {"due": "2026-12-01", "retry_days": 3, "charge_type": "RECURRING", "processing_mode": "MULTIPLE_ATTEMPTS"},
    {"due": "2026-12-01", "retry_days": 0, "processing_mode": "SINGLE_ATTEMPT"},
    {"charge_type": "UNSCHEDULED"},
])
def test_charge_types_and_processing_modes(given: dict[str, Any]) -> None:
    charge = CommandAdapter.validate_python(CHARGE | given)
    assert charge.type == "charge.create"
    assert charge.charge_type == given.get("charge_type", "RECURRING")


@pytest.mark.parametrize(("given", "field", "text"), [
    ({"due": "2026-12-01", "retry_days": 2, "processing_mode": "SINGLE_ATTEMPT"}, "retry_days", "SINGLE_ATTEMPT"),
    ({"charge_type": "UNSCHEDULED", "due": "2026-12-01"}, "due", "UNSCHEDULED"),
    ({"charge_type": "UNSCHEDULED", "retry_days": 0}, "retry_days", "UNSCHEDULED"),
    ({"charge_type": "UNSCHEDULED", "processing_mode": "SINGLE_ATTEMPT"}, "processing_mode", "UNSCHEDULED"),
    ({"retry_days": 2}, "due", "RECURRING"),
    ({"charge_type": "RECURRING", "due": "2026-12-01"}, "retry_days", "RECURRING"),
    ({"charge_type": "ONE_OFF", "due": "2026-12-01", "retry_days": 2}, "charge_type", "RECURRING"),
    ({"due": "2026-12-01", "retry_days": 2, "processing_mode": "TWICE"}, "processing_mode", "SINGLE_ATTEMPT"),
])
def test_charge_type_rules_name_the_field(given: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        CommandAdapter.validate_python(CHARGE | given)
    errors = field_errors(info.value)
    assert [e["field"] for e in errors] == [f"charge.create.{field}"]
    assert text in errors[0]["text"]


def test_fields_at_their_defaults_leave_the_recorded_command_as_it_was() -> None:
    """The ledger fingerprints the dump: a command recorded before these fields existed is still the same."""
    plain = CommandAdapter.validate_python(CHARGE | {"due": "2026-12-01", "retry_days": 3})
    explicit = CommandAdapter.validate_python(CHARGE | {"due": "2026-12-01", "retry_days": 3,
                                                        "charge_type": "RECURRING"})
    assert plain.model_dump(mode="json") == explicit.model_dump(mode="json")
    assert not {"charge_type", "processing_mode"} & set(plain.model_dump(mode="json"))
    agreement = CommandAdapter.validate_python(AGREEMENT)
    assert "blocked_sources" not in agreement.model_dump(mode="json")
    blocked = CommandAdapter.validate_python(AGREEMENT | {"blocked_sources": ["COMMERCIAL_CARDS"]})
    assert blocked.model_dump(mode="json")["blocked_sources"] == ["COMMERCIAL_CARDS"]


AGREEMENT = cmd(type="agreement.create", product_name="Gym", interval={"unit": "MONTH", "count": 1},
                pricing={"amount": 29900}, merchant_redirect_url="https://example.com/back",
                merchant_agreement_url="https://example.com/a")


@pytest.mark.parametrize(("blocked", "field"), [
    (["CORPORATE"], "agreement.create.blocked_sources.0"),
    (["COMMERCIAL_CARDS", "COMMERCIAL_CARDS"], "agreement.create.blocked_sources"),
    ("COMMERCIAL_CARDS", "agreement.create.blocked_sources"),
])
def test_blocked_sources_are_known_and_unique(blocked: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CommandAdapter.validate_python(AGREEMENT | {"blocked_sources": blocked})
    assert [e["field"] for e in field_errors(info.value)] == [field]


def test_blocked_sources_cannot_be_updated() -> None:
    with pytest.raises(ValidationError) as info:
        CommandAdapter.validate_python(cmd(type="agreement.update", agreement_id="agr_1", product_name="New",
                                           blocked_sources=["COMMERCIAL_CARDS"]))
    assert [e["field"] for e in field_errors(info.value)] == ["agreement.update.blocked_sources"]
