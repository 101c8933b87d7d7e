"""The admin commands: a running simulator's clock, faults, effects, webhook deliveries, scripts, stats and
reset, through its admin API (``/_simulator/``). The simulator is found at ``--url``, else ``VIPPS_BASE_URL``
(where the worker sends its Vipps calls), else ``SIMULATOR_URL``, else http://127.0.0.1:8070."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
import typer

from worker.simulator import cli_output as output
from worker.simulator.cli_options import (
    DEFAULT_URL,
    DropAfterCommitRate,
    DropRate,
    JsonOption,
    Latency,
    Operations,
    Rate5xx,
    Rate429,
    RetryAfter,
    TimeoutAfterCommitRate,
    TimeoutSeconds,
    TokenEndpoint,
    UrlOption,
    fault_config,
    parse_duration,
    parse_rules,
    parse_when,
)
from worker.simulator.clock import parse_iso

clock_app = typer.Typer(help="Show or move the simulated clock.\n\nExample: vipps-billing simulator clock advance 1d")
faults_app = typer.Typer(
    help="Show or set fault injection.\n\nExample: vipps-billing simulator faults set --5xx-rate 0.1 --seed 3"
)


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
    """One admin API call; anything but a JSON answer from the simulator is one line and exit code 1."""
    base = url.rstrip("/")
    query = {k: v for k, v in params.items() if v is not None}
    try:
        response = httpx.request(method, f"{base}/_simulator{path}", json=body, params=query, timeout=10)
    except httpx.HTTPError as exc:
        raise output.fail(f"cannot reach the simulator at {base}: {exc} (give --url or set VIPPS_BASE_URL)") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    reason = data.get("error") if isinstance(data, dict) else None
    if response.status_code >= 400 and reason is not None:
        raise output.fail(f"the simulator refused: {reason}")
    if response.status_code >= 400 or data is None:
        raise output.fail(f"no simulator at {base} (HTTP {response.status_code} from /_simulator{path})")
    return data


@clock_app.command("show")
def clock_show(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Print the simulated time.

    Example: vipps-billing simulator clock show
    """
    output.emit(call(url, "GET", "/clock"), as_json, output.clock)


@clock_app.command("set")
def clock_set(
    when: Annotated[datetime, typer.Argument(parser=parse_when, metavar="WHEN", help="ISO-8601 UTC date-time.")],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Jump the clock forward to a date-time; processing rounds and expiries crossed are run.

    Example: vipps-billing simulator clock set 2030-01-02T07:30:00Z
    """
    now = parse_iso(call(url, "GET", "/clock")["now"])
    # The simulator allows a second of slack (its answer is rounded to the second).
    if when < now - timedelta(seconds=1):
        raise output.fail(
            f"the clock cannot go back: {when.isoformat()} is before the simulated now {now.isoformat()} "
            "('vipps-billing simulator reset' starts over at real time)"
        )
    output.emit(call(url, "PUT", "/clock", {"now": when.isoformat()}), as_json, output.clock)


@clock_app.command("advance")
def clock_advance(
    duration: Annotated[
        float, typer.Argument(parser=parse_duration, metavar="DURATION", help="90s, 10m, 2h, 1d12h, 1w or seconds.")
    ],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Move the clock forward; processing rounds (07:00 and 15:00 UTC) and expiries crossed are run.

    Example: vipps-billing simulator clock advance 1d
    """
    output.emit(call(url, "POST", "/clock/advance", {"seconds": duration}), as_json, output.clock)


@faults_app.command("show")
def faults_show(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Print the fault configuration and how many faults were injected.

    Example: vipps-billing simulator faults show
    """
    output.emit(call(url, "GET", "/faults"), as_json, output.faults)


@faults_app.command("set")
def faults_set(
    ctx: typer.Context,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
    seed: Annotated[int | None, typer.Option(help="Seed for the fault RNG (reproducible faults).")] = None,
    rate_5xx: Rate5xx = 0.0,
    rate_429: Rate429 = 0.0,
    retry_after: RetryAfter = 1,
    drop_rate: DropRate = 0.0,
    drop_after_commit_rate: DropAfterCommitRate = 0.0,
    timeout_after_commit_rate: TimeoutAfterCommitRate = 0.0,
    timeout_seconds: TimeoutSeconds = 15.0,
    latency: Latency = None,
    operation: Operations = None,
    token_endpoint: TokenEndpoint = False,
) -> None:
    """Replace the fault configuration (options not given are off); the same options as at start-up.

    Example: vipps-billing simulator faults set --seed 1 --timeout-after-commit-rate 0.2 --timeout-seconds 12
    """
    # The fault options are read by name from ctx.params, as for the start-up command.
    config = fault_config(ctx.params)
    output.emit(call(url, "PUT", "/faults", config.model_dump()), as_json, output.faults)


@faults_app.command("off")
def faults_off(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Turn every fault off.

    Example: vipps-billing simulator faults off
    """
    output.emit(call(url, "PUT", "/faults", {}), as_json, output.faults)


def effects(
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
    duplicates: Annotated[bool, typer.Option(help="Only effects applied more than once (should be none).")] = False,
    since: Annotated[int, typer.Option(min=0, help="Only effects after this sequence number.")] = 0,
    agreement: Annotated[str | None, typer.Option(help="Only this agreement.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only this operation, e.g. charge.capture.")] = None,
    msn: Annotated[str | None, typer.Option(help="Only this merchant (Merchant-Serial-Number).")] = None,
    per_charge: Annotated[
        bool, typer.Option("--per-charge", help="How often each charge id was created (should be once).")
    ] = False,
) -> None:
    """Print the effects record (every state change with its idempotency key).

    Example: vipps-billing simulator effects --duplicates
    """
    if per_charge:
        report = call(url, "GET", "/effects/charges", agreement_id=agreement, msn=msn)
        output.emit(report, as_json, output.charge_effects)
        return
    found = call(
        url,
        "GET",
        "/effects",
        since=since,
        duplicates="true" if duplicates else None,
        agreement_id=agreement,
        operation=operation,
        msn=msn,
    )
    output.emit(found, as_json, output.effects)


def webhooks(
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
    since: Annotated[int, typer.Option(min=0, help="Only attempts after this sequence number.")] = 0,
    registration: Annotated[str | None, typer.Option(help="Only this registration (its id).")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event type, e.g. recurring.charge-failed.v1.")] = None,
    agreement: Annotated[str | None, typer.Option(help="Only this agreement.")] = None,
) -> None:
    """Print the webhook delivery record (every attempt: its answer, and what followed it).

    Example: vipps-billing simulator webhooks --event recurring.agreement-stopped.v1
    """
    found = call(
        url, "GET", "/webhooks/deliveries", since=since, registration=registration, event=event, agreement_id=agreement
    )
    output.emit(found, as_json, output.deliveries)


def script(
    rules: Annotated[
        dict[str, Any], typer.Argument(parser=parse_rules, metavar="RULES", help="JSON object of scripted outcomes.")
    ],
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Add scripted outcomes or act as a user (rules: see the simulator's README).

    Example: vipps-billing simulator script '{"charge_amount_fails": 151, "user_accepts": "agr_AbC1234"}'
    """
    output.emit(call(url, "POST", "/scripts", rules), as_json, output.scripts)


def stats(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Print request counts by operation and status, replays, rate limiting and faults.

    Example: vipps-billing simulator stats
    """
    output.emit(call(url, "GET", "/stats"), as_json, output.stats)


def reset(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Forget all agreements, charges, keys and effects; clock back to real time.

    Example: vipps-billing simulator reset
    """
    output.emit(call(url, "POST", "/reset", {}), as_json, output.reset)
