"""Simulated time: real time plus an offset, so time still flows while tests move it forward."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime


class SimClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def timestamp(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def set(self, when: datetime) -> None:
        self.offset = when.timestamp() - time.time()

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def reset(self) -> None:
        self.offset = 0.0


def iso(ts: float) -> str:
    """RFC 3339 UTC with second precision, the form Vipps uses (``2022-09-05T14:25:55Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 date-time; naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def midnight(day: date) -> float:
    """The epoch timestamp of 00:00 UTC on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def utc_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()
