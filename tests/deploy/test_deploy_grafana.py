"""deploy/grafana: the dashboard's structure (importable, templated datasource, every panel queried,
no overlapping panels), every query is valid PromQL (promtool) over metrics the worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from deploy_tools import (
    CONSOLE_METRICS,
    DASHBOARD,
    DRAMATIQ_METRICS,
    MERCHANT_METRICS,
    RECEIVER_METRICS,
    RULE_FILES,
    WORKER_METRICS,
    family,
    grafana_to_promql,
    metric_names,
    promtool,
    run,
    run_ok,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def query_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in query_panels() for target in panel["targets"]]


def test_dashboard_is_importable() -> None:
    data = dashboard()
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        assert key in data, key
    assert "id" not in data or data["id"] is None, "an exported id breaks import into another Grafana"
    assert data["schemaVersion"] >= 36
    assert data["uid"] == "vipps-billing-worker"


def test_datasource_is_a_template_variable() -> None:
    variables = {var["name"]: var for var in dashboard()["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name, var in variables.items():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, name
            assert grafana_to_promql(f'x{{a=~"${name}"}}') == 'x{a=~".*"}', f"${name} has no substitution"


def test_every_panel_has_a_query_on_the_templated_datasource() -> None:
    panels = query_panels()
    assert len(panels) >= 20
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        title = panel.get("title")
        assert title, panel["id"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], f"panel {title!r} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"panel {title!r} has no unit"


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    exprs = [grafana_to_promql(expr) for expr in dashboard_exprs()]
    assert all("$" not in expr for expr in exprs), [e for e in exprs if "$" in e]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    out = run_ok([promtool(), "check", "rules", str(path)])
    assert f"SUCCESS: {len(exprs)} rules found" in out, out


def test_promtool_parse_check_rejects_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (type) (rate(vipps_billing_commands_total[1m])"}]}]}))
    result = run([promtool(), "check", "rules", str(path)])
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def test_queries_and_rules_use_only_exported_metrics() -> None:
    known = WORKER_METRICS | RECEIVER_METRICS | CONSOLE_METRICS | DRAMATIQ_METRICS | {"up"}
    used = {family(name) for expr in dashboard_exprs() for name in metric_names(expr)}
    assert used <= known, f"dashboard queries unknown metrics: {sorted(used - known)}"
    rules = [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
             for rule in group["rules"]]
    records = {rule["record"] for rule in rules if "record" in rule}
    for rule in rules:
        names = {family(n) for n in metric_names(rule["expr"])}
        assert names <= known | records, f"{rule.get('record') or rule.get('alert')}: {names - known - records}"


def test_the_receiver_catalogue_is_what_the_receiver_exports() -> None:
    from prometheus_client import generate_latest

    from worker.webhooks.metrics import ReceiverMetrics

    text = generate_latest(ReceiverMetrics(lambda: 1).registry).decode()
    exported = {name for name in re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE) if not name.endswith("_created")}
    assert exported == RECEIVER_METRICS


def test_the_console_catalogue_is_what_the_console_exports() -> None:
    from prometheus_client import generate_latest

    from worker.console.metrics import ConsoleMetrics

    text = generate_latest(ConsoleMetrics().registry).decode()
    exported = {name for name in re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE) if not name.endswith("_created")}
    assert exported == CONSOLE_METRICS


def row_exprs(title: str) -> list[str]:
    """The queries of the panels under the row ``title`` (up to the next row)."""
    rows = {panel["title"]: panel["gridPos"]["y"] for panel in dashboard()["panels"] if panel["type"] == "row"}
    assert title in rows, sorted(rows)
    start = rows[title]
    end = min((y for y in rows.values() if y > start), default=10**6)
    return [target["expr"] for panel in query_panels() if start < panel["gridPos"]["y"] < end
            for target in panel["targets"]]


def test_a_console_row_shows_logins_by_result_and_actions_by_outcome() -> None:
    exprs = row_exprs("Support console")
    assert {family(name) for expr in exprs for name in metric_names(expr)} == CONSOLE_METRICS
    assert any("vipps_billing_console_logins_total" in expr and "by (method, result)" in expr for expr in exprs)
    assert any("vipps_billing_console_actions_total" in expr and "by (action, outcome)" in expr for expr in exprs)


def test_dashboard_covers_what_operators_watch() -> None:
    used = {family(name) for expr in dashboard_exprs() for name in metric_names(expr)}
    wanted = {
        "vipps_billing_commands_total", "vipps_billing_vipps_requests_total",
        "vipps_billing_vipps_request_duration_seconds", "vipps_billing_vipps_problems_total",
        "vipps_billing_queue_depth", "vipps_billing_queue_oldest_age_seconds",
        "vipps_billing_command_retries_total", "vipps_billing_dead_letters", "vipps_billing_watchlist_size",
        "vipps_billing_vipps_rate_limited_total", "vipps_billing_outbox_pending",
        "vipps_billing_command_end_to_end_seconds", "vipps_billing_queue_wait_seconds",
    }
    assert wanted <= used, f"dashboard lacks {sorted(wanted - used)}"


def test_a_webhooks_row_shows_the_receiver_and_what_the_worker_makes_of_it() -> None:
    rows = {panel["title"]: panel["gridPos"]["y"] for panel in dashboard()["panels"] if panel["type"] == "row"}
    assert "Webhooks" in rows, sorted(rows)
    start = rows["Webhooks"]
    end = min((y for y in rows.values() if y > start), default=10**6)
    exprs = [target["expr"] for panel in query_panels() if start < panel["gridPos"]["y"] < end
             for target in panel["targets"]]
    used = {family(name) for expr in exprs for name in metric_names(expr)}
    wanted = {
        "vipps_billing_webhook_deliveries_total", "vipps_billing_webhook_rejections_total",
        "vipps_billing_webhook_to_event_seconds", "vipps_billing_webhook_last_delivery_timestamp_seconds",
        "vipps_billing_webhook_hints_total", "vipps_billing_transitions_seen_total",
    }
    assert wanted <= used, f"the Webhooks row lacks {sorted(wanted - used)}"
    for quantile in ("0.5", "0.99"):
        assert any(f"histogram_quantile({quantile}," in expr and "webhook_to_event_seconds_bucket" in expr
                   for expr in exprs), f"no {quantile} quantile of the delivery-to-event latency"
    assert any("by (observed_by)" in expr for expr in exprs), "transitions are not split by what saw them first"


def test_a_merchant_variable_filters_every_query_over_a_merchant_metric() -> None:
    variables = {var["name"]: var for var in dashboard()["templating"]["list"]}
    msn = variables["msn"]
    assert msn["query"]["query"] == msn["definition"] == "label_values(vipps_billing_commands_total, msn)"
    assert msn["multi"] and msn["includeAll"] and msn["allValue"] == ".*"
    for panel in query_panels():
        for target in panel["targets"]:
            names = {family(name) for name in metric_names(target["expr"])} & MERCHANT_METRICS
            selectors = re.findall(r"(\w+)(\{[^}]*\})?", target["expr"])
            for name, labels in selectors:
                if name in names:
                    assert 'msn=~"$msn"' in labels, f"{panel['title']!r}: {name} is not filtered by $msn"


def test_merchants_are_compared_side_by_side() -> None:
    legends = {target["legendFormat"] for panel in query_panels() for target in panel["targets"]
               if "by (msn" in target["expr"]}
    assert len(legends) >= 4 and all("{{msn}}" in legend for legend in legends), legends
    used = {family(name) for expr in dashboard_exprs() if "by (msn" in expr for name in metric_names(expr)}
    assert {"vipps_billing_commands_total", "vipps_billing_dead_letters_added_total",
            "vipps_billing_queue_depth"} <= used, used
