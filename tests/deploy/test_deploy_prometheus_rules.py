"""deploy/prometheus: rule syntax (promtool check rules), rule unit tests (promtool test rules) and the
conventions every alert keeps (severity, annotations, a runbook section in deploy/README.md)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from deploy_tools import DEPLOY, PROMETHEUS_DIR, RECEIVER_JOB, RULE_FILES, WORKER_JOB, promtool, run_ok

RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def test_rule_files_exist() -> None:
    names = {path.name for path in RULE_FILES}
    assert {"alerts.yml", "recording.yml"} <= names, names
    assert RULE_TESTS, "no promtool rule unit tests found"


def test_promtool_check_rules() -> None:
    out = run_ok([promtool(), "check", "rules", *map(str, RULE_FILES)])
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", out))
    assert found == len(_rules()), out


def test_promtool_rule_unit_tests_pass() -> None:
    out = run_ok([promtool(), "test", "rules", *map(str, RULE_TESTS)], cwd=PROMETHEUS_DIR)
    assert out.count("SUCCESS") == len(RULE_TESTS), out


def test_every_alert_is_unit_tested_firing() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    missing = {alert["alert"] for alert in _alerts()} - fired
    assert not missing, f"alerts never shown firing in a rule unit test: {sorted(missing)}"


def test_required_alerts_are_present() -> None:
    exprs = {alert["alert"]: alert["expr"] for alert in _alerts()}
    wanted = {
        "Vipps error rate": "vipps_billing_vipps_errors",
        "429s": "vipps_billing_vipps_rate_limited",
        "dead letters growing": "vipps_billing_dead_letters",
        "outbox age": "vipps_billing_outbox_oldest_age_seconds",
        "queue age": "vipps_billing_queue_oldest_age_seconds",
        "stale workers": 'vipps_billing_workers{state="stale"}',
        "token refresh failing": "msn:vipps_billing_token_refresh_failures",
    }
    for what, needle in wanted.items():
        assert any(needle in expr for expr in exprs.values()), f"no alert covers {what} ({needle})"


def test_alerts_carry_severity_and_a_runbook_section() -> None:
    readme = (DEPLOY / "README.md").read_text()
    headings = {m.lower() for m in re.findall(r"^#{2,4} +(\w+)\s*$", readme, flags=re.MULTILINE)}
    for alert in _alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        assert annotations["runbook_url"] == f"deploy/README.md#{name.lower()}", name
        assert name.lower() in headings, f"deploy/README.md has no runbook section '### {name}'"


def test_up_alerts_select_the_scrape_jobs_the_readme_names() -> None:
    readme = (DEPLOY / "README.md").read_text()
    jobs = {job for alert in _alerts() for job in re.findall(r'\bup\{job="([^"]+)"\}', alert["expr"])}
    assert jobs == {WORKER_JOB, RECEIVER_JOB}, jobs
    for job in jobs:
        assert f"job_name: {job}" in readme, f"deploy/README.md shows no scrape job named {job}"


def test_webhook_alerts_cover_forgeries_silence_and_the_receiver() -> None:
    exprs = {alert["alert"]: alert["expr"] for alert in _alerts()}
    wanted = {
        "forged deliveries": 'reason=~"signature|unknown_registration|content_hash"',
        "webhooks silent while polling finds transitions": 'observed_by="poll"',
        "receiver down": f'up{{job="{RECEIVER_JOB}"}} == 0',
        "no receiver at all": f'absent(up{{job="{RECEIVER_JOB}"}})',
        "503s from the receiver": 'outcome="unavailable"',
        "unreadable deliveries": 'outcome="unreadable"',
    }
    for what, needle in wanted.items():
        assert any(needle in expr for expr in exprs.values()), f"no alert covers {what} ({needle})"


def test_an_alert_covers_many_failed_or_refused_console_logins() -> None:
    exprs = [alert["expr"] for alert in _alerts() if "vipps_billing_console_logins_total" in alert["expr"]]
    assert any('result=~"failure|rate_limited"' in expr for expr in exprs), exprs


# Alerts about one merchant's calls, credentials, dead letters or queues: they carry `msn`.
PER_MERCHANT_ALERTS = frozenset({"VippsApiRateLimited", "VippsTokenRefreshFailing", "VippsBillingDeadLettersGrowing",
                                 "VippsBillingAgreementQueueStalled", "VippsBillingCommandQueueBacklogOld"})


def test_per_merchant_alerts_fire_for_one_merchant_while_another_is_fine() -> None:
    assert {alert["alert"] for alert in _alerts()} >= PER_MERCHANT_ALERTS
    shown: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            merchants = {msn for series in case["input_series"]
                         for msn in re.findall(r'msn="([0-9]+)"', series["series"])}
            for check in case.get("alert_rule_test", []):
                firing = [alert["exp_labels"].get("msn") for alert in check.get("exp_alerts", [])]
                if len(merchants) >= 2 and len(firing) == 1 and firing[0] in merchants:
                    shown.add(check["alertname"])
    missing = PER_MERCHANT_ALERTS - shown
    assert not missing, f"no rule unit test shows these firing for one of two merchants: {sorted(missing)}"
