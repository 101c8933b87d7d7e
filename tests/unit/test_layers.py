"""The arrows between the packages (ARCHITECTURE.md), checked on every import statement in the source.

``cli -> runtime -> core -> (store, vipps) -> schemas``; ``local`` and ``bench`` serve the CLI only; the
Vipps client knows no queues, no Redis and no dramatiq; the simulator speaks only HTTP, so it imports
nothing of the worker nor of the contract. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> prefixes it must not import (a prefix matches the module and its submodules)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "schemas": ("worker", "tests"),
    "worker.core": ("dramatiq", "typer", "rich", "starlette", "uvicorn", "redis", "worker.runtime", "worker.cli",
                    "worker.console", "worker.webhooks", "worker.local", "worker.bench", "worker.simulator", "tests"),
    "worker.store": ("dramatiq", "typer", "rich", "httpx", "starlette", "uvicorn", "worker.core", "worker.runtime",
                     "worker.cli", "worker.console", "worker.webhooks", "worker.local", "worker.bench",
                     "worker.simulator", "worker.vipps", "tests"),
    "worker.vipps": ("dramatiq", "redis", "typer", "rich", "starlette", "uvicorn", "worker.core", "worker.store",
                     "worker.runtime", "worker.cli", "worker.console", "worker.webhooks", "worker.local",
                     "worker.bench", "worker.simulator", "tests"),
    "worker.simulator": ("worker.core", "worker.store", "worker.runtime", "worker.cli", "worker.console",
                         "worker.webhooks", "worker.local", "worker.bench", "worker.vipps", "schemas", "dramatiq",
                         "redis", "tests"),
    "worker.runtime": ("typer", "rich", "worker.cli", "worker.console", "worker.local", "worker.bench", "tests"),
    # The receiver verifies, stores and hands on: store, vipps and schemas only, no worker logic nor queue consumer.
    "worker.webhooks": ("dramatiq", "typer", "rich", "worker.core", "worker.runtime", "worker.cli", "worker.console",
                        "worker.local", "worker.bench", "worker.simulator", "tests"),
    "worker.console": ("dramatiq", "typer", "worker.runtime", "worker.cli", "worker.local", "worker.bench", "tests"),
    "worker.local": ("worker.cli", "worker.bench", "worker.console", "tests"),
    "worker.bench": ("worker.cli", "worker.console", "tests"),
    "worker.cli": ("tests",),
}


def imports(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``source``, relative ones resolved against ``module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            # `from worker import core` imports worker.core
            found += [(node.lineno, f"{base}.{alias.name}" if base in ("worker", "schemas") else base)
                      for alias in node.names]
    return found


def violations(source: str, module: str) -> list[str]:
    """Imports of ``module`` (a dotted name) that cross an arrow the wrong way."""
    package = next((p for p in sorted(FORBIDDEN, key=len, reverse=True) if module == p or module.startswith(p + ".")),
                   None)
    if package is None:
        return []
    bad = []
    for line, name in imports(source, module):
        for prefix in FORBIDDEN[package]:
            if name == prefix or name.startswith(prefix + "."):
                bad.append(f"{module}:{line} imports {name} ({package} must not import {prefix})")
    return bad


def modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("worker", "schemas"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def test_every_package_has_a_rule() -> None:
    packages = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "worker").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(FORBIDDEN), f"packages without an import rule: {packages - set(FORBIDDEN)}"


def test_no_import_crosses_an_arrow_the_wrong_way() -> None:
    bad = [v for module, path in modules() for v in violations(path.read_text(encoding="utf-8"), module)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("module", "source"), [
    ("worker.core.pipeline", "import redis\n"),
    ("worker.core.pipeline", "def f():\n    from dramatiq import Message\n"),
    ("worker.store.ledger", "from worker.core.events import EventBuilder\n"),
    ("worker.store.ledger", "from ..core import events\n"),
    ("worker.vipps.client", "import redis.client\n"),
    ("worker.simulator.app", "from schemas import Event\n"),
    ("worker.simulator.app", "from worker import vipps\n"),
    ("worker.runtime.process", "from worker.cli.common import fail\n"),
    ("schemas.events", "from worker.store.keys import Keys\n"),
    ("worker.webhooks.app", "from worker.core.events import EventBuilder\n"),
    ("worker.webhooks.main", "from worker.runtime.settings import WorkerSettings\n"),
    ("worker.webhooks.intake", "import dramatiq\n"),
    ("worker.webhooks.app", "from ..cli import common\n"),
])
def test_the_checker_catches_a_wrong_import(module: str, source: str) -> None:
    assert violations(source, module)


def test_the_checker_allows_the_arrows() -> None:
    assert not violations("from worker.store.ledger import Ledger\nfrom worker.vipps import errors\n"
                          "from schemas import Event\n", "worker.core.pipeline")
    assert not violations("from worker.simulator.engine import Engine\nimport httpx\n", "worker.simulator.cli")
    assert not violations("from worker.store.webhooks import WebhookQueue\nfrom worker.vipps import errors\n"
                          "from schemas.problems import one_line\nimport starlette\nimport redis\n",
                          "worker.webhooks.main")


def test_importing_any_module_changes_no_global_state() -> None:
    """No broker, encoder, logging handler or environment read happens at import; composition roots do that."""
    names = [m for m, _ in modules() if not m.endswith("__main__")]
    probe = f"""
import importlib, json, logging, os, sys
import dramatiq, dramatiq.broker
before_env = dict(os.environ)
encoder = type(dramatiq.get_encoder())
for name in {names!r}:
    importlib.import_module(name)
print(json.dumps({{
    "broker": dramatiq.broker.global_broker is not None,
    "encoder": type(dramatiq.get_encoder()) is not encoder,
    "root_handlers": len(logging.getLogger().handlers),
    "worker_handlers": len(logging.getLogger("worker").handlers),
    "env_changed": dict(os.environ) != before_env,
}}))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("VIPPS_")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "broker": False, "encoder": False, "root_handlers": 0, "worker_handlers": 0, "env_changed": False}
