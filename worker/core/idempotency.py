"""The Idempotency-Key of a command's call to Vipps: one function, used by every caller.

The key depends only on the merchant, the command id and the operation, so it is
identical on every retry, redelivery and worker restart, and Vipps carries out
the operation at most once. 35 characters of ``[a-z0-9-]``: within Vipps's
1..40 and free of ``# ? / \\``.
"""

from __future__ import annotations

import hashlib

from worker.vipps.operations import Operation


def idempotency_key(msn: str, command_id: str, operation: Operation) -> str:
    digest = hashlib.sha256(f"{msn}\x1f{command_id}\x1f{operation.id}".encode()).hexdigest()
    return f"vbw-{digest[:31]}"
