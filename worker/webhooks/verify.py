"""Whether a delivery is genuine: content hash, date window, signature by a known registration, in that order.

All of it runs on the raw body and the headers, before the body is parsed. A delivery that fails is
rejected with one reason (a metric label): ``content_hash`` (missing, repeated or not the body's),
``date`` (missing, unreadable or outside the window), ``signature`` (no ``Authorization`` of the
documented form), ``unknown_registration`` (a well-formed signature that no known secret gives: a forgery,
a secret this receiver does not hold, or a public URL other than the registered one).
"""

from __future__ import annotations

import email.utils
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from worker.webhooks import signature

REASONS = ("content_hash", "date", "signature", "unknown_registration")


@dataclass(frozen=True)
class Verdict:
    registration: str | None = None    # the registration whose secret signed it, when genuine
    reason: str | None = None          # why not, otherwise
    skew_seconds: float | None = None  # how far x-ms-date was from our clock, when it was readable

    @property
    def genuine(self) -> bool:
        return self.registration is not None


def parse_date(value: str) -> float | None:
    """An RFC 7231 date (``Thu, 01 Oct 2026 07:12:46 GMT``) as a POSIX time; None unless it names its zone."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


class Verifier:
    def __init__(self, public_url: str, secrets: Callable[[], Mapping[str, str]], *, window_seconds: float,
                 clock: Callable[[], float]) -> None:
        self.path_and_query, self.host = signature.signed_target(public_url)
        self.secrets = secrets
        self.window_seconds = window_seconds
        self.clock = clock

    def check(self, headers: Callable[[str], Sequence[str]], body: bytes) -> Verdict:
        """``headers(name)``: every value of a header (starlette's ``Headers.getlist``)."""
        hashes = headers("x-ms-content-sha256")
        if len(hashes) != 1 or not hmac.compare_digest(hashes[0].encode("latin-1"),
                                                       signature.content_hash(body).encode("ascii")):
            return Verdict(reason="content_hash")
        dates = headers("x-ms-date")
        when = parse_date(dates[0]) if len(dates) == 1 else None
        if when is None:
            return Verdict(reason="date")
        skew = when - self.clock()
        if abs(skew) > self.window_seconds:
            return Verdict(reason="date", skew_seconds=skew)
        auth = headers("authorization")
        given = signature.parse_authorization(auth[0]) if len(auth) == 1 else None
        if given is None:
            return Verdict(reason="signature", skew_seconds=skew)
        message = signature.string_to_sign(self.path_and_query, self.host, dates[0], hashes[0])
        registration = signature.matching_registration(self.secrets(), message, given)
        if registration is None:
            return Verdict(reason="unknown_registration", skew_seconds=skew)
        return Verdict(registration=registration, skew_seconds=skew)

