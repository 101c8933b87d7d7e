"""The go-live checklist's steps against a stand-in worker: at Vipps it waits for the due date, then resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from worker.cli.checklist import _events, _run_state, exit_code
from worker.cli.golive import STEPS, Checklist, Report, RunState
from worker.core.control import Outcome, Progress
from worker.vipps import VippsSettings, load_settings


class StandIn:
    """Carries out each command at once, as a worker against a Vipps whose charges wait for their due date."""

    def __init__(self) -> None:
        self.agreements: dict[str, str] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []

    def run(self, command: dict[str, Any], timeout: float, on_progress: Callable[[Progress], None] | None = None
            ) -> Outcome:
        self.sent.append(command)
        kind, agreement, charge = command["type"], command.get("agreement_id"), command.get("charge_id")
        if kind == "agreement.create":
            agreement = f"agr_{len(self.agreements)}"
            self.agreements[agreement] = "PENDING"
        elif kind == "agreement.force_accept":
            self.agreements[agreement] = "ACTIVE"
        elif kind == "agreement.update":
            self.agreements[agreement] = command["status"]
        elif kind == "charge.create":
            charge = f"chr_{len(self.charges)}"
            self.charges[charge] = {"id": charge, "status": "DUE", "type": "RECURRING"}
        elif kind == "charge.refund":
            self.charges[charge]["status"] = "REFUNDED"
        event = {"agreement.create": "agreement.created", "agreement.fetch": "agreement.snapshot",
                 "charge.create": "charge.created", "charge.fetch": "charge.snapshot",
                 "agreement.list_charges": "agreement.charges"}.get(kind, kind.replace(".", "_") + ".done")
        body: dict[str, Any] = {"type": event, "agreement_id": agreement, "charge_id": charge}
        if agreement in self.agreements:
            body["agreement"] = {"status": self.agreements[agreement]}
        body["charge"] = self.charges.get(charge or "")
        body["charges"] = list(self.charges.values())
        return Outcome(command["command_id"], "succeeded", [body])

    def published_events(self) -> list[dict[str, Any]]:
        return []

    def sent_types(self) -> list[str]:
        return [c["type"] for c in self.sent]


def checklist(worker: StandIn, state: RunState, path: Path, seen: list[str]) -> Checklist:
    return Checklist(worker, state, path, clock=None, timeout=1.0,  # type: ignore[arg-type]
                     progress=lambda text, index: seen.append(text))


@pytest.fixture
def waiting(tmp_path: Path) -> tuple[StandIn, Path, Report]:
    """A run at Vipps (no clock to move) that stopped to wait for the charges' due date."""
    worker, path = StandIn(), tmp_path / "state.json"
    report = checklist(worker, Checklist.new_state("test", "4712345678"), path, []).run()
    return worker, path, report


def test_at_vipps_the_run_waits_for_the_due_date_and_records_what_it_made(
        waiting: tuple[StandIn, Path, Report]) -> None:
    worker, path, report = waiting
    assert report.status == "waiting" and exit_code(report) == 3 and "checklist --resume" in report.message
    recorded = RunState.load(path)
    assert recorded.done == list(STEPS[:5]) and not recorded.finished
    assert set(recorded.agreements) == {"active", "stopped"} and set(recorded.charges) == {"charged", "refunded"}
    assert worker.agreements == {recorded.agreements["active"]: "ACTIVE", recorded.agreements["stopped"]: "STOPPED"}
    assert "charge.refund" not in worker.sent_types()


def test_resumed_after_the_due_date_it_refunds_once_and_passes(waiting: tuple[StandIn, Path, Report]) -> None:
    worker, path, _ = waiting
    for charge in worker.charges.values():
        charge["status"] = "CHARGED"
    worker.sent.clear()
    seen: list[str] = []
    report = checklist(worker, RunState.load(path), path, seen).run()
    assert report.status == "passed" and exit_code(report) == 0 and RunState.load(path).finished
    assert [row["holds"] for row in report.rows] == [True, True, True, True]
    # Nothing made again: only the refund, and fetches to check.
    assert worker.sent_types().count("charge.refund") == 1
    assert {"agreement.create", "agreement.force_accept", "charge.create", "agreement.update"} \
        .isdisjoint(worker.sent_types())
    assert seen == list(STEPS)  # every step is reported, done or not


def test_a_failed_charge_fails_the_run(waiting: tuple[StandIn, Path, Report]) -> None:
    worker, path, _ = waiting
    next(iter(worker.charges.values()))["status"] = "FAILED"
    report = checklist(worker, RunState.load(path), path, []).run()
    assert report.status == "failed" and exit_code(report) == 1 and "did not go through" in report.message


def vipps_test() -> VippsSettings:
    return load_settings(env="test", client_id="id", client_secret="secret", subscription_key="key", msn="123456")


def test_the_events_column_leaves_out_our_own_snapshots() -> None:
    assert _events(["agreement.created", "agreement.snapshot", "charge.status_changed→CHARGED",
                    "agreement.charges", "charge.refunded"]) == "created, →CHARGED, refunded"


def test_resume_needs_a_run_of_the_same_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    Checklist.new_state("simulator", "4791234567").save(path)
    with pytest.raises(typer.Exit):
        _run_state(vipps_test(), path, resume=True, restart=False, phone="47")
    assert "was made against simulator, but VIPPS_ENV is test" in capsys.readouterr().err


def test_an_unfinished_run_is_not_overwritten_unless_restarted(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    unfinished = Checklist.new_state("simulator", "4791234567")
    unfinished.save(path)
    with pytest.raises(typer.Exit):
        _run_state(load_settings(env="simulator"), path, resume=False, restart=False, phone=None)
    assert "unfinished run" in capsys.readouterr().err
    fresh = _run_state(load_settings(env="simulator"), path, resume=False, restart=True, phone=None)
    assert fresh.run_id != unfinished.run_id and fresh.phone == "4791234567"


def test_the_test_environment_needs_a_test_users_phone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        _run_state(vipps_test(), tmp_path / "none.json", resume=False, restart=False, phone=None)
    assert "--phone is required" in capsys.readouterr().err
