"""The CLI at 80 columns: shell completion, whole option names in --help, tables that keep ids on one line."""

from __future__ import annotations

import os
import re

import redis

from tests.e2e.clirun import cli
from worker.core.control import Control
from worker.runtime.settings import get_settings
from worker.store.deadletters import DeadLetter, dead_letter_id

NARROW = {"COLUMNS": "80"}
HELPS = [("dlq", "purge"), ("dlq", "replay"), ("dlq", "list"), ("enqueue",), ("status",), ("demo",),
         ("simulator",), ("simulator", "faults"), ("checklist",), ("worker",)]


def test_shell_completion_is_offered() -> None:
    shown = cli("--show-completion", "bash", env=NARROW)
    assert shown.returncode == 0, shown.stderr
    assert "complete" in shown.stdout and "_COMPLETE" in shown.stdout
    assert "--install-completion" in cli("--help", env=NARROW).stdout


def test_help_keeps_option_names_whole_at_80_columns() -> None:
    for args in HELPS:
        result = cli(*args, "--help", env=NARROW)
        assert result.returncode == 0, (args, result.stderr)
        assert all(len(line) <= 80 for line in result.stdout.splitlines()), args
        cut = re.findall(r"--[\w-]*…", result.stdout)
        assert not cut, (args, cut)


def test_dlq_list_keeps_ids_on_one_line_at_80_columns(redis_url: str) -> None:
    env = {"REDIS_URL": redis_url}
    os.environ["REDIS_URL"] = redis_url
    redis.Redis.from_url(redis_url).flushdb()
    ops = Control(redis_url, get_settings())
    letters = []
    try:
        for n in range(3):
            letter = DeadLetter(id=dead_letter_id("narrow", n), reason="retries_exhausted",
                                detail="HTTP 503 from Vipps after 5 attempts " * 3, at_ms=1_700_000_000_000 + n,
                                command_id=f"billing-2026-12-customer-{n:04d}", command_type="charge.capture")
            ops.dead_letters.add(letter)
            letters.append(letter)
    finally:
        ops.close()
        del os.environ["REDIS_URL"]
    try:
        table = cli("dlq", "list", env=env | NARROW)
        assert table.returncode == 0, table.stderr
        assert all(len(line) <= 80 for line in table.stdout.splitlines())
        for letter in letters:
            assert letter.id in table.stdout and str(letter.command_id) in table.stdout
    finally:
        redis.Redis.from_url(redis_url).flushdb()


def test_demo_table_keeps_words_and_ids_whole_at_80_columns(redis_url: str) -> None:
    result = cli("demo", env={"REDIS_URL": redis_url} | NARROW)
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert "force_accepted," in result.stdout  # not force_accept / ed,
    assert re.search(r"│ agreement ACTIVE +│ yes +│ agr_\S+ +│", result.stdout), result.stdout
