"""``vipps-billing bench``: the benchmarks (``worker.bench``), a table of their figures and a JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from worker.bench.report import table
from worker.bench.run import SCENARIOS, Sizes, run_bench
from worker.runtime.settings import get_settings

app = typer.Typer(add_completion=False, help="Benchmarks of the worker against the simulator; prints a table of "
                  "the figures against their targets and writes JSON.\n\n"
                  "Example: vipps-billing bench --scenarios throughput,timeliness --charges 5000")


@app.callback(invoke_without_command=True)
def bench(
    scenarios: Annotated[str, typer.Option(help=f"comma-separated, of {', '.join(SCENARIOS)}")] = ",".join(
        SCENARIOS),
    charges: Annotated[int, typer.Option(help="charge.create commands in the throughput scenario")] = 20_000,
    rounds: Annotated[int, typer.Option(help="throughput rounds of each (naive, full); medians are reported")] = 3,
    backlog: Annotated[int, typer.Option(help="queued charges ahead of the stop (timeliness), and of merchant "
                                             "B's commands (fairness)")] = 100_000,
    share: Annotated[int, typer.Option(help="charges of each merchant run at once (fairness)")] = 5_000,
    stops: Annotated[int, typer.Option(help="stops in the app, each way (webhooks)")] = 200,
    poll_every: Annotated[float, typer.Option(help="ACTIVE re-check of the polling-only side, s (webhooks)")] = 30.0,
    latency_commands: Annotated[int, typer.Option(help="commands in the latency scenario")] = 2_000,
    recovery_commands: Annotated[int, typer.Option(help="commands in the recovery scenario")] = 1_000,
    run_charges: Annotated[int, typer.Option(help="charge.create commands of the charge run")] = 100_000,
    run_agreements: Annotated[int, typer.Option(help="ACTIVE agreements the charge run bills")] = 20_000,
    naive_window: Annotated[float, typer.Option(help="seconds the naive actor's rate is measured over, under "
                                                     "the limits (charge-run)")] = 120.0,
    calls_charges: Annotated[int, typer.Option(help="charges followed to CHARGED (calls-per-charge)")] = 2_000,
    processes: Annotated[int, typer.Option(help="worker processes")] = 2,
    threads: Annotated[int, typer.Option(help="threads per worker process")] = 8,
    redis_url: Annotated[str | None, typer.Option(help="Redis to use (FLUSHED); default: an embedded one")] = None,
    output: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results.json"),
) -> None:
    """Run the benchmarks; prints a table and writes JSON.

    Example: vipps-billing bench --scenarios throughput --charges 5000
    """
    chosen = [s.strip() for s in scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    sizes = Sizes(charges=charges, rounds=rounds, backlog=backlog, latency_commands=latency_commands,
                  recovery_commands=recovery_commands, processes=processes, threads=threads, share=share,
                  stops=stops, poll_every=poll_every, run_charges=run_charges, run_agreements=run_agreements,
                  naive_window=naive_window, calls_charges=calls_charges)
    results = run_bench(chosen, sizes, redis_url=redis_url, settings=get_settings(), output=output,
                        say=lambda text: typer.echo(text, err=True))
    typer.echo(f"machine: {results['machine']}")
    typer.echo(table({k: v for k, v in results.items() if k != "machine"}))
    typer.echo(f"results written to {output}")
