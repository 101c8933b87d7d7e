"""`vipps-billing bench` still runs as documented (a small size; the figures come from the full size)."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.e2e.clirun import cli


def test_bench_throughput_prints_a_table_and_writes_both_sides(redis_url: str, redis_client: redis.Redis,
                                                               tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = cli("bench", "--scenarios", "throughput", "--charges", "300", "--rounds", "1", "--processes", "1",
                 "--threads", "4", "--redis-url", redis_url, "--output", str(output), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "full.commands_per_s" in result.stdout and "naive.commands_per_s" in result.stdout
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("throughput, no limits"))
    assert ">= 1.5x" in verdict and verdict.split()[-1] in ("yes", "NO")
    figures = json.loads(output.read_text())["throughput"]
    for kind in ("naive", "full"):
        assert figures[kind]["commands_per_s"] > 0
        assert figures[kind]["cpu_s_per_command"] > 0
        assert figures[kind]["peak_rss_mb"] > 0
        assert figures[kind]["redis_cpu_s_per_command"] >= 0
    assert figures["ratio"] > 0 and len(figures["ratio_per_round"]) == 1
    assert figures["duplicate_effects"] == 0


def test_bench_charge_run_and_calls_per_charge_under_the_limits(redis_url: str, redis_client: redis.Redis,
                                                                tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = cli("bench", "--scenarios", "charge-run,calls-per-charge", "--run-charges", "600", "--run-agreements",
                 "60", "--naive-window", "5", "--calls-charges", "100", "--processes", "1", "--threads", "4",
                 "--redis-url", redis_url, "--output", str(output), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(output.read_text())
    run = figures["charge-run"]
    assert run["charges"] == 600 and run["seconds"] > 0 and run["peak_redis_mb"] > 0 and run["peak_rss_mb"] > 0
    assert run["batch_requests"] >= 1 and run["vipps_429"] == 0  # our budget kept us inside Vipps's limits
    assert run["naive"]["charges_in_window"] > 0
    calls = figures["calls-per-charge"]
    assert calls["charges"] == 100 and calls["calls"]["CreateChargesAsyncV3"] >= 1
    assert 1 <= calls["calls_per_charge"] <= 3
    assert any(line.startswith("charge run, 600") for line in result.stdout.splitlines())
