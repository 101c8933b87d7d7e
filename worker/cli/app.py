"""The ``vipps-billing`` command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.bench import run as bench
from worker.cli import command as command_cli
from worker.cli import demo, dlq, support
from worker.cli.common import KNOWN_ERRORS, JsonOption, console, describe, emit_json, err_console, fail, guard, open_ops
from worker.simulator import cli as simulator_cli

try:  # typer 0.2x carries its own click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Vipps MobilePay recurring billing worker: commands in, exactly-once effects, events out.\n\n"
                  "Example: vipps-billing demo")
app.add_typer(simulator_cli.app, name="simulator")
app.add_typer(support.agreement_app, name="agreement")
app.add_typer(support.charge_app, name="charge")
app.add_typer(command_cli.app, name="command")
app.add_typer(dlq.app, name="dlq")
app.add_typer(bench.app, name="bench")
demo.register(app)


@app.command()
def worker(
    processes: Annotated[int | None, typer.Option(help="worker processes (env WORKER_PROCESSES)")] = None,
    threads: Annotated[int | None, typer.Option(help="threads per process (env WORKER_THREADS)")] = None,
) -> None:
    """Run the worker: consume the command queues until SIGTERM.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing worker --processes 1 --threads 16
    """
    from worker.local.redis import RedisUnavailable, find_redis
    from worker.runtime.settings import SettingsError, get_settings
    from worker.vipps import ConfigError, load_settings

    try:
        settings = get_settings()
        load_settings()
    except (SettingsError, ConfigError) as exc:
        raise fail(str(exc)) from None
    try:
        with find_redis(settings.redis_url) as found:
            raise typer.Exit(run_worker(found.url, processes or settings.worker_processes,
                                        threads or settings.worker_threads))
    except RedisUnavailable as exc:
        raise fail(str(exc)) from None


def run_worker(url: str, processes: int, threads: int, extra_env: dict[str, str] | None = None) -> int:
    """Run ``dramatiq worker.runtime.actors`` on the command queues; returns its exit code."""
    from worker.runtime.settings import get_settings

    settings = get_settings()
    own_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="vipps-billing-prom-"))
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)  # stale files from a previous run would add up
    metrics_dir.mkdir(parents=True)
    env = dict(os.environ) | (extra_env or {}) | {
        "REDIS_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "prometheus_multiproc_dir": str(metrics_dir),
        "dramatiq_prom_db": str(metrics_dir), "dramatiq_queue_prefetch": str(max(2, threads * 2)),
        "dramatiq_worker_timeout": "200",
    }
    args = [sys.executable, "-m", "dramatiq", "worker.runtime.actors", "--processes", str(processes),
            "--threads", str(threads), "--queues", settings.agreements_queue, settings.charges_queue,
            "--worker-shutdown-timeout", str(int(settings.worker_shutdown_timeout_seconds * 1000)),
            "--skip-logging"]
    child = subprocess.Popen(args, env=env)

    def forward(signum: int, _: Any) -> None:
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        return child.wait()
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def enqueue(
    file: Annotated[str, typer.Argument(help="JSON or JSONL file of commands, or - for standard input")],
) -> None:
    """Validate and enqueue commands (one JSON object, a JSON array, or one object per line).

    Example: vipps-billing enqueue charges-december.jsonl
    """
    from worker.core.producer import InvalidCommand, Producer, prepare
    from worker.local.redis import RedisUnavailable, find_redis
    from worker.runtime.settings import get_settings

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    try:
        commands = parse_commands(text)
        prepared = [prepare(c) for c in commands]
    except (ValueError, InvalidCommand) as exc:
        raise fail(str(exc)) from None
    try:
        with find_redis(get_settings().redis_url) as found:
            producer = Producer(found.url)
            for command in prepared:
                producer.send(command)
            producer.close()
    except (RedisUnavailable, OSError) as exc:
        raise fail(f"cannot reach Redis: {exc}") from None
    typer.echo(f"enqueued {len(prepared)} command(s)")


def parse_commands(text: str) -> list[dict[str, Any]]:
    """Commands from JSON (object or array) or JSONL; every line number is checked before anything is sent."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("no commands in input")
    try:
        whole = json.loads(stripped)
        items = whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        items = []
        for number, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: not valid JSON ({exc.msg})") from None
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ValueError(f"command {number}: expected a JSON object")
    return items


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Queues, in flight, retries, watchlist, dead letters, outbox and live workers, from Redis.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 vipps-billing status --json
    """
    with guard():
        ops = open_ops()
        try:
            data = ops.status()
        finally:
            ops.close()
    if as_json:
        emit_json(data)
        return
    from rich.table import Table

    queues = Table(title="Queues")
    for column in ("queue", "ready", "delayed", "dead"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for name, depth in data["queues"].items():
        queues.add_row(name, str(depth["ready"]), str(depth["delayed"]), str(depth["dead"]))
    console.print(queues)
    state = Table(title="Worker state", show_header=False)
    state.add_column(justify="left")
    state.add_column(justify="right")
    for label, value in (
        ("workers alive", data["workers_alive"]), ("commands in flight", data["in_flight"]),
        ("retries scheduled", data["retry_scheduled"]), ("watched agreements", data["watchlist"]["agreements"]),
        ("watched charges", data["watchlist"]["charges"]), ("dead letters", data["dead_letters"]),
        ("outbox backlog", data["outbox"]["pending"]),
        ("oldest unpublished event", f"{data['outbox']['oldest_age_seconds']} s")):
        state.add_row(label, str(value))
    console.print(state)


def main() -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # a group named alone: its help (rich has printed it already)
            exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:  # mistyped options and arguments: one line, as every other error
        hint = f" (see '{exc.ctx.command_path} --help')" if isinstance(exc, UsageError) and exc.ctx else ""
        err_console.print(f"[red]error: {exc.format_message()}{hint}[/red]", soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]error: aborted[/red]")
        sys.exit(1)
    except KNOWN_ERRORS as exc:  # last resort: a known error is never a traceback
        err_console.print(f"[red]error: {describe(exc)}[/red]", soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
