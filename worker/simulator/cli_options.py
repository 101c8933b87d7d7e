"""Options and value parsers shared by the simulator's commands.

The fault options are declared once and used by both ``vipps-billing simulator`` (start-up) and
``vipps-billing simulator faults set``, so a flag has one name everywhere; ``fault_config`` turns
either command's values into a ``FaultConfig``. A bad value is a ``typer.BadParameter``: one line,
exit code 2.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from worker.simulator.clock import parse_iso
from worker.simulator.config import FaultConfig, LatencyConfig
from worker.simulator.scripts import ScriptError, check_rule_names

DEFAULT_URL = "http://127.0.0.1:8070"
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d12h``, ``1w`` -> seconds."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise typer.BadParameter(f"not a duration: {text!r} (e.g. 90s, 10m, 2h, 1d12h)") from None
        return sum(float(n) * UNIT_SECONDS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise typer.BadParameter(f"not a duration: {text!r} (the clock only moves forward; e.g. 90s, 10m, 2h)")
    return seconds


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
    except ValueError:  # a float that is not one, or a negative one (pydantic's ValidationError)
        pass
    raise typer.BadParameter(f"not a latency: {text!r} (fixed:20, uniform:5-50, lognormal:20:0.5; ms, not negative)")


def parse_rate(text: str) -> float:
    """A probability: the share of calls a fault hits."""
    try:
        rate = float(text)
    except ValueError:
        raise typer.BadParameter(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0 <= rate <= 1:  # NaN fails this too
        raise typer.BadParameter(f"must be between 0 and 1 (a share of calls), got {text}")
    return rate


def parse_when(text: str) -> datetime:
    try:
        return parse_iso(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 date-time: {text!r} (e.g. 2030-01-02T07:30:00Z)") from None


def parse_rules(text: str) -> dict[str, Any]:
    """A JSON object of scripted outcomes, each rule one the simulator knows."""
    try:
        rules = json.loads(text)
    except ValueError:
        raise typer.BadParameter("must be a JSON object, e.g. '{\"charge_amount_fails\": 151}'") from None
    if not isinstance(rules, dict):
        raise typer.BadParameter("must be a JSON object, e.g. '{\"charge_amount_fails\": 151}'")
    try:
        check_rule_names(rules)
    except ScriptError as exc:
        raise typer.BadParameter(str(exc)) from None
    return rules


def _rate(flag: str, help: str) -> Any:
    return typer.Option(flag, parser=parse_rate, metavar="RATE", help=help)


UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar=["VIPPS_BASE_URL", "SIMULATOR_URL"],
        show_envvar=True,
        help="Base URL of the running simulator (the worker's VIPPS_BASE_URL; SIMULATOR_URL is an alias).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]

# The fault options. Parameter names are what fault_config reads from a command's parameters.
Rate5xx = Annotated[float, _rate("--5xx-rate", "Share of Vipps calls answered 5xx (0 to 1).")]
Rate429 = Annotated[float, _rate("--429-rate", "Share answered 429 with Retry-After.")]
RetryAfter = Annotated[int, typer.Option("--retry-after", min=0, help="Retry-After seconds on injected 429s.")]
DropRate = Annotated[float, _rate("--drop-rate", "Share whose connection drops before processing.")]
DropAfterCommitRate = Annotated[
    float, _rate("--drop-after-commit-rate", "Share applied, then the connection drops with no response.")
]
TimeoutAfterCommitRate = Annotated[
    float, _rate("--timeout-after-commit-rate", "Share applied, then the response is held back.")
]
TimeoutSeconds = Annotated[float, typer.Option("--timeout-seconds", min=0, help="How long a held-back response waits.")]
Latency = Annotated[
    LatencyConfig | None,
    typer.Option(
        "--latency",
        parser=parse_latency,
        metavar="KIND:MS",
        help="Added latency: fixed:20, uniform:5-50, lognormal:20:0.5 (ms).",
    ),
]
Operations = Annotated[
    list[str] | None,
    typer.Option("--operation", help="Only these operationIds (repeatable), e.g. CreateChargeV3."),
]
TokenEndpoint = Annotated[
    bool, typer.Option("--token-endpoint/--no-token-endpoint", help="Apply faults to /accesstoken/get too.")
]

# Webhook delivery (start-up only; None: the setting's default, or its SIMULATOR_WEBHOOK_* variable).
WebhookTimeout = Annotated[
    float | None,
    typer.Option("--webhook-timeout", min=0.001, metavar="SECONDS", help="A later webhook answer fails (Vipps: 10)."),
]
WebhookRetryWait = Annotated[
    float | None,
    typer.Option(
        "--webhook-retry-wait", min=0, metavar="SECONDS", help="Wait between the first four attempts (Vipps: ~2)."
    ),
]
WebhookOrder = Annotated[
    Literal["agreement", "charge", "registration"] | None,
    typer.Option("--webhook-order", help="What a failing delivery holds back: its agreement's, charge's, or all."),
]
WebhookHttpsOnly = Annotated[
    bool | None,
    typer.Option("--webhook-https-only/--webhook-any-url", help="Refuse http:// webhook URLs, as Vipps does."),
]


def fault_config(params: Mapping[str, Any]) -> FaultConfig:
    """The faults a command's fault options ask for; options not given are off."""
    return FaultConfig(
        seed=params["seed"],
        latency=params["latency"] or LatencyConfig(),
        error_5xx_rate=params["rate_5xx"],
        error_429_rate=params["rate_429"],
        retry_after_seconds=params["retry_after"],
        connection_drop_rate=params["drop_rate"],
        drop_after_commit_rate=params["drop_after_commit_rate"],
        timeout_after_commit_rate=params["timeout_after_commit_rate"],
        timeout_seconds=params["timeout_seconds"],
        include_token_endpoint=params["token_endpoint"],
        operations=params["operation"] or None,
    )


def accept_old_fault_flags(name: str) -> str:
    """``--fault-5xx-rate`` (the start-up spelling before the flags were unified) reads as ``--5xx-rate``."""
    for old, new in (("fault-", ""), ("no-fault-", "no-")):
        if name.startswith(old):
            return new + name.removeprefix(old)
    return name

# Charges at Vipps scale (CHANGES §2, §3, §5).
ChargesPerMinute = Annotated[
    int | None, typer.Option(min=1, help="Charge creations a minute per MSN, a batch counting once (Vipps: 500).")
]
BatchCreationDelay = Annotated[
    float | None,
    typer.Option(min=0, metavar="SECONDS", help="A batch's charges are created this long after the answer."),
]
BatchFailureRate = Annotated[
    float | None,
    typer.Option(parser=parse_rate, metavar="RATE", help="Share of accepted batch charges that fail later."),
]
UnscheduledCharges = Annotated[
    bool | None,
    typer.Option(
        "--unscheduled-charges/--no-unscheduled-charges",
        help="Allow-list the merchant for UNSCHEDULED charges (file merchants: their own flag wins).",
    ),
]
