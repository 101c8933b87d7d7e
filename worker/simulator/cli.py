"""``vipps-billing simulator``: serve the simulator, or talk to a running one through its admin API."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from worker.simulator.config import FaultConfig, LatencyConfig, SimulatorConfig

app = typer.Typer(
    help="Run the Vipps simulator, or control a running one.\n\n"
    "Example: vipps-billing simulator --port 8070 --seed 7 --fault-5xx-rate 0.05",
    invoke_without_command=True,
    no_args_is_help=False,
)
clock_app = typer.Typer(help="Show or move the simulated clock.\n\nExample: vipps-billing simulator clock advance 1d")
faults_app = typer.Typer(
    help="Show or set fault injection.\n\nExample: vipps-billing simulator faults set --5xx-rate 0.1 --seed 3"
)
app.add_typer(clock_app, name="clock")
app.add_typer(faults_app, name="faults")

console = Console()
DEFAULT_URL = "http://127.0.0.1:8070"
UrlOption = Annotated[str, typer.Option("--url", envvar="SIMULATOR_URL", help="Admin base URL of the simulator.")]
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d12h``, ``1w`` -> seconds."""
    text = text.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 90s, 10m, 2h, 1d12h)")
    return sum(float(n) * UNIT_SECONDS[u] for n, u in parts)


def parse_latency(text: str | None) -> LatencyConfig:
    """``fixed:20``, ``uniform:5-50``, ``lognormal:20`` or ``lognormal:20:0.8`` (milliseconds)."""
    if not text or text == "none":
        return LatencyConfig()
    kind, _, rest = text.partition(":")
    try:
        if kind == "fixed":
            return LatencyConfig(distribution="fixed", ms=float(rest))
        if kind == "uniform":
            low, high = rest.split("-")
            return LatencyConfig(distribution="uniform", min_ms=float(low), max_ms=float(high))
        if kind == "lognormal":
            median, _, sigma = rest.partition(":")
            return LatencyConfig(distribution="lognormal", median_ms=float(median), sigma=float(sigma or 0.5))
    except ValueError:
        pass
    raise typer.BadParameter(f"not a latency: {text!r} (fixed:20, uniform:5-50, lognormal:20:0.5)")


def _show(data: Any) -> None:
    console.print_json(json.dumps(data))


def _call(method: str, url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        response = httpx.request(method, url.rstrip("/") + "/_simulator" + path, json=body, timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the simulator at {url}: {exc}[/red]")
        raise typer.Exit(2) from None
    data = response.json()
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code}: {data.get('error', data)}[/red]")
        raise typer.Exit(1)
    return data


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8070,
    seed: Annotated[int | None, typer.Option(help="Seed for ids and faults (reproducible runs).")] = None,
    fault_5xx_rate: Annotated[float, typer.Option(help="Share of Vipps calls answered 5xx.")] = 0.0,
    fault_429_rate: Annotated[float, typer.Option(help="Share answered 429 with Retry-After.")] = 0.0,
    fault_drop_rate: Annotated[float, typer.Option(help="Share whose connection drops before processing.")] = 0.0,
    fault_drop_after_commit_rate: Annotated[
        float, typer.Option(help="Share applied, then the connection drops with no response.")
    ] = 0.0,
    fault_timeout_after_commit_rate: Annotated[
        float, typer.Option(help="Share applied, then the response is held back.")
    ] = 0.0,
    fault_timeout_seconds: Annotated[float, typer.Option(help="How long a held-back response waits.")] = 15.0,
    fault_latency: Annotated[
        str | None, typer.Option(help="Added latency: fixed:20, uniform:5-50, lognormal:20:0.5 (ms).")
    ] = None,
    fault_token_endpoint: Annotated[bool, typer.Option(help="Apply faults to /accesstoken/get too.")] = False,
    token_lifetime: Annotated[int | None, typer.Option(help="Access token lifetime in seconds.")] = None,
    min_due_lead_days: Annotated[int | None, typer.Option(help="Earliest charge due date, in days.")] = None,
    rate_limits: Annotated[bool, typer.Option(help="Enforce the per-key Vipps rate limits.")] = True,
    auto_accept_after: Annotated[
        float | None, typer.Option(help="Users approve drafts after this many seconds.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the simulator (when no subcommand is given).

    Example: vipps-billing simulator --host 127.0.0.1 --port 8070 --seed 42 --fault-429-rate 0.02
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from worker.simulator.app import create_app

    config = SimulatorConfig.from_env()
    if seed is not None:
        config.seed = seed
    if token_lifetime is not None:
        config.token_lifetime_seconds = token_lifetime
    if min_due_lead_days is not None:
        config.min_due_lead_days = min_due_lead_days
    config.rate_limits_enabled = rate_limits
    config.auto_accept_after_seconds = auto_accept_after
    requested = FaultConfig(
        seed=seed,
        latency=parse_latency(fault_latency),
        error_5xx_rate=fault_5xx_rate,
        error_429_rate=fault_429_rate,
        connection_drop_rate=fault_drop_rate,
        drop_after_commit_rate=fault_drop_after_commit_rate,
        timeout_after_commit_rate=fault_timeout_after_commit_rate,
        timeout_seconds=fault_timeout_seconds,
        include_token_endpoint=fault_token_endpoint,
    )
    if requested.active() or not config.faults.active():
        config.faults = requested
    console.print(f"Vipps simulator on http://{host}:{port} (admin API under /_simulator/)", highlight=False)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level,
    )


@clock_app.command("show")
def clock_show(url: UrlOption = DEFAULT_URL) -> None:
    """Print the simulated time.

    Example: vipps-billing simulator clock show
    """
    _show(_call("GET", url, "/clock"))


@clock_app.command("set")
def clock_set(
    when: Annotated[str, typer.Argument(help="ISO-8601 UTC date-time.")], url: UrlOption = DEFAULT_URL
) -> None:
    """Jump the clock forward to a date-time; processing rounds and expiries crossed are run.

    Example: vipps-billing simulator clock set 2030-01-02T07:30:00Z
    """
    _show(_call("PUT", url, "/clock", {"now": when}))


@clock_app.command("advance")
def clock_advance(
    duration: Annotated[str, typer.Argument(help="90s, 10m, 2h, 1d12h, 1w or plain seconds.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Move the clock forward; processing rounds (07:00 and 15:00 UTC) and expiries crossed are run.

    Example: vipps-billing simulator clock advance 1d
    """
    _show(_call("POST", url, "/clock/advance", {"seconds": parse_duration(duration)}))


@faults_app.command("show")
def faults_show(url: UrlOption = DEFAULT_URL) -> None:
    """Print the fault configuration and how many faults were injected.

    Example: vipps-billing simulator faults show
    """
    _show(_call("GET", url, "/faults"))


@faults_app.command("set")
def faults_set(
    url: UrlOption = DEFAULT_URL,
    seed: Annotated[int | None, typer.Option(help="RNG seed.")] = None,
    rate_5xx: Annotated[float, typer.Option("--5xx-rate", help="Share answered 5xx.")] = 0.0,
    rate_429: Annotated[float, typer.Option("--429-rate", help="Share answered 429.")] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Share dropped before processing.")] = 0.0,
    drop_after_commit_rate: Annotated[float, typer.Option(help="Share applied then dropped.")] = 0.0,
    timeout_after_commit_rate: Annotated[float, typer.Option(help="Share applied then held back.")] = 0.0,
    timeout_seconds: Annotated[float, typer.Option(help="Hold-back time.")] = 15.0,
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds on injected 429s.")] = 1,
    latency: Annotated[str | None, typer.Option(help="fixed:20, uniform:5-50, lognormal:20:0.5 (ms).")] = None,
    operation: Annotated[
        list[str] | None, typer.Option(help="Only these operationIds (repeatable), e.g. CreateChargeV3.")
    ] = None,
    token_endpoint: Annotated[bool, typer.Option(help="Apply faults to /accesstoken/get too.")] = False,
) -> None:
    """Replace the fault configuration (options not given are off).

    Example: vipps-billing simulator faults set --seed 1 --timeout-after-commit-rate 0.2 --timeout-seconds 12
    """
    config = FaultConfig(
        seed=seed,
        latency=parse_latency(latency),
        error_5xx_rate=rate_5xx,
        error_429_rate=rate_429,
        retry_after_seconds=retry_after,
        connection_drop_rate=drop_rate,
        drop_after_commit_rate=drop_after_commit_rate,
        timeout_after_commit_rate=timeout_after_commit_rate,
        timeout_seconds=timeout_seconds,
        include_token_endpoint=token_endpoint,
        operations=operation or None,
    )
    _show(_call("PUT", url, "/faults", config.model_dump()))


@faults_app.command("off")
def faults_off(url: UrlOption = DEFAULT_URL) -> None:
    """Turn every fault off.

    Example: vipps-billing simulator faults off
    """
    _show(_call("PUT", url, "/faults", {}))


@app.command("effects")
def effects(
    url: UrlOption = DEFAULT_URL,
    duplicates: Annotated[bool, typer.Option(help="Only effects applied more than once (should be none).")] = False,
    since: Annotated[int, typer.Option(help="Only effects after this sequence number.")] = 0,
    agreement: Annotated[str | None, typer.Option(help="Only this agreement.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only this operation, e.g. charge.capture.")] = None,
) -> None:
    """Print the effects record (every state change with its idempotency key).

    Example: vipps-billing simulator effects --duplicates
    """
    query = f"?since={since}" + ("&duplicates=true" if duplicates else "")
    if agreement:
        query += f"&agreement_id={agreement}"
    if operation:
        query += f"&operation={operation}"
    _show(_call("GET", url, "/effects" + query))


@app.command("script")
def script(
    rules: Annotated[str, typer.Argument(help="JSON object of scripted outcomes.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Add scripted outcomes or act as a user.

    Example: vipps-billing simulator script '{"charge_amount_fails": 151, "user_accepts": "agr_AbC1234"}'
    """
    try:
        body = json.loads(rules)
    except ValueError:
        raise typer.BadParameter("RULES must be a JSON object") from None
    _show(_call("POST", url, "/scripts", body))


@app.command("stats")
def stats(url: UrlOption = DEFAULT_URL) -> None:
    """Print request counts by operation and status, replays, rate limiting and faults.

    Example: vipps-billing simulator stats
    """
    _show(_call("GET", url, "/stats"))


@app.command("reset")
def reset(url: UrlOption = DEFAULT_URL) -> None:
    """Forget all agreements, charges, keys and effects; clock back to real time.

    Example: vipps-billing simulator reset
    """
    _show(_call("POST", url, "/reset", {}))
