"""The suite passes whatever the caller's shell holds, and never reaches a Vipps that is not on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = {
    # A developer's real test credentials and settings, exported in the shell.
    "VIPPS_ENV": "test", "VIPPS_BASE_URL": "https://apitest.vipps.no", "VIPPS_CLIENT_ID": "real-client-id",
    "VIPPS_CLIENT_SECRET": "real-secret", "VIPPS_SUBSCRIPTION_KEY": "real-subscription-key", "VIPPS_MSN": "654321",
    "REDIS_URL": "redis://203.0.113.7:6379/0", "KEY_PREFIX": "someone-elses", "DRAMATIQ_NAMESPACE": "other",
    "EVENTS_QUEUE": "their.events",
}


def test_the_suite_ignores_the_callers_vipps_and_redis_settings() -> None:
    tests = ["tests/integration/test_client_against_simulator.py::test_agreement_and_charge_lifecycle",
             "tests/integration/test_worker_readiness.py"]
    env = dict(os.environ) | HOSTILE
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_a_test_cannot_connect_beyond_loopback() -> None:
    with pytest.raises(ConnectionRefusedError, match="only to loopback"), socket.socket() as sock:
        sock.connect(("203.0.113.7", 443))
