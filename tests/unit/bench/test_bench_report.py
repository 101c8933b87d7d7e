"""The bench's table: each scenario against its target, the throughput sides, every figure."""

from __future__ import annotations

from typing import Any

import pytest

from worker.bench.report import machine, table, verdicts


def side(per_s: float) -> dict[str, Any]:
    return {"rounds": 2, "commands": 100, "commands_per_s": per_s, "cpu_s_per_command": 0.002,
            "redis_cpu_s_per_command": 0.0003, "peak_rss_mb": 150.0, "commands_per_s_per_round": [per_s, per_s]}


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "settings": {"processes": 2, "threads": 8},
        "simulator": {"requests": 1000, "seconds": 1.0, "requests_per_s": 1234.5, "client_threads": 16},
        "throughput": {"naive": side(700), "full": side(560), "ratio": 0.8, "ratio_per_round": [0.79, 0.81],
                       "duplicate_effects": 0},
        "latency": {"commands_per_s": 150, "bound_per_s": 160, "share_of_bound": 0.94, "p50_ms": 112, "p99_ms": 163},
        "timeliness": {"backlog": 100_000, "queued_at_stop": 99_000, "seconds_to_agreement_stopped": 0.15},
        "recovery": {"commands": 1000, "seconds_until_all_done": 20.9, "done_twice_at_vipps": 0},
        "charge-run": {"charges": 100_000, "seconds": 180.0, "charges_per_s": 555.6, "ratio": 66.7,
                       "naive": {"window_s": 120.0, "charges_in_window": 1000, "charges_per_s": 8.33},
                       "naive_extrapolated_seconds": 12_000, "vipps_429": 0},
        "calls-per-charge": {"charges": 2000, "calls": {"FetchChargeV3": 4000, "CreateChargesAsyncV3": 1},
                             "calls_per_charge": 2.0},
    }


def test_every_scenario_against_its_target(results: dict[str, Any]) -> None:
    assert verdicts(results) == [
        ("charge run, 100,000 (limits on)", "180 s = 556/s vs naive 8.3/s (over 120 s, extrapolated 12,000 s): "
         "66.7x; 0 429s", ">= 50x, 0 429s", True),
        ("Vipps calls per charge", "2.00 (webhooks on; {'FetchChargeV3': 4000, 'CreateChargesAsyncV3': 1})", "<= 3",
         True),
        ("simulator alone", "1,234 charge POSTs/s", "not the bottleneck", None),
        ("throughput, no limits (extra)", "0.80x (560 vs 700 cmd/s), 0 effects twice", ">= 1.5x, 0 twice",
         False),
        ("latency-bound (100 ms)", "94% of 160/s; p50 112 ms, p99 163 ms", ">= 85% of the bound", True),
        ("stop behind 100,000 charges", "0.15 s", "< 5 s", True),
        ("recovery after SIGKILL", "20.9 s, 0 done twice", "< 30 s, 0 twice", True)]


ROWS = {"throughput": "throughput, no limits (extra)", "charge-run": "charge run, 100,000 (limits on)",
        "calls-per-charge": "Vipps calls per charge", "latency": "latency-bound (100 ms)",
        "timeliness": "stop behind 100,000 charges", "recovery": "recovery after SIGKILL"}


@pytest.mark.parametrize(("scenario", "change"), [
    ("throughput", {"ratio": 1.49}), ("throughput", {"duplicate_effects": 1}),
    ("charge-run", {"ratio": 49.9}), ("charge-run", {"vipps_429": 1}), ("calls-per-charge", {"calls_per_charge": 3.01}),
    ("latency", {"share_of_bound": 0.84}), ("timeliness", {"seconds_to_agreement_stopped": 5.0}),
    ("recovery", {"seconds_until_all_done": 30.0}), ("recovery", {"done_twice_at_vipps": 1})])
def test_a_missed_target_is_not_met(results: dict[str, Any], scenario: str, change: dict[str, Any]) -> None:
    results["throughput"]["ratio"] = 1.6
    assert all(row[3] is not False for row in verdicts(results))
    results[scenario] |= change
    met = {row[0]: row[3] for row in verdicts(results)}
    assert met[ROWS[scenario]] is False


def test_only_the_scenarios_that_ran(results: dict[str, Any]) -> None:
    assert [row[0] for row in verdicts({"timeliness": results["timeliness"]})] == ["stop behind 100,000 charges"]


def test_the_table_puts_both_throughput_sides_next_to_each_other_then_every_figure(results: dict[str, Any]) -> None:
    text = table(results)
    lines = text.splitlines()
    assert lines[0].split() == ["scenario", "result", "target", "met"]
    assert next(line for line in lines if line.startswith("throughput, no limits")).split()[-1] == "NO"
    assert "medians of 2 rounds" in text
    assert next(line for line in lines if "commands/s by round" in line).split()[-2:] == ["700/700", "560/560"]
    assert next(line for line in lines if "CPU ms per command" in line and "Redis" not in line).split()[-2:] == \
        ["2.00", "2.00"]
    figures = lines[lines.index("all figures"):]
    assert "  simulator" in figures and any("full.commands_per_s" in line for line in figures)


def test_the_machine_names_its_cpus_and_python() -> None:
    assert "vCPU" in machine() and "Python 3." in machine()
