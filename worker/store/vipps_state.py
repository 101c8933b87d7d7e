"""The Vipps client's shared state (token cache, rate budgets) kept in Redis, shared by every process."""

from __future__ import annotations

from typing import Any

import redis


def redis_backends(client: redis.Redis) -> dict[str, Any]:
    """Keyword arguments that give a ``VippsClient`` its token cache and rate budgets in ``client``."""
    return {"redis": client}
