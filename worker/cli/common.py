"""What every ``vipps-billing`` command shares: one-line errors, JSON output, Redis, confirmation."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import redis
import typer
from rich.console import Console

from worker.core.control import Control, OperationError
from worker.core.producer import InvalidCommand
from worker.local.processes import StackError
from worker.local.redis import RedisUnavailable, find_redis
from worker.runtime.settings import SettingsError, WorkerSettings
from worker.vipps import ConfigError, errors, load_settings
from worker.vipps.merchants import Merchant, Merchants, UnknownMerchant, load_merchants

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the worker's outcome.")]
MsnOption = Annotated[str | None, typer.Option("--msn", help="The merchant (MSN); default: the only one "
                                                             "configured, required when there are several.")]
MsnFilterOption = Annotated[str | None, typer.Option("--msn", help="Only this merchant's (MSN); default: all.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def describe(exc: BaseException) -> str:
    """One line for an error we know; never a value from the environment."""
    if isinstance(exc, redis.RedisError):
        return f"cannot reach Redis: {exc}"
    if isinstance(exc, errors.BudgetExhaustedError):
        return f"{exc} (Vipps's published rate limit for this call, shared with the workers)"
    if isinstance(exc, errors.VippsError):
        text = str(exc)
        if exc.context_id and exc.context_id not in text:
            text += f" (Vipps contextId {exc.context_id})"
        return f"Vipps said no: {text}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP request failed: {exc}"
    return str(exc)


KNOWN_ERRORS: tuple[type[BaseException], ...] = (
    OperationError, InvalidCommand, RedisUnavailable, redis.RedisError, ConfigError, SettingsError,
    errors.VippsError, StackError, httpx.HTTPError)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Known errors become one line on stderr and exit code 1; Ctrl-C exits 130."""
    try:
        yield
    except KNOWN_ERRORS as exc:
        raise fail(describe(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def configured_merchants() -> Merchants:
    """The merchants of this deployment, read as the worker reads them (``MERCHANTS_FILE``, else ``VIPPS_*``);
    a configuration that cannot be read is the usual one-line error."""
    try:
        return load_merchants(load_settings())
    except ConfigError as exc:
        raise fail(str(exc)) from None


def resolve_merchant(merchants: Merchants, msn: str | None) -> Merchant:
    """The merchant ``msn`` names (default: the only one), enabled; else the one-line error saying why."""
    try:
        return merchants.resolve(msn)
    except UnknownMerchant as exc:
        raise OperationError(str(exc)) from None


def _merchants(redis_only: bool) -> Merchants | None:
    """For a command that only reads Redis, a configuration that cannot be read is a warning: the command
    goes on without telling merchants apart (one given by ``--msn`` is then the configuration's error)."""
    if not redis_only:
        return configured_merchants()
    try:
        return load_merchants(load_settings())
    except ConfigError as exc:
        err_console.print(f"warning: {exc} (merchants are not told apart)", soft_wrap=True)
        return None


@contextlib.contextmanager
def control(settings: WorkerSettings, *, redis_only: bool = False) -> Iterator[Control]:
    """The running worker, through the Redis it uses (``REDIS_URL``, default localhost:6379/0), knowing its
    merchants (so commands go to each merchant's own queues); see `_merchants` for ``redis_only``.

    Support commands never embed a Redis: a private one would hold none of the worker's state.
    """
    merchants = _merchants(redis_only)
    with find_redis(settings.redis_target(), embed=False, configured_as=settings.redis_variable) as found:
        try:
            ops = Control(found.where, settings, merchants)
        except OperationError as exc:
            raise OperationError(f"{exc} (at {found.shown}; set {settings.redis_variable})") from None
        try:
            yield ops
        except redis.RedisError as exc:
            raise OperationError(f"cannot reach Redis at {found.shown}: {exc}") from None
        finally:
            ops.close()


def known_msn(ops: Control, msn: str | None, *, required: bool = True) -> str | None:
    """The merchant a read of the worker's own records (Redis) is limited to: ``msn`` when it is configured
    (a disabled one too: its records stay readable), else the one-line error listing the merchants. Without
    ``msn``: None (no limit) with one merchant, or with several when not ``required``."""
    if msn is None:
        if required and several_merchants(ops):
            ops.merchant(None)  # raises: the MSN is required, naming the merchants
        return None
    if ops.merchants.get(msn) is None:
        ops.merchant(msn)  # raises: not a merchant of this deployment
    return msn


def several_merchants(ops: Control) -> bool:
    """More than one merchant is configured (each then has its own queues)."""
    return bool(ops.layout.merchant_queues)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        raise fail("not confirmed; nothing was sent", 1)


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None) -> int | None:
    """``2h``, ``1d12h`` (that long ago) or an ISO-8601 date-time -> epoch milliseconds."""
    if not text:
        return None
    parts = _DURATION.findall(text.strip().lower())
    if parts and "".join(n + u for n, u in parts) == text.strip().lower():
        seconds = sum(int(n) * _UNIT[u] for n, u in parts)
        return int((dt.datetime.now(dt.UTC).timestamp() - seconds) * 1000)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not a duration or date-time: {text!r} (e.g. 2h, 1d, 2030-01-31T12:00:00Z)") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def since_option(help: str) -> Any:
    """A ``--since``-style option, parsed (see ``parse_since``) with the other options: epoch ms or None."""
    return typer.Option(parser=parse_since, metavar="WHEN", help=help)


def when(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
