"""The simulator CLI's error contract, on its own typer app: one line on stderr, exit code 2 for a
mistyped command, option or value, 1 for anything else. None of these needs a running simulator."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner, Result

from worker.simulator.cli import app

# What no running simulator may be left out of (the real environment is not the test's).
CLEAN_ENV: dict[str, str | None] = {name: None for name in os.environ if name.startswith(("VIPPS_", "SIMULATOR_"))}


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})})


def assert_one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and "ValidationError" not in result.output
    return result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ["faults", "set", "--5xx-rate", "2"],
        ["faults", "set", "--429-rate", "-0.1"],
        ["faults", "set", "--timeout-after-commit-rate", "lots"],
        ["--drop-rate", "1.5"],
    ],
)
def test_a_rate_outside_0_and_1_is_one_line_and_exit_2(args: list[str]) -> None:
    message = assert_one_line_error(run(*args), 2)
    assert "between 0 and 1" in message and args[-2] in message


def test_a_bad_latency_is_one_line_and_exit_2() -> None:
    message = assert_one_line_error(run("faults", "set", "--latency", "fixed:-5"), 2)
    assert "not a latency" in message


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["clock", "sett", "2030-01-01T00:00:00Z"], "No such command 'sett'"),
        (["faults", "set", "--5xx-rat", "0.1"], "No such option: --5xx-rat"),
        (["clock", "advance", "tomorrow"], "not a duration"),
        (["clock", "set", "next week"], "not an ISO-8601 date-time"),
        (["effects", "--since", "-1"], "--since"),
    ],
)
def test_mistyped_commands_options_and_values_are_exit_2(args: list[str], says: str) -> None:
    assert says in assert_one_line_error(run(*args), 2)


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ('{"charge_amount_fail": 151}', "unknown rule 'charge_amount_fail'"),
        ("[151]", "must be a JSON object"),
        ("charge_amount_fails=151", "must be a JSON object"),
    ],
)
def test_a_script_with_an_unknown_rule_is_refused_before_it_is_sent(rules: str, says: str, closed_port: int) -> None:
    result = run("script", rules, "--url", f"http://127.0.0.1:{closed_port}")
    assert says in assert_one_line_error(result, 2)


def test_an_unreachable_simulator_is_one_line_and_exit_1(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    message = assert_one_line_error(run("clock", "show", "--url", url), 1)
    assert f"cannot reach the simulator at {url}" in message


def test_a_busy_port_is_one_line_and_nothing_claims_to_serve(busy_port: int) -> None:
    result = run("--port", str(busy_port))
    assert assert_one_line_error(result, 1) == f"error: port {busy_port} is in use\n"
    assert result.stdout == ""


def test_an_invalid_environment_is_one_line_naming_the_variable_not_the_secret(busy_port: int) -> None:
    # The busy port makes a missed check fail fast instead of serving.
    env = {"SIMULATOR_SEED": "not-a-number", "VIPPS_CLIENT_SECRET": "s3cret-value"}
    message = assert_one_line_error(run("--port", str(busy_port), env=env), 1)
    assert "SIMULATOR_SEED" in message and "s3cret" not in message and "not-a-number" not in message


def test_start_up_and_faults_set_name_the_fault_options_alike() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    faults = root.commands["faults"]
    assert isinstance(faults, typer.core.TyperGroup)
    at_start_up = {opt for param in root.params for opt in param.opts}
    in_faults_set = {opt for param in faults.commands["set"].params for opt in param.opts}
    fault_flags = in_faults_set - {"--url", "--json"}
    assert {"--5xx-rate", "--429-rate", "--drop-rate", "--latency", "--seed", "--operation"} <= fault_flags
    assert fault_flags <= at_start_up


def test_the_old_start_up_spelling_is_the_same_option(busy_port: int) -> None:
    # --fault-5xx-rate is read as --5xx-rate, so it is checked the same way, before the port is tried.
    message = assert_one_line_error(run("--fault-5xx-rate", "2", "--port", str(busy_port)), 2)
    assert "'--5xx-rate'" in message and "between 0 and 1" in message
