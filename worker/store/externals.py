"""Which agreements carry a merchant's externalId, for support's search: Vipps has no lookup by externalId.

Written when the worker creates, changes or sees an agreement with one (a poll, a fetch command, a webhook's
fetch), and when support looks an agreement up; kept ``LEDGER_RETENTION_DAYS`` after the last write. It is an
index, not the truth: an agreement made elsewhere and never seen here is not in it (``vipps-billing agreement
list --external-id`` asks Vipps), and an agreement whose externalId changed is listed under both until the old
entry expires.
"""

from __future__ import annotations

import redis

from worker.store.keys import Keys
from worker.store.replies import texts


class ExternalIds:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_seconds: int) -> None:
        self.redis = client
        self.keys = keys
        self.retention_seconds = retention_seconds

    def remember(self, msn: str | None, external_id: str | None, agreement_id: str | None) -> None:
        if not external_id or not agreement_id:
            return
        key = self.keys.external_id(msn, external_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(key, agreement_id)
        pipe.expire(key, self.retention_seconds)
        pipe.execute()

    def find(self, msn: str | None, external_id: str) -> list[str]:
        """The agreements known to carry ``external_id`` for the merchant, sorted."""
        return sorted(texts(self.redis.smembers(self.keys.external_id(msn, external_id))))
