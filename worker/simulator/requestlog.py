"""The request record: every Recurring and Management API call with the MSN header it carried, the MSN it
was for and the key set of its token, so a test can check every call, not only those that changed state."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from worker.simulator.clock import iso

# The oldest calls are forgotten past this many (a long benchmark would otherwise grow without bound).
LIMIT = 100_000


@dataclass(frozen=True)
class RequestEntry:
    seq: int
    at: str
    operation: str
    status: int
    # As sent; None when the call had no Merchant-Serial-Number header.
    msn_header: str | None
    # The header, else the merchant's own MSN for its own keys; None when neither is known.
    msn: str | None
    # The key set the token was issued to (``merchant:123456``, ``partner:platform``); None for no known token.
    credentials: str | None
    idempotency_key: str | None
    # The answer was the recorded one of an earlier request with the same Idempotency-Key and body.
    replay: bool = False


class RequestLog:
    def __init__(self) -> None:
        self.items: deque[RequestEntry] = deque(maxlen=LIMIT)
        self.seq = 0

    def record(
        self,
        at: float,
        operation: str,
        status: int,
        msn_header: str | None,
        msn: str | None,
        credentials: str | None,
        idempotency_key: str | None,
        replay: bool = False,
    ) -> None:
        self.seq += 1
        entry = RequestEntry(
            self.seq, iso(at), operation, status, msn_header, msn, credentials, idempotency_key, replay
        )
        self.items.append(entry)

    def query(
        self,
        since: int = 0,
        msn: str | None = None,
        credentials: str | None = None,
        operation: str | None = None,
    ) -> list[dict[str, Any]]:
        return [
            asdict(e)
            for e in self.items
            if e.seq > since
            and (msn is None or e.msn == msn)
            and (credentials is None or e.credentials == credentials)
            and (operation is None or e.operation == operation)
        ]
