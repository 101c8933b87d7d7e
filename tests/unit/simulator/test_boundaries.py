"""The simulator stands alone: it imports nothing from the rest of ``worker`` nor from ``schemas`` (it
speaks only HTTP, like the real Vipps), and importing any of its modules changes no global state."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import worker.simulator

PACKAGE = Path(worker.simulator.__file__).parent
MODULES = sorted(f"worker.simulator.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_simulator_imports_nothing_else_of_the_project() -> None:
    crossing = {
        f"{path.name}: {name}"
        for path in PACKAGE.glob("*.py")
        for name in _imported(path)
        if (name == "worker" or name.startswith(("worker.", "schemas")))
        and not name.startswith("worker.simulator")
        and name != "worker.simulator"
    }
    assert len(MODULES) > 10
    assert crossing == set()


# Run in a fresh interpreter: what this process imported already would hide a module's side effects.
SNAPSHOT = """
import json, logging, os, signal, sys, warnings

def state():
    loggers = {"": logging.getLogger()} | {
        name: logger for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        "handlers": {name: [repr(h) for h in logger.handlers] for name, logger in loggers.items() if logger.handlers},
        "levels": {name: logger.level for name, logger in loggers.items() if logger.level},
        "disabled": sorted(name for name, logger in loggers.items() if logger.disabled),
        "environ": dict(os.environ),
        "signals": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)},
        "warning_filters": len(warnings.filters),
        "excepthook": repr(sys.excepthook),
        "path": list(sys.path),
        "streams": [id(sys.stdout), id(sys.stderr)],
    }

import importlib, worker
before = state()
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": state()}))
"""


def test_importing_any_simulator_module_changes_no_global_state() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SNAPSHOT, *MODULES], capture_output=True, text=True, check=True, timeout=60
    )
    states = json.loads(done.stdout)
    assert states["after"] == states["before"]
    assert done.stderr == ""
