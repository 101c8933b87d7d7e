"""Webhook signing (CHANGES §1.5): the official test vector, the derived one, and the host and path rules."""

from __future__ import annotations

from typing import Any

import pytest

from worker.simulator.webhook_signing import host_and_path, http_date, signed_headers

OFFICIAL: dict[str, Any] = {
    "secret": "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A==",
    "url": "https://webhook.site/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63",
    "date": "Thu, 30 Mar 2023 08:38:32 GMT",
    "body": b'{"some-unique-content":"ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"}',
    "hash": "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4=",
    "signature": "agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U=",
}
DERIVED: dict[str, Any] = {
    "secret": "090a478d-37ff-4e77-970e-d457aeb26a3a",
    "url": "https://example.com/hooks/vipps?src=recurring",
    "date": "Thu, 01 Oct 2026 07:12:46 GMT",
    "body": b'{"agreementId":"agr_5kSeqz","chargeId":"acme-sub-1234-2026-10","amount":49900,"amountCaptured":49900,'
    b'"chargeType":"RECURRING","currency":"NOK","eventType":"recurring.charge-captured.v1",'
    b'"occurred":"2026-10-01T07:12:45Z","msn":"123456"}',
    "hash": "WWbE2zV8m86y2C5RDUnLZG/ikmMjFsTWrCTab/yWkDs=",
    "signature": "0IFLtGj48Lw5XB/mNa1jmtQI8BHW0/c1oEUsumbfCNQ=",
}


@pytest.mark.parametrize("vector", [OFFICIAL, DERIVED], ids=["official", "derived"])
def test_the_test_vectors(vector: dict[str, Any]) -> None:
    headers = signed_headers(vector["secret"], vector["url"], vector["date"], vector["body"])
    assert headers["x-ms-content-sha256"] == vector["hash"]
    assert headers["x-ms-date"] == vector["date"]
    assert headers["authorization"] == (
        f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={vector['signature']}"
    )


def test_the_host_keeps_a_port_that_is_not_the_default_and_the_path_its_query() -> None:
    assert host_and_path(DERIVED["url"]) == ("example.com", "/hooks/vipps?src=recurring")
    assert host_and_path("https://Example.COM:443/a") == ("example.com", "/a")
    assert host_and_path("http://127.0.0.1:8123/hook") == ("127.0.0.1:8123", "/hook")
    assert host_and_path("http://example.com") == ("example.com", "/")
    assert host_and_path("https://[::1]:8443/x?y=1") == ("[::1]:8443", "/x?y=1")


def test_the_date_is_rfc_1123_in_gmt() -> None:
    assert http_date(1680165512) == "Thu, 30 Mar 2023 08:38:32 GMT"
