"""A delivery is genuine only with the body's hash, a date inside the window and a known registration's
signature, checked in that order on the raw bytes; and the settings that drive it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from worker.webhooks.settings import SettingsError, WebhookSettings, load_settings
from worker.webhooks.verify import Verifier, parse_date

URL = "https://example.com/hooks/vipps?src=recurring"
SECRET = "090a478d-37ff-4e77-970e-d457aeb26a3a"
DATE = "Thu, 01 Oct 2026 07:12:46 GMT"
NOW = parse_date(DATE) or 0.0
BODY = b'{"agreementId":"agr_5kSeqz","eventType":"recurring.agreement-stopped.v1"}'


def signed(body: bytes = BODY, secret: str = SECRET, date: str = DATE, path: str = "/hooks/vipps?src=recurring",
           host: str = "example.com") -> dict[str, list[str]]:
    ch = base64.b64encode(hashlib.sha256(body).digest()).decode()
    sts = f"POST\n{path}\n{date};{host};{ch}"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha256).digest()).decode()
    return {"x-ms-date": [date], "x-ms-content-sha256": [ch],
            "authorization": [f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"]}


def verifier(now: float = NOW, secrets: dict[str, str] | None = None, window: float = 300) -> Verifier:
    known = {"reg-1": SECRET} if secrets is None else secrets
    return Verifier(URL, lambda: known, window_seconds=window, clock=lambda: now)


def check(headers: dict[str, list[str]], body: bytes = BODY, **kwargs: object) -> tuple[str | None, str | None]:
    verdict = verifier(**kwargs).check(lambda name: headers.get(name, []), body)  # type: ignore[arg-type]
    return verdict.registration, verdict.reason


def test_a_genuine_delivery_names_its_registration() -> None:
    assert check(signed()) == ("reg-1", None)
    assert check(signed(), secrets={"old": "gone", "new": SECRET}) == ("new", None)


@pytest.mark.parametrize(("headers", "body", "reason"), [
    ({**signed(), "x-ms-content-sha256": []}, BODY, "content_hash"),
    (signed(), BODY + b" ", "content_hash"),                                     # body changed after signing
    ({**signed(), "x-ms-content-sha256": signed()["x-ms-content-sha256"] * 2}, BODY, "content_hash"),
    ({**signed(), "x-ms-date": []}, BODY, "date"),
    ({**signed(), "x-ms-date": ["yesterday"]}, BODY, "date"),
    ({**signed(), "x-ms-date": [DATE, DATE]}, BODY, "date"),
    (signed(date="Thu, 01 Oct 2026 07:12:46"), BODY, "date"),                    # no zone
    ({**signed(), "authorization": []}, BODY, "signature"),
    ({**signed(), "authorization": ["Bearer abc"]}, BODY, "signature"),
    (signed(secret="wrong"), BODY, "unknown_registration"),
    (signed(host="attacker.example"), BODY, "unknown_registration"),            # signed for another URL
    (signed(path="/hooks/vipps"), BODY, "unknown_registration"),
    ({**signed(), "x-ms-date": ["Thu, 01 Oct 2026 07:12:47 GMT"]}, BODY, "unknown_registration"),
])
def test_each_failure_has_its_reason(headers: dict[str, list[str]], body: bytes, reason: str) -> None:
    assert check(headers, body) == (None, reason)


def test_a_body_rehashed_after_signing_fails_the_signature() -> None:
    forged = BODY.replace(b"stopped", b"activated")
    headers = {**signed(), "x-ms-content-sha256": signed(body=forged)["x-ms-content-sha256"]}
    assert check(headers, forged) == (None, "unknown_registration")


def test_the_checks_run_in_order() -> None:
    """A delivery wrong in every way fails on the first check: the hash."""
    headers = {"x-ms-content-sha256": ["nope"], "x-ms-date": ["nope"], "authorization": ["nope"]}
    assert check(headers) == (None, "content_hash")
    assert check({**signed(), "x-ms-date": ["nope"], "authorization": ["nope"]}) == (None, "date")


@pytest.mark.parametrize(("offset", "reason"), [(-300, None), (300, None), (-301, "date"), (301, "date"),
                                                (-86_400, "date"), (3_600, "date")])
def test_the_date_window_both_ways(offset: float, reason: str | None) -> None:
    assert check(signed(), now=NOW - offset)[1] == reason


def test_no_known_registration_rejects_everything() -> None:
    assert check(signed(), secrets={}) == (None, "unknown_registration")


def test_a_rejection_for_the_date_says_the_skew() -> None:
    headers = signed()
    verdict = verifier(now=NOW + 1000).check(lambda name: headers.get(name, []), BODY)
    assert verdict.reason == "date" and verdict.skew_seconds == -1000


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEBHOOK_PUBLIC_URL", "https://hooks.example.com/vipps/hooks%20x?src=1")
    monkeypatch.setenv("WEBHOOK_SECRETS_DIR", str(tmp_path))
    settings = load_settings(webhook_port=9000)
    assert settings.webhook_path == "/vipps/hooks x" and settings.webhook_port == 9000
    assert (settings.webhook_max_body_bytes, settings.webhook_date_window_seconds) == (65_536, 300)
    assert settings.key_prefix == "vipps-billing"


@pytest.mark.parametrize("url", ["hooks.example.com/vipps", "ftp://example.com/x", "https:///x",
                                 "https://example.com/x#frag"])
def test_a_public_url_must_be_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    monkeypatch.setenv("WEBHOOK_SECRETS_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match="WEBHOOK_PUBLIC_URL") as raised:
        load_settings(webhook_public_url=url)
    assert url not in str(raised.value)


def test_every_receiver_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The webhook receiver"):readme.index("## Wire format")]
    own = [name.upper() for name in WebhookSettings.model_fields if name.startswith("webhook_")]
    assert own and [name for name in own if f"`{name}`" not in section] == []
