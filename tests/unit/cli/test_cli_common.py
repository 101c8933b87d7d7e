"""What every command shares: parsing of --since, money and time shown, one-line errors, the Redis of support."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
import redis
import typer

from worker.cli.common import control, describe, parse_since, when
from worker.core.control import OperationError
from worker.core.money import money
from worker.runtime.settings import WorkerSettings
from worker.vipps import errors


@pytest.mark.parametrize(("text", "seconds_ago"), [("2h", 7200), ("1d12h", 129_600), ("30m", 1800), ("1w", 604_800)])
def test_since_a_duration_is_that_long_ago(text: str, seconds_ago: int) -> None:
    expected = (time.time() - seconds_ago) * 1000
    assert abs((parse_since(text) or 0) - expected) < 2000


def test_since_a_date_time_is_utc_unless_it_says_otherwise() -> None:
    assert parse_since("2030-01-31T12:00:00Z") == int(dt.datetime(2030, 1, 31, 12, tzinfo=dt.UTC).timestamp() * 1000)
    assert parse_since("2030-01-31T12:00:00") == parse_since("2030-01-31T12:00:00+00:00")
    assert parse_since("2030-01-31T13:00:00+01:00") == parse_since("2030-01-31T12:00:00Z")


@pytest.mark.parametrize("text", ["yesterday", "2h3", "h", "-1d"])
def test_since_anything_else_is_a_bad_parameter(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not a duration or date-time"):
        parse_since(text)


def test_no_since_is_none() -> None:
    assert parse_since(None) is None and parse_since("") is None


def test_money_and_when() -> None:
    assert money(19900) == "199.00 NOK" and money(-150, "EUR") == "-1.50 EUR" and money(5) == "0.05 NOK"
    assert money(None) == "-"
    assert when(None) == "-" and when(0) == "-"
    assert when(1_900_000_000_000) == "2030-03-17 17:46:40 UTC"


def test_describe_adds_the_vipps_context_id_once() -> None:
    exc = errors.VippsError("charge is not RESERVED", operation="CaptureChargeV3",
                            problem=errors.Problem(context_id="ctx-1"))
    assert describe(exc) == "Vipps said no: charge is not RESERVED (Vipps contextId ctx-1)"
    said = errors.VippsError("charge ctx-2 is not RESERVED", operation="CaptureChargeV3",
                             problem=errors.Problem(context_id="ctx-2"))
    assert describe(said) == "Vipps said no: charge ctx-2 is not RESERVED"


def test_describe_redis_and_http_errors() -> None:
    assert describe(redis.ConnectionError("refused")) == "cannot reach Redis: refused"
    assert describe(httpx.ConnectError("down")) == "HTTP request failed: down"
    assert describe(ValueError("plain")) == "plain"


def test_support_commands_name_the_redis_they_could_not_reach_without_its_password() -> None:
    with pytest.raises(OperationError) as caught, control(WorkerSettings(redis_url="redis://:s3cret@127.0.0.1:1/0")):
        pass
    assert "(at redis://***@127.0.0.1:1/0; set REDIS_URL)" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_redis_error_inside_a_support_command_names_the_redis(redis_url: str) -> None:
    with pytest.raises(OperationError, match=f"cannot reach Redis at {redis_url}: gone"), \
            control(WorkerSettings(redis_url=redis_url)) as ops:
        assert ops.workers_alive() >= 0
        raise redis.ConnectionError("gone")
