"""Request-body validation with the constraints of the official v3 spec.

Numbers sent as JSON strings (``"count": "1"``, as the Postman collection does) are accepted where
the real API's JSON binding accepts them; unknown fields are ignored. Every failure is collected into
``extraDetails`` ``{field, text}`` of one ``validation-error`` problem.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from worker.simulator.clock import parse_iso
from worker.simulator.problems import Problem, validation_error

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
UNITS = ("YEAR", "MONTH", "WEEK", "DAY")
TRANSACTION_TYPES = ("DIRECT_CAPTURE", "RESERVE_CAPTURE")
SCOPES = {"name", "address", "email", "phoneNumber", "birthDate", "nin"}
CAMPAIGN_TYPES = ("PRICE_CAMPAIGN", "PERIOD_CAMPAIGN", "EVENT_CAMPAIGN", "FULL_FLEX_CAMPAIGN")
ORDER_ID = re.compile(r"^[a-zA-Z0-9-]{1,50}$")
EXTERNAL_ID = re.compile(r"^.{1,64}$")
DIGITS = re.compile(r"^-?\d+$")
CHARGE_TYPES = ("RECURRING", "UNSCHEDULED")
PROCESSING_MODES = ("MULTIPLE_ATTEMPTS", "SINGLE_ATTEMPT")
# The only source a draft may block (CHANGES §4.1).
BLOCKABLE_SOURCES = ("COMMERCIAL_CARDS",)


class Checker:
    """Collects field errors while reading a JSON object."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def fail(self, field: str, text: str) -> None:
        self.errors.append({"field": field, "text": text})

    def raise_if_failed(self) -> None:
        if self.errors:
            raise validation_error(self.errors)

    def _present(self, parent: dict[str, Any], key: str, path: str, required: bool) -> Any:
        """The value, or None when absent (a failure if it is required)."""
        value = parent.get(key)
        if value is None and required:
            self.fail(path, "must not be null")
        return value

    def obj(self, parent: dict[str, Any], key: str, path: str, required: bool = False) -> dict[str, Any] | None:
        value = self._present(parent, key, path, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        return value

    def int_(
        self,
        parent: dict[str, Any],
        key: str,
        path: str,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._present(parent, key, path, required)
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and DIGITS.match(value.strip()):
            number = int(value.strip())
        if number is None or not INT32_MIN <= number <= INT32_MAX:
            self.fail(path, "must be an integer")
            return None
        if minimum is not None and number < minimum:
            self.fail(path, f"must be greater than or equal to {minimum}")
            return None
        if maximum is not None and number > maximum:
            self.fail(path, f"must be less than or equal to {maximum}")
            return None
        return number

    def str_(
        self,
        parent: dict[str, Any],
        key: str,
        path: str,
        required: bool = False,
        min_len: int = 0,
        max_len: int | None = None,
        pattern: re.Pattern[str] | None = None,
        enum: tuple[str, ...] | None = None,
    ) -> str | None:
        value = self._present(parent, key, path, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(path, "must be a string")
            return None
        text = value if isinstance(value, str) else str(value)
        if enum is not None and text not in enum:
            self.fail(path, f"must be one of {', '.join(enum)}")
            return None
        if len(text) < min_len:
            self.fail(path, "must not be empty" if min_len == 1 else f"length must be at least {min_len}")
            return None
        if max_len is not None and len(text) > max_len:
            self.fail(path, f"length must be at most {max_len}")
            return None
        if pattern is not None and not pattern.match(text):
            self.fail(path, f"must match {pattern.pattern}")
            return None
        return text

    def bool_(self, parent: dict[str, Any], key: str, path: str) -> bool:
        value = parent.get(key)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(path, "must be a boolean")
        return False

    def datetime_(self, parent: dict[str, Any], key: str, path: str, required: bool = False) -> str | None:
        text = self.str_(parent, key, path, required=required)
        if text is None:
            return None
        try:
            # The spec's own examples write dates as 2022/02/28T00:00:00Z; accept both separators.
            parsed = parse_iso(text.replace("/", "-"))
        except ValueError:
            self.fail(path, "must be an RFC 3339 date-time")
            return None
        return _iso(parsed)

    def period(self, parent: dict[str, Any], key: str, path: str, required: bool = True) -> dict[str, Any] | None:
        value = self.obj(parent, key, path, required=required)
        if value is None:
            return None
        unit = self.str_(value, "unit", f"{path}.unit", required=True, enum=UNITS)
        count = self.int_(value, "count", f"{path}.count", required=True, minimum=1, maximum=31)
        if unit is None or count is None:
            return None
        return {"unit": unit, "count": count}


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Problem(400, "invalid-json", "The request body must be a JSON object")
    return body


def draft_agreement(body: Any, skip_landing_page_allowed: bool) -> dict[str, Any]:
    body = require_object(body)
    c = Checker()
    out: dict[str, Any] = {}
    pricing = c.obj(body, "pricing", "pricing", required=True)
    if pricing is not None:
        out.update(_pricing(c, pricing))
    out["interval"] = c.period(body, "interval", "interval")
    is_app = c.bool_(body, "isApp", "isApp")
    out["is_app"] = is_app
    out["merchant_redirect_url"] = c.str_(
        body, "merchantRedirectUrl", "merchantRedirectUrl", required=True, min_len=1, max_len=1024
    )
    agreement_url = c.str_(body, "merchantAgreementUrl", "merchantAgreementUrl", required=True, min_len=1, max_len=1024)
    if agreement_url is not None and not is_app and not agreement_url.lower().startswith("https://"):
        c.fail("merchantAgreementUrl", "only the HTTPS scheme is allowed")
    out["merchant_agreement_url"] = agreement_url
    out["product_name"] = c.str_(body, "productName", "productName", required=True, min_len=1, max_len=45)
    out["product_description"] = c.str_(body, "productDescription", "productDescription", max_len=100)
    out["phone_number"] = c.str_(body, "phoneNumber", "phoneNumber", max_len=15)
    scope = c.str_(body, "scope", "scope")
    if scope is not None and not set(scope.split()) <= SCOPES:
        c.fail("scope", f"must be a space-separated list of {', '.join(sorted(SCOPES))}")
    out["scope"] = scope
    out["external_id"] = c.str_(body, "externalId", "externalId", min_len=1, max_len=64, pattern=EXTERNAL_ID)
    c.str_(body, "countryCode", "countryCode", enum=("NO",))
    skip_landing = c.bool_(body, "skipLandingPage", "skipLandingPage")
    initial = c.obj(body, "initialCharge", "initialCharge")
    if initial is not None:
        out["initial_charge"] = _initial_charge(c, initial)
    payment_method = c.obj(body, "paymentMethod", "paymentMethod")
    if payment_method is not None:
        out["blocked_sources"] = _blocked_sources(c, payment_method)
    campaign = c.obj(body, "campaign", "campaign")
    if campaign is not None:
        out["campaign"] = _campaign(c, campaign)
        if out.get("pricing_type") == "VARIABLE":
            c.fail("campaign", "campaigns cannot be combined with VARIABLE pricing")
    c.raise_if_failed()
    if skip_landing and not skip_landing_page_allowed:
        raise Problem(403, "invalid-sale-unit", "skipLandingPage is not enabled for this sales unit")
    return out


def _blocked_sources(c: Checker, payment_method: dict[str, Any]) -> list[str]:
    path = "paymentMethod.blockedSources"
    sources = payment_method.get("blockedSources")
    if sources is None:
        return []
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        c.fail(path, "must be a list of strings")
        return []
    unknown = [s for s in sources if s not in BLOCKABLE_SOURCES]
    if unknown:
        c.fail(path, f"must contain only {', '.join(BLOCKABLE_SOURCES)}")
    return list(dict.fromkeys(sources))


def _pricing(c: Checker, pricing: dict[str, Any]) -> dict[str, Any]:
    ptype = c.str_(pricing, "type", "pricing.type", enum=("LEGACY", "VARIABLE")) or "LEGACY"
    c.str_(pricing, "currency", "pricing.currency", required=True, enum=("NOK",))
    if ptype == "LEGACY":
        amount = c.int_(pricing, "amount", "pricing.amount", required=True, minimum=100)
        return {"pricing_type": ptype, "amount": amount}
    suggested = c.int_(pricing, "suggestedMaxAmount", "pricing.suggestedMaxAmount", required=True, minimum=100)
    if suggested is not None and suggested > 2_000_000:
        # Its own problem type, not a validation-error (NOTES §5.2).
        raise Problem(
            400,
            "invalid-suggested-max-amount",
            "suggestedMaxAmount must be at most 2000000 (20 000 NOK)",
            extra=[{"field": "pricing.suggestedMaxAmount", "text": "must be less than or equal to 2000000"}],
        )
    return {"pricing_type": ptype, "suggested_max_amount": suggested}


def _initial_charge(c: Checker, initial: dict[str, Any]) -> dict[str, Any]:
    return {
        # No minimum in the spec ("no price limit"); a non-positive payment is meaningless.
        "amount": c.int_(initial, "amount", "initialCharge.amount", required=True, minimum=1),
        "description": c.str_(initial, "description", "initialCharge.description", required=True, min_len=1),
        "transaction_type": c.str_(
            initial, "transactionType", "initialCharge.transactionType", required=True, enum=TRANSACTION_TYPES
        ),
        "order_id": c.str_(initial, "orderId", "initialCharge.orderId", pattern=ORDER_ID),
        "external_id": c.str_(
            initial, "externalId", "initialCharge.externalId", min_len=1, max_len=64, pattern=EXTERNAL_ID
        ),
    }


def _campaign(c: Checker, campaign: dict[str, Any]) -> dict[str, Any] | None:
    ctype = c.str_(campaign, "type", "campaign.type", required=True, enum=CAMPAIGN_TYPES)
    price = c.int_(campaign, "price", "campaign.price", required=True, minimum=0)
    out: dict[str, Any] = {"type": ctype, "price": price}
    if ctype == "PRICE_CAMPAIGN":
        out["end"] = c.datetime_(campaign, "end", "campaign.end", required=True)
    elif ctype == "PERIOD_CAMPAIGN":
        out["period"] = c.period(campaign, "period", "campaign.period")
    elif ctype == "EVENT_CAMPAIGN":
        out["eventDate"] = c.datetime_(campaign, "eventDate", "campaign.eventDate", required=True)
        out["eventText"] = c.str_(campaign, "eventText", "campaign.eventText", required=True, min_len=1)
    elif ctype == "FULL_FLEX_CAMPAIGN":
        out["interval"] = c.period(campaign, "interval", "campaign.interval")
        out["end"] = c.datetime_(campaign, "end", "campaign.end", required=True)
    return out


def patch_agreement(body: Any) -> dict[str, Any]:
    body = require_object(body)
    c = Checker()
    out: dict[str, Any] = {}
    for key, max_len in (("productName", 45), ("productDescription", 100), ("merchantAgreementUrl", 1024)):
        if key in body:
            out[key] = c.str_(body, key, key, required=True, min_len=1, max_len=max_len)
    if "externalId" in body:
        out["externalId"] = c.str_(body, "externalId", "externalId", required=True, max_len=64, pattern=EXTERNAL_ID)
    if "status" in body:
        out["status"] = c.str_(body, "status", "status", required=True, enum=("STOPPED",))
    pricing = c.obj(body, "pricing", "pricing")
    if pricing is not None:
        if "amount" in pricing:
            out["amount"] = c.int_(pricing, "amount", "pricing.amount", required=True, minimum=100)
        if "suggestedMaxAmount" in pricing:
            out["suggestedMaxAmount"] = c.int_(
                pricing,
                "suggestedMaxAmount",
                "pricing.suggestedMaxAmount",
                required=True,
                minimum=100,
                maximum=2_000_000,
            )
    if "paymentMethod" in body:
        # Blocked sources are chosen when the agreement is drafted and never changed (CHANGES §4.1).
        c.fail("paymentMethod", "cannot be changed after the agreement is created")
    interval = c.obj(body, "interval", "interval")
    if interval is not None:
        c.str_(interval, "type", "interval.type", enum=("RECURRING",))
        out["interval"] = c.period(interval, "period", "interval.period")
    c.raise_if_failed()
    if out.get("status") == "STOPPED" and len(out) > 1:
        raise validation_error(
            [{"field": "status", "text": "no other changes are allowed when stopping an agreement"}],
            "When stopping an agreement no other changes are allowed",
        )
    return out


def force_accept(body: Any) -> str:
    body = require_object(body)
    c = Checker()
    phone = c.str_(body, "phoneNumber", "phoneNumber", required=True, min_len=1, max_len=15)
    c.raise_if_failed()
    assert phone is not None
    return phone


def create_charge(body: Any, today: date, min_lead_days: int, max_days: int) -> dict[str, Any]:
    """A create-charge body: RECURRING (due, retryDays) or UNSCHEDULED (neither; processed at once)."""
    body = require_object(body)
    c = Checker()
    kind = c.str_(body, "type", "type", enum=CHARGE_TYPES) or "RECURRING"
    mode = c.str_(body, "processingMode", "processingMode", enum=PROCESSING_MODES) or "MULTIPLE_ATTEMPTS"
    out: dict[str, Any] = {
        "type": kind,
        "processing_mode": mode,
        "amount": c.int_(body, "amount", "amount", required=True, minimum=100),
        "transaction_type": c.str_(body, "transactionType", "transactionType", required=True, enum=TRANSACTION_TYPES),
        "description": c.str_(body, "description", "description", required=True, min_len=1, max_len=45),
        "order_id": c.str_(body, "orderId", "orderId", min_len=1, max_len=50, pattern=ORDER_ID),
        "external_id": c.str_(body, "externalId", "externalId", min_len=1, max_len=64, pattern=EXTERNAL_ID),
    }
    if kind == "UNSCHEDULED":
        for name in ("due", "retryDays"):
            if body.get(name) is not None:
                c.fail(name, "must not be given for an UNSCHEDULED charge")
        c.raise_if_failed()
        # One attempt at once, whatever processingMode says (it does not apply to UNSCHEDULED).
        out.update(due=today, retry_days=0, processing_mode="SINGLE_ATTEMPT")
        return out
    out["retry_days"] = c.int_(body, "retryDays", "retryDays", required=True, minimum=0, maximum=14)
    if mode == "SINGLE_ATTEMPT" and out["retry_days"] not in (None, 0):
        c.fail("retryDays", "must be 0 when processingMode is SINGLE_ATTEMPT")
    due_text = c.str_(body, "due", "due", required=True)
    due: date | None = None
    if due_text is not None:
        try:
            due = date.fromisoformat(due_text) if len(due_text) == 10 else None
        except ValueError:
            due = None
        if due is None:
            c.fail("due", "must be a date in the format YYYY-MM-DD")
    c.raise_if_failed()
    assert due is not None
    if (due - today).days < min_lead_days:
        raise Problem(
            400,
            "charge-due-too-soon",
            f"The due date must be a minimum of {min_lead_days} day(s) in the future",
            extra=[{"field": "due", "text": f"must be at least {min_lead_days} day(s) after {today.isoformat()}"}],
        )
    if (due - today).days > max_days:
        raise Problem(
            400,
            "charge-due-in-too-long",
            "The due date can not be more than 2 years in the future",
            extra=[{"field": "due", "text": f"must be at most {max_days} days ahead"}],
        )
    out["due"] = due
    return out


def amount_request(body: Any) -> tuple[int, str]:
    """Capture and refund bodies: ``{amount >= 100, description}``."""
    body = require_object(body)
    c = Checker()
    amount = c.int_(body, "amount", "amount", required=True, minimum=100)
    description = c.str_(body, "description", "description", required=True, min_len=1)
    c.raise_if_failed()
    assert amount is not None and description is not None
    return amount, description
