"""The Idempotency-Key of a command's call to Vipps: one function, used by every caller.

The key depends only on the merchant, the command id and the operation, so it is
identical on every retry, redelivery and worker restart, and Vipps carries out
the operation at most once. 35 characters of ``[a-z0-9-]``: within Vipps's
1..40 and free of ``# ? / \\``.
"""

from __future__ import annotations

import base64
import hashlib

from worker.vipps.operations import Operation


def idempotency_key(msn: str, command_id: str, operation: Operation) -> str:
    digest = hashlib.sha256(f"{msn}\x1f{command_id}\x1f{operation.id}".encode()).hexdigest()
    return f"vbw-{digest[:31]}"


def charge_order_id(msn: str, command_id: str) -> str:
    """The ``orderId`` of the charge a ``charge.create`` asks for, when the producer gives none.

    Vipps makes it the charge id and refuses a second charge with it for the merchant, so however often the
    command is sent, through the single or the batch endpoint, it can create one charge. ``vbc-`` and 16
    base32 characters (80 bits: two commands of a merchant meet one orderId with odds of about 1e-8 in 100
    million charges); 20 characters of ``[a-z0-9-]``, within the 8..50 both of Vipps's orderId rules allow.
    """
    digest = hashlib.sha256(f"{msn}\x1f{command_id}\x1fcharge".encode()).digest()
    return "vbc-" + base64.b32encode(digest).decode().lower()[:16]


def batch_key(msn: str, body: bytes) -> str:
    """The Idempotency-Key of a batch request, from its exact body: the same batch sent again after a lost
    answer gets Vipps's first answer back, and another batch can never meet a key used for a different body
    (which Vipps would refuse with 409 for the whole batch)."""
    digest = hashlib.sha256(msn.encode() + b"\x1fbatch\x1f" + body).hexdigest()
    return f"vbb-{digest[:31]}"
