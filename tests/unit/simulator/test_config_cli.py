"""Configuration from the environment (same VIPPS_* variables as the worker) and CLI parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from worker.cli.app import app as root_app
from worker.simulator import cli as simulator_cli
from worker.simulator.cli_options import parse_duration, parse_latency
from worker.simulator.config import SimulatorConfig, SimulatorConfigError


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process environment with none of the simulator's variables, to set some in."""
    for name in list(os.environ):
        if name.startswith(("VIPPS_", "SIMULATOR_")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_match_the_worker_simulator_defaults(environ: pytest.MonkeyPatch) -> None:
    config = SimulatorConfig.from_env()
    assert (config.secret("client_id"), config.secret("client_secret"), config.secret("subscription_key")) == (
        "simulator-client-id",
        "simulator-client-secret",
        "simulator-subscription-key",
    )
    assert config.msn == "123456"
    assert config.token_lifetime_seconds == 3600 and config.min_due_lead_days == 1
    assert not config.faults.active()


def test_credentials_from_variables_and_files(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    for name, value in {
        "VIPPS_CLIENT_ID": "cid",
        "VIPPS_CLIENT_SECRET_FILE": str(secret),
        "VIPPS_MSN": "654321",
        "SIMULATOR_MIN_DUE_LEAD_DAYS": "2",
        "SIMULATOR_PROCESSING_HOURS_UTC": "9,17",
        "SIMULATOR_FAULTS": '{"error_5xx_rate": 0.1, "seed": 4}',
    }.items():
        environ.setenv(name, value)
    config = SimulatorConfig.from_env()
    assert config.secret("client_id") == "cid" and config.secret("client_secret") == "from-file"
    assert config.msn == "654321"
    assert config.min_due_lead_days == 2 and config.processing_hours_utc == [9, 17]
    assert config.faults.error_5xx_rate == 0.1 and config.faults.seed == 4


def test_a_variable_wins_over_its_file_and_options_over_both(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file")
    environ.setenv("VIPPS_CLIENT_SECRET_FILE", str(secret))
    environ.setenv("VIPPS_CLIENT_SECRET", "from-variable")
    environ.setenv("SIMULATOR_SEED", "3")
    config = SimulatorConfig.from_env(seed=9)
    assert config.secret("client_secret") == "from-variable" and config.seed == 9


def test_built_in_code_the_config_reads_no_environment(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("VIPPS_CLIENT_ID", "from-the-environment")
    environ.setenv("SIMULATOR_LIST_PAGE_SIZE", "7")
    config = SimulatorConfig(list_page_size=2)
    assert config.secret("client_id") == "simulator-client-id" and config.list_page_size == 2


def test_unreadable_secret_file_names_the_variable_not_the_value(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("VIPPS_CLIENT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(SimulatorConfigError, match="VIPPS_CLIENT_SECRET_FILE"):
        SimulatorConfig.from_env()


def test_invalid_variables_are_named_without_their_values(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("SIMULATOR_TOKEN_LIFETIME_SECONDS", "-5")
    environ.setenv("VIPPS_CLIENT_SECRET", "s3cret-value")
    environ.setenv("SIMULATOR_FAULTS", '{"error_5xx_rate": 7}')
    with pytest.raises(SimulatorConfigError) as caught:
        SimulatorConfig.from_env()
    message = str(caught.value)
    assert "SIMULATOR_TOKEN_LIFETIME_SECONDS" in message and "SIMULATOR_FAULTS: error_5xx_rate" in message
    assert "-5" not in message and "s3cret" not in message and "\n" not in message


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
        ["simulator", "webhooks", "--help"],
        ["simulator", "script", "--help"],
        ["simulator", "stats", "--help"],
        ["simulator", "reset", "--help"],
    ],
)
def test_every_command_has_help_with_an_example(args: list[str]) -> None:
    result = CliRunner().invoke(root_app, args)
    assert result.exit_code == 0
    assert "Example" in result.output and "vipps-billing simulator" in result.output


def test_webhook_options_at_start_up_win_over_their_variables(environ: pytest.MonkeyPatch) -> None:
    started: list[SimulatorConfig] = []
    environ.setattr(simulator_cli, "listen", lambda host, port: None)
    environ.setattr(simulator_cli, "run", lambda config, listener, log_level: started.append(config))
    environ.setenv("SIMULATOR_WEBHOOK_TIMEOUT_SECONDS", "4")
    environ.setenv("SIMULATOR_WEBHOOK_FAULTS", '{"fail_rate": 0.5, "seed": 2}')
    args = ["simulator", "--webhook-retry-wait", "0.1", "--webhook-order", "charge", "--webhook-https-only"]
    assert CliRunner().invoke(root_app, args).exit_code == 0
    [config] = started
    assert (config.webhook_timeout_seconds, config.webhook_retry_seconds) == (4, 0.1)
    assert config.webhook_order == "charge" and config.webhook_https_only
    assert config.webhook_faults.fail_rate == 0.5 and config.webhook_faults.seed == 2
    bad = CliRunner().invoke(root_app, ["simulator", "--webhook-order", "payment"])
    assert bad.exit_code == 2


def test_charge_creation_options_at_start_up(environ: pytest.MonkeyPatch) -> None:
    started: list[SimulatorConfig] = []
    environ.setattr(simulator_cli, "listen", lambda host, port: None)
    environ.setattr(simulator_cli, "run", lambda config, listener, log_level: started.append(config))
    environ.setenv("SIMULATOR_CHARGES_PER_MINUTE", "100")
    environ.setenv("SIMULATOR_BATCH_CREATION_DELAY_SECONDS", "2")
    assert CliRunner().invoke(root_app, ["simulator"]).exit_code == 0
    args = ["simulator", "--charges-per-minute", "300", "--batch-failure-rate", "0.25", "--unscheduled-charges"]
    assert CliRunner().invoke(root_app, args).exit_code == 0
    default, given = started
    assert (default.charges_per_minute, default.batch_creation_delay_seconds) == (100, 2)
    assert not default.unscheduled_charges_allowed and default.batch_creation_failure_rate == 0
    assert (given.charges_per_minute, given.batch_creation_failure_rate) == (300, 0.25)
    assert given.unscheduled_charges_allowed
    assert CliRunner().invoke(root_app, ["simulator", "--batch-failure-rate", "2"]).exit_code == 2
    assert CliRunner().invoke(root_app, ["simulator", "--charges-per-minute", "0"]).exit_code == 2
