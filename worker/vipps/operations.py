"""The Vipps operations the worker calls: method, path template and whether an Idempotency-Key is required.

The Recurring v3 operations, the Webhooks API's, and the one Management API lookup the CLI checks a merchant
with. Operation names are the specs' operationIds (ours where a spec names none); they are also the metric
and log labels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str  # template with {agreementId} / {chargeId} (or {msn}, {webhookId})
    idempotent: bool  # carries an Idempotency-Key (POST/PATCH/DELETE)


ACCESS_TOKEN = Operation("AccessToken", "POST", "/accesstoken/get", False)

LIST_AGREEMENTS = Operation("ListAgreementsV3", "GET", "/recurring/v3/agreements", False)
DRAFT_AGREEMENT = Operation("DraftAgreementV3", "POST", "/recurring/v3/agreements", True)
FETCH_AGREEMENT = Operation("FetchAgreementV3", "GET", "/recurring/v3/agreements/{agreementId}", False)
UPDATE_AGREEMENT = Operation("UpdateAgreementPatchV3", "PATCH", "/recurring/v3/agreements/{agreementId}", True)
FORCE_ACCEPT = Operation("acceptUsingPATCHV3", "PATCH", "/recurring/v3/agreements/{agreementId}/accept", True)
LIST_CHARGES = Operation("ListChargesV3", "GET", "/recurring/v3/agreements/{agreementId}/charges", False)
CREATE_CHARGE = Operation("CreateChargeV3", "POST", "/recurring/v3/agreements/{agreementId}/charges", True)
# Many charges at once, created by Vipps asynchronously (CHANGES §2; later than the v3 spec, so the id is ours).
CREATE_CHARGES_ASYNC = Operation("CreateChargesAsyncV3", "POST", "/recurring/v3/agreements/charges", True)
FETCH_CHARGE = Operation("FetchChargeV3", "GET", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}", False)
CANCEL_CHARGE = Operation("CancelChargeV3", "DELETE", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}", True)
FETCH_CHARGE_BY_ID = Operation("FetchChargeByIdV3", "GET", "/recurring/v3/charges/{chargeId}", False)
CAPTURE_CHARGE = Operation(
    "CaptureChargeV3", "POST", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/capture", True
)
REFUND_CHARGE = Operation(
    "RefundChargeV3", "POST", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/refund", True
)

# The Webhooks API (webhooks-v1-openapi.yaml names no operationIds; these are ours). Registering is not
# idempotent at Vipps: the CLI sends it once, without retries.
REGISTER_WEBHOOK = Operation("RegisterWebhook", "POST", "/webhooks/v1/webhooks", False)
LIST_WEBHOOKS = Operation("GetWebhooks", "GET", "/webhooks/v1/webhooks", False)
DELETE_WEBHOOK = Operation("DeleteWebhook", "DELETE", "/webhooks/v1/webhooks/{webhookId}", False)
WEBHOOK_OPERATIONS: tuple[Operation, ...] = (REGISTER_WEBHOOK, LIST_WEBHOOKS, DELETE_WEBHOOK)

V3_OPERATIONS: tuple[Operation, ...] = (
    LIST_AGREEMENTS,
    DRAFT_AGREEMENT,
    FETCH_AGREEMENT,
    UPDATE_AGREEMENT,
    FORCE_ACCEPT,
    LIST_CHARGES,
    CREATE_CHARGE,
    FETCH_CHARGE,
    CANCEL_CHARGE,
    FETCH_CHARGE_BY_ID,
    CAPTURE_CHARGE,
    REFUND_CHARGE,
)

# Recurring operations Vipps added after the v3 spec in shared/vipps (CHANGES-2025-2026.md).
LATER_OPERATIONS: tuple[Operation, ...] = (CREATE_CHARGES_ASYNC,)

# Management API: a sales unit's name and configuration (production only, says Vipps; not in its test environment).
FETCH_SALES_UNIT = Operation("getMsn", "GET", "/management/v1/sales-units/{msn}", False)

MANAGEMENT_OPERATIONS: tuple[Operation, ...] = (FETCH_SALES_UNIT,)

_BY_ID = {op.id: op for op in (ACCESS_TOKEN, *V3_OPERATIONS, *LATER_OPERATIONS, *WEBHOOK_OPERATIONS,
                                *MANAGEMENT_OPERATIONS)}


def by_id(operation_id: str) -> Operation:
    """The operation a spec operationId names; KeyError for one this table does not know."""
    return _BY_ID[operation_id]
