"""The merchants file: validated with clear, value-free errors; partner sets shared; one merchant by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.vipps.auth import token_cache_key
from worker.vipps.config import ConfigError, load_settings
from worker.vipps.merchants import UnknownMerchant, load_merchants

KEYS = {"client_id": "id-1", "client_secret": "secret-1", "subscription_key": "sub-1"}
PARTNER = {"client_id": "pid", "client_secret": "psecret", "subscription_key": "psub"}


def write(tmp_path: Path, content: object, name: str = "merchants.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def three(tmp_path: Path) -> Path:
    return write(tmp_path, {"partners": {"platform": PARTNER}, "merchants": [
        {"msn": "223344", "name": "Yoga Two", "partner": "platform"},
        {"msn": "334455", "name": "Dojo Three", "partner": "platform"},
        {"msn": "123456", "name": "Gym One", **KEYS}]})


def test_without_a_file_the_vipps_settings_are_the_one_merchant() -> None:
    merchants = load_merchants(load_settings())
    assert merchants.only is not None and merchants.msns == ("123456",)
    assert merchants.resolve(None).msn == "123456"


def test_a_file_lists_merchants_with_own_keys_or_a_partner_set(tmp_path: Path) -> None:
    merchants = load_merchants(load_settings(merchants_file=three(tmp_path)))
    assert merchants.msns == ("223344", "334455", "123456") and merchants.only is None
    yoga, dojo, gym = (merchants.resolve(m) for m in merchants.msns)
    assert (yoga.credential_set, gym.credential_set) == ("partner:platform", "merchant:123456")
    assert yoga.settings.msn == "223344" and yoga.settings.secret("client_id") == "pid"
    assert gym.settings.secret("client_secret") == "secret-1" and not gym.settings.partner_keys
    # One token per partner set: the MSN is not part of where its token is kept.
    assert token_cache_key(yoga.settings, "p") == token_cache_key(dojo.settings, "p")
    assert token_cache_key(yoga.settings, "p") != token_cache_key(gym.settings, "p")
    assert "psecret" not in repr(yoga) and "secret-1" not in repr(gym)


def test_yaml_and_secret_files(tmp_path: Path) -> None:
    for name, value in KEYS.items():
        (tmp_path / name).write_text(value + "\n")
    path = write(tmp_path, f"""merchants:
  - msn: "123456"
    name: Gym One
    client_id_file: {tmp_path / 'client_id'}
    client_secret_file: {tmp_path / 'client_secret'}
    subscription_key_file: {tmp_path / 'subscription_key'}
""", "merchants.yaml")
    [gym] = load_merchants(load_settings(merchants_file=path))
    assert gym.settings.secret("subscription_key") == "sub-1"


def test_several_merchants_need_an_msn_and_unknown_or_disabled_ones_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"merchants": [{"msn": "123456", "name": "Gym", **KEYS},
                                          {"msn": "654321", "name": "Old", "enabled": False, **KEYS}]})
    merchants = load_merchants(load_settings(merchants_file=path))
    with pytest.raises(UnknownMerchant, match=r"msn is required: this deployment serves 2 merchants \(123456 \(Gym\)"):
        merchants.resolve(None)
    with pytest.raises(UnknownMerchant, match="MSN 999999 is not a merchant of this deployment"):
        merchants.resolve("999999")
    with pytest.raises(UnknownMerchant, match=r"654321 \(Old\) is disabled"):
        merchants.resolve("654321")


@pytest.mark.parametrize(("content", "message"), [
    ({"merchants": []}, "merchants"),
    ({"merchants": [{"msn": "12", "name": "x", **KEYS}]}, "msn"),
    ({"merchants": [{"msn": "123456", "name": "x"}]}, "needs client_id, client_secret, subscription_key"),
    ({"merchants": [{"msn": "123456", "name": "x", "partner": "nope"}]}, "names partner 'nope'"),
    ({"merchants": [{"msn": "123456", "name": "x", "partner": "p", **KEYS}], "partners": {"p": PARTNER}},
     "either the merchant's own keys or a partner"),
    ({"merchants": [{"msn": "123456", "name": "a", **KEYS}, {"msn": "123456", "name": "b", **KEYS}]},
     "listed twice"),
    ({"merchants": [{"msn": "123456", "name": "a", "partner": "p"}], "partners": {"p": {"client_id": "x"}}},
     "partner 'p' needs client_secret"),
    ({"merchants": [{"msn": "123456", "name": "a", "colour": "red", **KEYS}]}, "colour"),
])
def test_bad_files_give_one_line_without_values(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_merchants(load_settings(merchants_file=write(tmp_path, content)))
    text = str(caught.value)
    assert "\n" not in text and "secret-1" not in text and "psecret" not in text


def test_a_missing_or_unparsable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a readable file"):
        load_merchants(load_settings(merchants_file=tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_merchants(load_settings(merchants_file=write(tmp_path, "{not json", "m.json")))
