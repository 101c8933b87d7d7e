"""Fault injection: reproducible from a seed, Vipps endpoints only, and effects after commit."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sim_harness import AGREEMENT_BODY, Vipps

from worker.simulator.config import FaultConfig
from worker.simulator.faults import Faults


def _sequence(seed: int) -> list[tuple[object, ...]]:
    faults = Faults(
        FaultConfig(
            seed=seed,
            error_5xx_rate=0.2,
            error_429_rate=0.2,
            connection_drop_rate=0.1,
            latency={"distribution": "lognormal", "median_ms": 5},
        ),
        fallback_seed=0,
    )
    return [tuple(vars(faults.plan("FetchAgreementV3")).values()) for _ in range(200)]


def test_the_same_seed_gives_the_same_faults() -> None:
    assert _sequence(7) == _sequence(7)
    assert _sequence(7) != _sequence(8)


def test_rates_are_roughly_honoured() -> None:
    faults = Faults(FaultConfig(seed=1, error_5xx_rate=0.25), fallback_seed=0)
    hits = sum(faults.plan("X").status_5xx is not None for _ in range(4000))
    assert 850 < hits < 1150


def test_faults_are_off_by_default_and_spare_admin_and_token(vipps: Vipps) -> None:
    assert vipps.admin("GET", "/faults")["config"]["error_5xx_rate"] == 0
    vipps.admin("PUT", "/faults", {"error_5xx_rate": 1.0, "seed": 3})
    assert vipps.fetch_token().status_code == 200
    assert vipps.admin("GET", "/stats")["faults_injected"] == {}
    response = vipps.call("GET", "/recurring/v3/agreements")
    assert response.status_code in (500, 502, 503)
    assert response.json()["status"] == response.status_code


def test_injected_errors_have_no_effect_and_do_not_burn_the_key(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"error_429_rate": 1.0, "retry_after_seconds": 7})
    limited = vipps.draft(key="draft-x")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    vipps.admin("PUT", "/faults", {"error_5xx_rate": 1.0})
    assert vipps.draft(key="draft-x").status_code >= 500
    vipps.admin("PUT", "/faults", {})
    assert vipps.draft(key="draft-x").status_code == 201
    assert len(vipps.effects()) == 1


def test_faults_can_target_one_operation(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"error_5xx_rate": 1.0, "operations": ["CreateChargeV3"]})
    agreement_id = vipps.active_agreement()
    assert vipps.create_charge(agreement_id).status_code >= 500


def test_connection_drop_before_processing_loses_the_request(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"connection_drop_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        vipps.draft(key="lost")
    assert vipps.effects() == []


def test_drop_after_commit_applies_the_effect_once_and_a_retry_replays(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"drop_after_commit_rate": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):
        vipps.draft(key="committed")
    assert len(vipps.effects(operation="agreement.draft")) == 1
    vipps.admin("PUT", "/faults", {})
    retry = vipps.draft(key="committed")
    assert retry.status_code == 201
    assert retry.json()["agreementId"] == next(iter(vipps.sim.engine.agreements))
    assert vipps.effects(duplicates="true") == []


def test_timeout_after_commit_applies_the_effect_but_the_answer_is_late(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"timeout_after_commit_rate": 1.0, "timeout_seconds": 5})
    request = vipps.http.client.post(
        "/recurring/v3/agreements",
        json=AGREEMENT_BODY,
        headers=vipps.headers("slow-key"),
    )

    async def give_up_after(seconds: float) -> None:
        await asyncio.wait_for(request, seconds)

    with pytest.raises(TimeoutError):
        vipps.loop.run_until_complete(give_up_after(0.3))
    assert [e["idempotency_key"] for e in vipps.effects()] == ["slow-key"]


def test_latency_distributions() -> None:
    fixed = Faults(FaultConfig(latency={"distribution": "fixed", "ms": 50}), fallback_seed=0)
    assert fixed.plan("X").delay == 0.05
    uniform = Faults(FaultConfig(latency={"distribution": "uniform", "min_ms": 5, "max_ms": 10}), fallback_seed=0)
    assert all(0.005 <= uniform.plan("X").delay <= 0.010 for _ in range(500))
    lognormal = Faults(FaultConfig(latency={"distribution": "lognormal", "median_ms": 20, "sigma": 0.5}), 0)
    delays = sorted(lognormal.plan("X").delay for _ in range(2001))
    assert 0.017 < delays[1000] < 0.023


def test_latency_is_applied_to_requests(vipps: Vipps) -> None:
    vipps.admin("PUT", "/faults", {"latency": {"distribution": "fixed", "ms": 1}})
    assert vipps.call("GET", "/recurring/v3/agreements").status_code == 200
    assert vipps.admin("GET", "/faults")["injected"]["delayed"] == 1


def test_invalid_fault_config_is_refused(vipps: Vipps) -> None:
    response = vipps.http.request("PUT", "/_simulator/faults", json={"error_5xx_rate": 2})
    assert response.status_code == 400
