"""Fixtures for the Vipps client unit tests: settings, a respx-mocked Vipps, the official specs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from openapi_core import OpenAPI
from vipps_support import BASE, SECRETS, load_recurring_spec, load_token_spec, token_body

from worker.vipps import VippsClient, VippsSettings, load_settings


@pytest.fixture
def settings() -> VippsSettings:
    return load_settings(env="test", msn="123456", **SECRETS)


@pytest.fixture
def vipps() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/accesstoken/get", name="token").respond(200, json=token_body())
        yield router


@pytest.fixture
def client(settings: VippsSettings, vipps: respx.MockRouter) -> Iterator[VippsClient]:
    # No real pauses before the client's own retries: keeps the tests fast.
    with VippsClient(settings, key_prefix="unit", sleep=lambda seconds: None) as c:
        yield c


@pytest.fixture(scope="session")
def recurring_spec() -> OpenAPI:
    return load_recurring_spec()


@pytest.fixture(scope="session")
def token_spec() -> OpenAPI:
    return load_token_spec()
