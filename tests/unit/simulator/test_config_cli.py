"""Configuration from the environment (same VIPPS_* variables as the worker) and CLI parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from worker.cli.app import app as root_app
from worker.simulator.cli import parse_duration, parse_latency
from worker.simulator.config import SimulatorConfig


def test_defaults_match_the_worker_simulator_defaults() -> None:
    config = SimulatorConfig.from_env({})
    assert (config.client_id, config.client_secret, config.subscription_key, config.msn) == (
        "simulator-client-id",
        "simulator-client-secret",
        "simulator-subscription-key",
        "123456",
    )
    assert config.token_lifetime_seconds == 3600 and config.min_due_lead_days == 1
    assert not config.faults.active()


def test_credentials_from_variables_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    config = SimulatorConfig.from_env(
        {
            "VIPPS_CLIENT_ID": "cid",
            "VIPPS_CLIENT_SECRET_FILE": str(secret),
            "VIPPS_MSN": "654321",
            "SIMULATOR_MIN_DUE_LEAD_DAYS": "2",
            "SIMULATOR_PROCESSING_HOURS_UTC": "9,17",
            "SIMULATOR_FAULTS": '{"error_5xx_rate": 0.1, "seed": 4}',
        }
    )
    assert config.client_id == "cid" and config.client_secret == "from-file" and config.msn == "654321"
    assert config.min_due_lead_days == 2 and config.processing_hours_utc == [9, 17]
    assert config.faults.error_5xx_rate == 0.1 and config.faults.seed == 4


def test_unreadable_secret_file_names_the_variable_not_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VIPPS_CLIENT_SECRET_FILE"):
        SimulatorConfig.from_env({"VIPPS_CLIENT_SECRET_FILE": str(tmp_path / "missing")})


def test_durations_and_latencies() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("1d12h") == 129600
    assert parse_duration("1w") == 604800
    with pytest.raises(typer.BadParameter):
        parse_duration("tomorrow")
    assert parse_latency("fixed:20").ms == 20
    assert (parse_latency("uniform:5-50").min_ms, parse_latency("uniform:5-50").max_ms) == (5, 50)
    assert parse_latency("lognormal:20:0.8").sigma == 0.8
    with pytest.raises(typer.BadParameter):
        parse_latency("gaussian:3")


@pytest.mark.parametrize(
    "args",
    [
        ["simulator", "--help"],
        ["simulator", "clock", "show", "--help"],
        ["simulator", "clock", "set", "--help"],
        ["simulator", "clock", "advance", "--help"],
        ["simulator", "faults", "show", "--help"],
        ["simulator", "faults", "set", "--help"],
        ["simulator", "faults", "off", "--help"],
        ["simulator", "effects", "--help"],
        ["simulator", "script", "--help"],
        ["simulator", "stats", "--help"],
        ["simulator", "reset", "--help"],
    ],
)
def test_every_command_has_help_with_an_example(args: list[str]) -> None:
    result = CliRunner().invoke(root_app, args)
    assert result.exit_code == 0
    assert "Example" in result.output and "vipps-billing simulator" in result.output
