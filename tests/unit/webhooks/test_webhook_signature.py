"""The signing rules of a Vipps webhook delivery: both test vectors, the header form, and properties."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.webhooks import signature

# The official vector (NOTES §6.4) and the derived one (CHANGES-2025-2026 §1.5).
OFFICIAL = {
    "secret": "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A==",
    "url": "https://webhook.site/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63",
    "body": b'{"some-unique-content":"ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"}',
    "date": "Thu, 30 Mar 2023 08:38:32 GMT",
    "hash": "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4=",
    "signature": "agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U=",
}
DERIVED = {
    "secret": "090a478d-37ff-4e77-970e-d457aeb26a3a",
    "url": "https://example.com/hooks/vipps?src=recurring",
    "body": b'{"agreementId":"agr_5kSeqz","chargeId":"acme-sub-1234-2026-10","amount":49900,"amountCaptured":49900,'
            b'"chargeType":"RECURRING","currency":"NOK","eventType":"recurring.charge-captured.v1",'
            b'"occurred":"2026-10-01T07:12:45Z","msn":"123456"}',
    "date": "Thu, 01 Oct 2026 07:12:46 GMT",
    "hash": "WWbE2zV8m86y2C5RDUnLZG/ikmMjFsTWrCTab/yWkDs=",
    "signature": "0IFLtGj48Lw5XB/mNa1jmtQI8BHW0/c1oEUsumbfCNQ=",
}
VECTORS = pytest.mark.parametrize("vector", [OFFICIAL, DERIVED], ids=["official", "derived"])


def message(vector: dict, **changes: object) -> str:
    v = vector | changes
    path_and_query, host = signature.signed_target(str(v["url"]))
    return signature.string_to_sign(path_and_query, host, str(v["date"]), signature.content_hash(v["body"]))


@VECTORS
def test_the_test_vectors(vector: dict) -> None:
    assert signature.content_hash(vector["body"]) == vector["hash"]
    assert signature.signature(vector["secret"], message(vector)) == vector["signature"]
    header = signature.authorization(vector["signature"])
    assert header == f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={vector['signature']}"
    given_bytes = signature.parse_authorization(header)
    assert given_bytes == base64.b64decode(vector["signature"])
    assert signature.matching_registration({"a": "other", "b": vector["secret"]}, message(vector), given_bytes) == "b"


def test_the_signed_target_is_the_registered_url() -> None:
    assert signature.signed_target("https://example.com/hooks/vipps?src=recurring") == (
        "/hooks/vipps?src=recurring", "example.com")
    assert signature.signed_target("https://hooks.example.com:8443") == ("/", "hooks.example.com:8443")
    assert signature.signed_target("https://user@example.com/x") == ("/x", "example.com")


def test_the_secret_is_used_as_is_not_base64_decoded() -> None:
    decoded = base64.b64decode(OFFICIAL["secret"])
    wrong = base64.b64encode(hmac.new(decoded, message(OFFICIAL).encode(), hashlib.sha256).digest()).decode()
    assert wrong != OFFICIAL["signature"] and wrong.startswith("T3+NXHMm")


SIG = "agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U="
FORM = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="


@pytest.mark.parametrize("header", [
    "", f"HMAC-SHA256 Signature={SIG}",
    f"HMAC-SHA256 SignedHeaders=host;x-ms-date;x-ms-content-sha256&Signature={SIG}",
    f"hmac-sha256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={SIG}",
    FORM, FORM + "not base64!", FORM + "c2hvcnQ=", FORM + SIG + "x", FORM + SIG[:-1] + "æ",
])
def test_an_authorization_not_of_the_documented_form_carries_no_signature(header: str) -> None:
    assert signature.parse_authorization(header) is None


def test_no_secret_matches_a_forgery_and_an_empty_set_matches_nothing() -> None:
    given_bytes = base64.b64decode(OFFICIAL["signature"])
    assert signature.matching_registration({}, message(OFFICIAL), given_bytes) is None
    assert signature.matching_registration({"a": "x", "b": "y"}, message(OFFICIAL), given_bytes) is None
    assert signature.matching_registration({"a": OFFICIAL["secret"]}, message(OFFICIAL), b"\0" * 32) is None


def test_every_secret_is_tried_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(signature.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    secrets = {"a": OFFICIAL["secret"], "b": "second", "c": "third"}
    given_bytes = base64.b64decode(OFFICIAL["signature"])
    assert signature.matching_registration(secrets, message(OFFICIAL), given_bytes) == "a"
    assert len(compared) == 3


texts = st.text(min_size=1, max_size=40)


@given(body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_any_other_body_fails(body: bytes, other: bytes) -> None:
    signed = signature.signature(DERIVED["secret"], message(DERIVED, body=body))
    if other != body:
        assert signature.signature(DERIVED["secret"], message(DERIVED, body=other)) != signed


@given(date=texts)
def test_any_other_date_fails(date: str) -> None:
    signed = signature.signature(DERIVED["secret"], message(DERIVED))
    if date != DERIVED["date"]:
        assert signature.signature(DERIVED["secret"], message(DERIVED, date=date)) != signed


@given(path=st.from_regex(r"/[a-z0-9/]{0,20}(\?[a-z=&]{0,10})?", fullmatch=True))
def test_any_other_path_or_query_fails(path: str) -> None:
    signed = signature.signature(DERIVED["secret"], message(DERIVED))
    if path != "/hooks/vipps?src=recurring":
        assert signature.signature(DERIVED["secret"], message(DERIVED, url=f"https://example.com{path}")) != signed


@given(secret=texts)
def test_any_other_secret_fails(secret: str) -> None:
    given_bytes = base64.b64decode(DERIVED["signature"])
    expected = None if secret != DERIVED["secret"] else "r"
    assert signature.matching_registration({"r": secret}, message(DERIVED), given_bytes) == expected


@given(body=st.binary(max_size=200), secret=texts, date=texts)
def test_what_is_signed_verifies(body: bytes, secret: str, date: str) -> None:
    msg = message(DERIVED, body=body, date=date)
    header = signature.authorization(signature.signature(secret, msg))
    parsed = signature.parse_authorization(header)
    assert parsed is not None
    assert signature.matching_registration({"old": secret + "x", "new": secret}, msg, parsed) == "new"
