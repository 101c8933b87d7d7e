"""The checklist waits out the worker's retries: answers lost after Vipps acted are not failures.

A third of the successful mutating answers never reach the worker (the effect happened; the worker
sees a dropped connection). The worker retries with the same idempotency keys, within Vipps's
published limits (a third CreateCharge of one charge waits about a minute); the checklist reads each
command's ledger record, says what it waits for, and passes. Its per-step timeout is shorter than
such a wait, so a checklist that gave up after a fixed time would fail here.
"""

from __future__ import annotations

from pathlib import Path

import redis

from tests.e2e.clirun import cli, ok_json
from tests.stack import Simulator, Worker

MUTATING = ["DraftAgreementV3", "UpdateAgreementPatchV3", "acceptUsingPATCHV3", "CreateChargeV3",
            "CancelChargeV3", "CaptureChargeV3", "RefundChargeV3"]


def test_the_checklist_passes_when_a_third_of_the_answers_are_lost(redis_url: str, redis_client: redis.Redis,
                                                                 tmp_path: Path) -> None:
    simulator = Simulator()
    # Retries come 6 to 12 s after a lost answer: longer than the checklist's 5 s without progress.
    worker = Worker(redis_url, simulator.url, env={"RETRY_MIN_BACKOFF_SECONDS": "12"})
    try:
        simulator.faults(drop_after_commit_rate=0.34, operations=MUTATING, seed=7)
        env = {"REDIS_URL": redis_url, "VIPPS_ENV": "simulator", "VIPPS_BASE_URL": simulator.url}
        result = cli("checklist", "--timeout", "5", "--json", "--state-file", str(tmp_path / "state.json"), env=env,
                     timeout=600)
        report = ok_json(result)
        assert report["status"] == "passed", report
        assert "retry" in result.stderr  # it said what it was waiting for
        injected = simulator.admin.get("/faults").raise_for_status().json()["injected"]
        assert sum(injected.values()) >= 3, injected  # the faults really hit the checklist's calls
        assert simulator.effects(duplicates="true") == []  # retried with the same keys: nothing twice
    finally:
        worker.stop()
        simulator.stop()
