"""The bench's figures as text: each scenario against its target, then every figure."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):  # psutil knows no CPU model name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU {cpu}, Python {sys.version.split()[0]}"


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(scenario, result, target, met) for each scenario that ran."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if "charge-run" in results:
        r = results["charge-run"]
        ratio = r["ratio"]
        rows.append((f"charge run, {r['charges']:,} (limits on)",
                     f"{r['seconds']:,.0f} s = {r['charges_per_s']:,.0f}/s vs naive {r['naive']['charges_per_s']:.1f}/s"
                     f" (over {r['naive']['window_s']:.0f} s, extrapolated {r['naive_extrapolated_seconds']:,.0f} s):"
                     f" {ratio}x; {r['vipps_429']} 429s", ">= 50x, 0 429s",
                     ratio is not None and ratio >= 50 and r["vipps_429"] == 0))
    if "calls-per-charge" in results:
        c = results["calls-per-charge"]
        rows.append(("Vipps calls per charge", f"{c['calls_per_charge']:.2f} (webhooks on; {c['calls']})", "<= 3",
                     c["calls_per_charge"] <= 3))
    if "simulator" in results:
        rate = results["simulator"]["requests_per_s"]
        rows.append(("simulator alone", f"{rate:,.0f} charge POSTs/s", "not the bottleneck", None))
    if "throughput" in results:
        t = results["throughput"]
        rows.append(("throughput, no limits (extra)", f"{t['ratio']:.2f}x ({t['full']['commands_per_s']:,.0f} vs "
                     f"{t['naive']['commands_per_s']:,.0f} cmd/s), {t['duplicate_effects']} effects twice",
                     ">= 1.5x, 0 twice", t["ratio"] >= 1.5 and t["duplicate_effects"] == 0))
    if "latency" in results:
        lat = results["latency"]
        rows.append(("latency-bound (100 ms)", f"{lat['share_of_bound']:.0%} of {lat['bound_per_s']:.0f}/s; "
                     f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms", ">= 85% of the bound",
                     lat["share_of_bound"] >= 0.85))
    if "timeliness" in results:
        tl = results["timeliness"]
        rows.append((f"stop behind {tl['backlog']:,} charges", f"{tl['seconds_to_agreement_stopped']:.2f} s",
                     "< 5 s", tl["seconds_to_agreement_stopped"] < 5))
    if "recovery" in results:
        rc = results["recovery"]
        rows.append(("recovery after SIGKILL", f"{rc['seconds_until_all_done']:.1f} s, "
                     f"{rc['done_twice_at_vipps']} done twice", "< 30 s, 0 twice",
                     rc["seconds_until_all_done"] < 30 and rc["done_twice_at_vipps"] == 0))
    if "fairness" in results:
        fa = results["fairness"]
        rates = [v for k, v in fa.items() if k.startswith("commands_per_s_")]
        rows.append((f"merchant B behind A's {fa['backlog']:,}", f"{fa['b_seconds_max']:.2f} s (charge and stop); "
                     f"both at once {' / '.join(f'{r:,.0f}' for r in rates)} cmd/s", "< 5 s",
                     fa["b_seconds_max"] < 5))
    if "webhooks" in results:
        wh = results["webhooks"]
        rows.append((f"stop in the app ({wh['stops']})", f"webhooks p50 {wh['webhooks']['p50_s']:.2f} s, p99 "
                     f"{wh['webhooks']['p99_s']:.2f} s; polling every {wh['poll_every_seconds']:.0f} s p99 "
                     f"{wh['polling']['p99_s']:.1f} s", "p99 < 2 s", wh["webhooks"]["p99_s"] < 2))
    return rows


def table(results: dict[str, Any]) -> str:
    """The verdicts, the two sides of the throughput run next to each other, then every figure."""
    lines = [f"{'scenario':<28} {'result':<58} {'target':<20} met"]
    for scenario, result, target, met in verdicts(results):
        lines.append(f"{scenario:<28} {result:<58} {target:<20} {'-' if met is None else 'yes' if met else 'NO'}")
    if "throughput" in results:
        lines += ["", *_throughput_sides(results["throughput"])]
    lines += ["", "all figures"]
    for name, result in results.items():
        if name == "machine":
            continue
        flat: dict[str, Any] = {}
        for key, value in result.items():
            if isinstance(value, dict):
                flat |= {f"{key}.{k}": v for k, v in value.items()}
            else:
                flat[key] = value
        lines.append(f"  {name}")
        lines += [f"    {key:<40} {value}" for key, value in flat.items()]
    return "\n".join(lines)


def _throughput_sides(t: dict[str, Any]) -> list[str]:
    lines = [f"throughput (simulator without limits): charge.create, first completion to last, medians of "
             f"{t['naive']['rounds']} rounds",
             f"  {'':<28} {'naive':>12} {'full':>12}"]
    for label, key, scale in (("commands/s", "commands_per_s", 1), ("CPU ms per command", "cpu_s_per_command",
                              1000), ("Redis CPU ms per command", "redis_cpu_s_per_command", 1000),
                              ("peak RSS MB", "peak_rss_mb", 1)):
        lines.append(f"  {label:<28} {t['naive'][key] * scale:>12.2f} {t['full'][key] * scale:>12.2f}")
    lines.append(f"  {'commands/s by round':<28} {_joined(t['naive']['commands_per_s_per_round']):>12} "
                 f"{_joined(t['full']['commands_per_s_per_round']):>12}")
    lines.append(f"  {'ratio by round':<28} {_joined(t['ratio_per_round'], '.2f'):>25}")
    return lines


def _joined(values: list[float], spec: str = ".0f") -> str:
    return "/".join(format(v, spec) for v in values)
