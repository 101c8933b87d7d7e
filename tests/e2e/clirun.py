"""Run ``vipps-billing`` as a user would: a separate process, its output and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 90) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIPPS_")} | {"COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "worker.cli.app", *args], env=full_env | (env or {}), input=input,
                          capture_output=True, text=True, timeout=timeout)


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command: non-zero exit, one error line, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
