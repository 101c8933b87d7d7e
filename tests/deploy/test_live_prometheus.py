"""Every dashboard query and every rule, evaluated by a real Prometheus against a real worker.

On loopback: the Vipps simulator (with 5xx and 429 faults, so retries and rate limiting happen, and users
who accept agreements after a second), the worker (`vipps-billing worker`) on the test Redis, the webhook
receiver (`vipps-billing webhooks serve`, registered at the simulator with `vipps-billing webhooks
register`), the support console (`vipps-billing console serve`, one failed login), and Debian's Prometheus
scraping the worker, the receiver and the console every second with deploy/prometheus/rules loaded. Real
commands are enqueued with `vipps-billing enqueue`: agreements created (and accepted, so the simulator
delivers signed webhooks that the worker carries out), unknown agreements fetched and updated (404 problems;
the sixth update of one agreement within a minute is held back by the shared rate budget), and one command
sent twice (an idempotent replay). Then each query must parse and return data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from deploy_tools import (
    CONSOLE_JOB,
    DASHBOARD,
    RECEIVER_JOB,
    RULE_FILES,
    WORKER_JOB,
    free_port,
    grafana_to_promql,
    prometheus,
    promtool,
    run,
)

from worker.console.users import hash_password
from worker.local.processes import receiver_url, start_receiver, stop_group
from worker.runtime.settings import WorkerSettings

pytestmark = pytest.mark.timeout(420)

BIN = Path(sys.executable).parent / "vipps-billing"
SETTLE_SECONDS = 90
FAULTS = {"error_5xx_rate": 0.15, "error_429_rate": 0.15}
# Commands that meet injected faults or a rate budget finish later than the rest; every query is
# re-evaluated until it has data or this much time has passed since the stack came up.
DATA_DEADLINE_SECONDS = 120


@dataclass
class Stack:
    prometheus_url: str
    metrics_url: str
    receiver_metrics_url: str
    console_metrics_url: str
    logs: dict[str, Path]
    started: float


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: process exited {proc.returncode}\n{log.read_text()[-4000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout}s\n{log.read_text()[-4000:]}", pytrace=False)


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return dict(_get(url))
    except urllib.error.HTTPError as exc:  # 400/422: parse or evaluation error
        return dict(json.loads(exc.read()))


def scalar(base: str, expr: str) -> float:
    result = query(base, expr)
    assert result["status"] == "success", result
    values = result["data"]["result"]
    return float(values[0]["value"][1]) if values else 0.0


def commands() -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    out: list[dict[str, Any]] = []
    for i in range(3):
        out.append({
            "type": "agreement.create", "command_id": f"live-create-{i}", "issued_at": now,
            "product_name": f"Live test plan {i}", "pricing": {"type": "LEGACY", "amount": 4900},
            "interval": {"unit": "MONTH", "count": 1}, "merchant_redirect_url": "https://example.com/back",
            "merchant_agreement_url": "https://example.com/agreement", "phone_number": "4791234567",
        })
    for i in range(2):
        out.append({"type": "agreement.fetch", "command_id": f"live-fetch-{i}", "issued_at": now,
                    "agreement_id": f"agr_missing{i}"})
    # UpdateAgreementPatchV3 allows 5 calls a minute per agreement: the sixth waits for the budget.
    for i in range(6):
        out.append({"type": "agreement.update", "command_id": f"live-update-{i}", "issued_at": now,
                    "agreement_id": "agr_missingupd", "product_name": f"Renamed {i}"})
    out.append({"type": "charge.fetch", "command_id": "live-charge-fetch", "issued_at": now,
                "agreement_id": "agr_missing0", "charge_id": "chr_missing0"})
    # Two charges at once go out as one batch (refused: no such agreement), for the Charge runs panels.
    due = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    for i in range(2):
        out.append({"type": "charge.create", "command_id": f"live-charge-{i}", "issued_at": now,
                    "agreement_id": "agr_missing0", "amount": 1000 + i, "description": "Live", "due": due,
                    "retry_days": 0, "transaction_type": "DIRECT_CAPTURE"})
    return out


def _enqueue(items: list[dict[str, Any]], env: dict[str, str], tmp: Path, name: str) -> None:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in items))
    result = subprocess.run([str(BIN), "enqueue", str(path)], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 0, f"enqueue failed: {result.stdout}\n{result.stderr}"


def _metric_sum(metrics_url: str, labels: str) -> float:
    """Sum of vipps_billing_commands_total samples whose label set contains `labels`, read from /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    samples = re.findall(r"^vipps_billing_commands_total\{([^}]*)\} (\S+)$", text, re.MULTILINE)
    wanted = labels.split(",")
    return sum(float(value) for found, value in samples if all(w in found.split(",") for w in wanted))


def _start_console(tmp: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`vipps-billing console serve` once ready, after one failed login on its pages; (process, metrics port)."""
    (tmp / "console-users.json").write_text(json.dumps({"users": [
        {"username": "vera", "password_hash": hash_password("the right one"), "role": "viewer"}]}))
    (tmp / "console-secret").write_text("s" * 40)
    port, ops_port = free_port(), free_port()
    proc = _start([str(BIN), "console", "serve"], log, env | {
        "CONSOLE_USERS_FILE": str(tmp / "console-users.json"),
        "CONSOLE_SESSION_SECRET_FILE": str(tmp / "console-secret"), "CONSOLE_COOKIE_SECURE": "false",
        "CONSOLE_HOST": "127.0.0.1", "CONSOLE_PORT": str(port), "CONSOLE_METRICS_PORT": str(ops_port)})
    _wait_http(f"http://127.0.0.1:{ops_port}/readyz", 60, proc, log)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser:
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
        assert token, "no CSRF token on the console's login page"
        answer = browser.post("/login", data={"csrf": token.group(1), "username": "vera", "password": "wrong"})
        assert answer.status_code == 401
    return proc, ops_port


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert BIN.exists(), f"console script {BIN} is missing: run through `uv run pytest`"
    prom_bin, _ = prometheus(), promtool()
    tmp = tmp_path_factory.mktemp("live")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    sim_port, metrics_port, prom_port = free_port(), free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "VIPPS_ENV": "simulator",
           "VIPPS_BASE_URL": f"http://127.0.0.1:{sim_port}", "METRICS_PORT": str(metrics_port),
           "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10", "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom-multiproc")}
    logs = {name: tmp / f"{name}.log" for name in ("simulator", "receiver", "worker", "console", "prometheus")}
    procs: list[subprocess.Popen[bytes]] = []
    receiver: subprocess.Popen[bytes] | None = None
    try:
        sim = _start([str(BIN), "simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--seed", "7",
                      "--auto-accept-after", "1"], logs["simulator"], env)
        procs.append(sim)
        _wait_tcp(sim_port, 30, sim, logs["simulator"])
        # Registered before the faults are on (a registration answered 5xx may still have been made).
        hook_url, secrets = receiver_url(), tmp / "webhook-secrets"
        cli_env = {k: v for k, v in env.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "METRICS_PORT")}
        registered = subprocess.run([str(BIN), "webhooks", "register", "--url", hook_url, "--secrets-dir",
                                     str(secrets)], capture_output=True, text=True, env=cli_env, timeout=60,
                                    check=False)
        assert registered.returncode == 0, f"webhooks register failed: {registered.stdout}\n{registered.stderr}"
        receiver_port = free_port()
        with logs["receiver"].open("wb") as receiver_log:
            receiver = start_receiver(receiver_log, hook_url, redis_url=redis_url, secrets_dir=secrets,
                                      settings=WorkerSettings(), metrics_port=receiver_port)
        request = urllib.request.Request(f"http://127.0.0.1:{sim_port}/_simulator/faults", method="PUT",
                                         data=json.dumps(FAULTS).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        worker = _start([str(BIN), "worker", "--processes", "1", "--threads", "4"], logs["worker"], env)
        procs.append(worker)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_http(f"http://127.0.0.1:{metrics_port}/healthz", 60, worker, logs["worker"])
        console, console_port = _start_console(tmp, cli_env, logs["console"])
        procs.append(console)

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [{"job_name": WORKER_JOB, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                               {"job_name": RECEIVER_JOB,
                                "static_configs": [{"targets": [f"127.0.0.1:{receiver_port}"]}]},
                               {"job_name": CONSOLE_JOB,
                                "static_configs": [{"targets": [f"127.0.0.1:{console_port}"]}]}],
        }
        config_path = tmp / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        prom = _start([prom_bin, f"--config.file={config_path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{prom_port}"], logs["prometheus"])
        procs.append(prom)
        prometheus_url = f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{prometheus_url}/-/ready", 60, prom, logs["prometheus"])

        deadline = time.monotonic() + 30
        while {t["labels"]["job"] for t in _get(f"{prometheus_url}/api/v1/targets")["data"]["activeTargets"]
               if t["health"] == "up"} != {WORKER_JOB, RECEIVER_JOB, CONSOLE_JOB}:
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not scrape the worker, the receiver and the console\n"
                            f"{logs['prometheus'].read_text()[-4000:]}", pytrace=False)
            time.sleep(0.5)

        batch = commands()
        _enqueue(batch, env, tmp, "batch")
        # Once the agreements exist, send their create commands again: finished commands are replayed.
        deadline = time.monotonic() + SETTLE_SECONDS
        while _metric_sum(metrics_url, 'type="agreement.create",outcome="succeeded"') < 3:
            if time.monotonic() > deadline:
                pytest.fail(f"agreement.create commands did not succeed within {SETTLE_SECONDS}s\n"
                            f"{logs['worker'].read_text()[-4000:]}", pytrace=False)
            time.sleep(0.5)
        _enqueue(batch[:3], env, tmp, "again")
        yield Stack(prometheus_url, metrics_url, f"http://127.0.0.1:{receiver_port}/metrics",
                    f"http://127.0.0.1:{console_port}/metrics", logs, time.monotonic())
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if receiver is not None:
            stop_group(receiver, 5.0)
        client.flushdb()
        client.close()


def _wait_tcp(port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode}\n{log.read_text()[-4000:]}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"port {port} not listening after {timeout}s\n{log.read_text()[-4000:]}", pytrace=False)


def with_bool_comparisons(expr: str) -> str:
    """Turn every filtering comparison into a `bool` one, so an alert expression returns its inputs (0/1)
    whether or not the alert would fire. Label matchers and strings are left alone."""
    out: list[str] = []
    i, depth, quote = 0, 0, ""
    while i < len(expr):
        ch = expr[i]
        if quote:
            out.append(ch)
            if ch == "\\":
                out.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
            out.append(ch)
        elif ch == "{":
            depth += 1
            out.append(ch)
        elif ch == "}":
            depth -= 1
            out.append(ch)
        elif depth == 0 and (op := next((o for o in (">=", "<=", "==", "!=", ">", "<") if expr.startswith(o, i)),
                                        None)):
            out.append(op)
            i += len(op)
            if not re.match(r"\s*bool\b", expr[i:]):
                out.append(" bool")
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] if panel["type"] != "row"
            for target in panel["targets"]]


def test_bool_rewrite_keeps_label_matchers() -> None:
    expr = 'max(x{a!="b", c=~"d"}) > 300 and on () y == 0'
    assert with_bool_comparisons(expr) == 'max(x{a!="b", c=~"d"}) > bool 300 and on () y == bool 0'


def test_prometheus_scrapes_the_worker_the_receiver_and_the_console(stack: Stack) -> None:
    targets = _get(f"{stack.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
    for job in (WORKER_JOB, RECEIVER_JOB, CONSOLE_JOB):
        assert [t["health"] for t in targets if t["labels"]["job"] == job] == ["up"], targets


def test_every_exposition_passes_promtool_check_metrics(stack: Stack) -> None:
    for url in (stack.metrics_url, stack.receiver_metrics_url, stack.console_metrics_url):
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        result = run([promtool(), "check", "metrics"], stdin=text)
        problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        # dramatiq's own histogram is named in milliseconds; that one finding is dramatiq's, not ours.
        ours = [line for line in problems if not line.startswith("dramatiq_message_duration_milliseconds")]
        assert not ours, f"{url}:\n" + "\n".join(problems)


def evaluate_until_data(stack: Stack, queries: list[tuple[str, str]]) -> list[str]:
    """Evaluate (name, PromQL) pairs until each has returned data; the ones that never did, with why."""
    pending = dict(queries)
    last: dict[str, str] = {}
    deadline = stack.started + DATA_DEADLINE_SECONDS
    while True:
        for name, promql in list(pending.items()):
            result = query(stack.prometheus_url, promql)
            if result.get("status") != "success":
                # A parse or evaluation error does not go away by waiting.
                return [f"{name}: {promql}\n    error: {result.get('error')}"]
            if result["data"]["result"]:
                del pending[name]
            else:
                last[name] = f"{name}: {promql}\n    no data"
        if not pending or time.monotonic() > deadline:
            return [last[name] for name in pending]
        time.sleep(2)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = [(f"{title} [{i}]", grafana_to_promql(expr)) for i, (title, expr) in enumerate(_dashboard_queries())]
    failures = evaluate_until_data(stack, queries)
    assert not failures, "dashboard queries failing against the live worker:\n" + "\n".join(failures)


def test_every_rule_is_healthy_and_returns_data(stack: Stack) -> None:
    groups = _get(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert len(loaded) == len(_rules())
    unhealthy = [f"{r['name']}: {r.get('lastError')}" for r in loaded if r["health"] != "ok"]
    assert not unhealthy, unhealthy

    queries = [(rule["record"], rule["record"]) if "record" in rule
               else (rule["alert"], with_bool_comparisons(rule["expr"])) for rule in _rules()]
    failures = evaluate_until_data(stack, queries)
    assert not failures, "rules without data against the live worker:\n" + "\n".join(failures)


def test_the_workload_really_ran(stack: Stack) -> None:
    base = stack.prometheus_url
    assert scalar(base, 'sum(vipps_billing_commands_total{outcome="succeeded"})') >= 3
    assert scalar(base, 'sum(vipps_billing_vipps_requests_total{status_class="4xx"})') >= 1
    assert scalar(base, "sum(vipps_billing_vipps_problems_total)") >= 1
    assert scalar(base, f'sum(up{{job="{WORKER_JOB}"}})') == 1
    assert scalar(base, f'sum(up{{job="{RECEIVER_JOB}"}})') == 1
    assert scalar(base, f'sum(up{{job="{CONSOLE_JOB}"}})') == 1
    # The simulator's signed deliveries were verified, queued and carried out by the worker.
    webhooks = [("genuine deliveries", 'sum(vipps_billing_webhook_deliveries_total{outcome="queued"}) >= 1'),
                ("hints carried out", "sum(vipps_billing_webhook_hints_total) >= 1"),
                ("registrations loaded", "max(vipps_billing_webhook_registrations) >= 1"),
                ("the console's failed login", 'sum(vipps_billing_console_logins_total{result="failure"}) == 1')]
    failures = evaluate_until_data(stack, webhooks)
    assert not failures, "\n".join(failures)
    assert scalar(base, 'sum(vipps_billing_webhook_rejections_total{reason=~"signature|unknown_registration"})') == 0
