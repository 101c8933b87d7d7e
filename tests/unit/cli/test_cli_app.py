"""The root command: which commands it has, in which order, and what ``main`` wires (and importing does not)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer

from worker.cli.app import app, main
from worker.cli.enqueue import parse_commands


def test_the_commands_and_their_order_in_the_help() -> None:
    group = typer.main.get_command(app)
    with typer.Context(group) as ctx:
        assert group.list_commands(ctx) == ["demo", "checklist", "worker", "enqueue", "status", "simulator",
                                            "agreement", "charge", "command", "dlq", "merchants", "bench", "webhooks",
                                            "console"]


def test_importing_the_cli_configures_no_logging() -> None:
    code = ("import logging, worker.cli.app; "
            "assert logging.getLogger('worker').handlers == [] and logging.getLogger().handlers == []")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.fixture
def worker_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("worker")
    before = list(logger.handlers)
    yield logger
    logger.handlers = before


def test_main_silences_the_client_log_lines_behind_its_one_line_errors(
        worker_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["vipps-billing", "status", "--help"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    assert [type(h) for h in worker_logger.handlers] == [logging.NullHandler]


def test_commands_from_json_an_array_or_jsonl() -> None:
    assert parse_commands('{"command_id": "a"}') == [{"command_id": "a"}]
    assert parse_commands('[{"command_id": "a"}, {"command_id": "b"}]') == [{"command_id": "a"}, {"command_id": "b"}]
    assert parse_commands('{"command_id": "a"}\n\n{"command_id": "b"}\n') == [{"command_id": "a"},
                                                                            {"command_id": "b"}]


@pytest.mark.parametrize(("text", "says"), [
    ("", "no commands in input"), ("  \n", "no commands in input"),
    ('{"command_id": "a"}\n{not json\n', "line 2: not valid JSON"),
    ('[{"command_id": "a"}, 3]', "command 2: expected a JSON object"),
    ('"a string"', "command 1: expected a JSON object")])
def test_bad_input_names_the_line_or_command(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_commands(text)
