"""Names of the worker's own Redis keys, all under one prefix."""

from __future__ import annotations

from dataclasses import dataclass, field


def command_ref(msn: str | None, command_id: str) -> str:
    """A command's identity in the store, per merchant: the same command_id from two merchants are two
    commands. MSNs are digits, so the first ``:`` ends the MSN."""
    return f"{msn}:{command_id}" if msn else command_id


@dataclass(frozen=True)
class Keys:
    prefix: str = "vipps-billing"

    def command(self, ref: str) -> str:
        """A command's ledger record, by its `command_ref`."""
        return f"{self.prefix}:cmd:{ref}"

    def history(self, agreement_id: str, charge_id: str | None = None) -> str:
        """A resource's timeline: its events (JSON) scored by when they were published (ms)."""
        if charge_id:
            return f"{self.prefix}:history:charge:{agreement_id}:{charge_id}"
        return f"{self.prefix}:history:agreement:{agreement_id}"

    def login_failures(self, digest: str) -> str:
        """Failed support console logins of one username or client address (by digest) in the current window."""
        return f"{self.prefix}:console:login-failures:{digest}"

    def console_session_revoked(self, sid: str) -> str:
        """A support console session that was logged out: refused until its cookie would have expired."""
        return f"{self.prefix}:console:revoked:session:{sid}"

    def console_user_revoked(self, user: str) -> str:
        """When a console user's sessions were last revoked (ms): every session issued before is refused."""
        return f"{self.prefix}:console:revoked:user:{user}"

    def external_id(self, msn: str | None, external_id: str) -> str:
        """The agreements a merchant gave this externalId (a set), for support's search."""
        return f"{self.prefix}:external:{msn or '-'}:{external_id}"

    @property
    def inflight(self) -> str:
        """command ref -> lease expiry (ms): attempts that hold a command right now."""
        return f"{self.prefix}:inflight"

    @property
    def retry(self) -> str:
        """command ref -> next attempt (ms): our own durable delay queue."""
        return f"{self.prefix}:retry"

    def charge_batch(self, msn: str) -> str:
        """command ref -> when it was parked (ms): a merchant's charge.create commands waiting for the batch
        endpoint."""
        return f"{self.prefix}:batch:charges:{msn}"

    @property
    def outbox(self) -> str:
        """event_id -> event JSON, until published."""
        return f"{self.prefix}:outbox"

    @property
    def outbox_pending(self) -> str:
        """event_id -> when it may be (re)published (ms)."""
        return f"{self.prefix}:outbox:pending"

    @property
    def outbox_born(self) -> str:
        """event_id -> when it was written (ms), for the backlog age."""
        return f"{self.prefix}:outbox:born"

    @property
    def watch(self) -> str:
        """agreement watch member -> next check (ms)."""
        return f"{self.prefix}:watch:agreements"

    @property
    def watch_charges(self) -> str:
        """charge watch member -> next check (ms)."""
        return f"{self.prefix}:watch:charges"

    def watch_for(self, member: str) -> str:
        return self.watch_charges if member.startswith("charge:") else self.watch

    @property
    def watch_state(self) -> str:
        """watch member -> JSON of what was last seen."""
        return f"{self.prefix}:watch:state"

    @property
    def watch_settled(self) -> str:
        """watch member -> when it settled (ms): what was seen is kept this long for later comparisons."""
        return f"{self.prefix}:watch:settled"

    @property
    def webhook_stats(self) -> str:
        """Webhook deliveries: last_ms (the last genuine one), last:<registration>, received, duplicate,
        rejected:<reason>."""
        return f"{self.prefix}:webhooks:stats"

    def webhook_seen(self, digest: str) -> str:
        """A delivery's body digest, kept while Vipps may deliver it again."""
        return f"{self.prefix}:webhooks:seen:{digest}"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:dlq"

    @property
    def dead_letter_index(self) -> str:
        return f"{self.prefix}:dlq:index"


@dataclass(frozen=True)
class DramatiqKeys:
    """dramatiq's own Redis key layout (its ``dispatch.lua``), written down once.

    The worker reads and writes some of these keys directly: the ledger acks a delivery in the
    same step as its outcome, events and commands are enqueued as dramatiq's enqueue stores them,
    and ``status`` reads queue depths.
    """

    namespace: str = "dramatiq"

    def queue(self, name: str) -> str:
        """The list of message ids waiting on a queue."""
        return f"{self.namespace}:{name}"

    def messages(self, name: str) -> str:
        """Message id -> message JSON, for every message of a queue not yet acked."""
        return f"{self.namespace}:{name}.msgs"

    def delayed(self, name: str) -> str:
        """The queue of delayed messages (dramatiq's ``.DQ``); its messages live in ``messages(delayed(..))``."""
        return f"{name}.DQ"

    def dead(self, name: str) -> str:
        """dramatiq's dead-letter set of a queue (``.XQ``)."""
        return f"{self.namespace}:{name}.XQ"

    def acks(self, broker_id: str, queue: str) -> str:
        """Messages a consumer (one worker process) fetched and has not acked yet."""
        return f"{self.namespace}:__acks__.{broker_id}.{queue}"

    @property
    def acks_pattern(self) -> str:
        return f"{self.namespace}:__acks__.*"

    def acks_queue(self, acks_key: str) -> tuple[str, str]:
        """(broker_id, queue) of an acks key: broker ids are uuids, queue names may contain dots."""
        rest = acks_key[len(f"{self.namespace}:__acks__."):]
        if len(rest) > 37 and rest[36] == ".":
            return rest[:36], rest[37:]
        broker_id, _, queue = rest.partition(".")
        return broker_id, queue

    @property
    def heartbeats(self) -> str:
        """Broker id -> its last heartbeat (ms); dramatiq's dispatch script beats it on every call."""
        return f"{self.namespace}:__heartbeats__"


@dataclass(frozen=True)
class Layout:
    """Where everything lives in Redis: the worker's own keys, dramatiq's, and the queue names."""

    keys: Keys = field(default_factory=Keys)
    dramatiq: DramatiqKeys = field(default_factory=DramatiqKeys)
    agreements_queue: str = "vipps.agreements"
    charges_queue: str = "vipps.charges"
    events_queue: str = "vipps.events"
    events_actor: str = "vipps_event"
    webhooks_queue: str = "vipps.webhooks"
    webhooks_actor: str = "webhook_received"

    # With several merchants, each has its own pair of command queues (``vipps.charges.<msn>``): every queue has
    # its own consumer and prefetch, so one merchant's charge run cannot hold back another's work.
    merchant_queues: tuple[str, ...] = ()
    # Every merchant served, one or many (each has its charge batch).
    merchants: tuple[str, ...] = ()

    def queue_for(self, command_type: str, msn: str | None = None) -> str:
        """Agreement commands have their own queue, so a stop never waits behind a charge run; a configured
        merchant's commands go to its own queues. Anything else (no or unknown MSN) to the shared ones."""
        base = self.agreements_queue if command_type.startswith("agreement.") else self.charges_queue
        return f"{base}.{msn}" if msn is not None and msn in self.merchant_queues else base

    @property
    def command_queues(self) -> tuple[str, ...]:
        """Every command queue the workers consume: the shared pair, then each merchant's."""
        own = tuple(f"{base}.{msn}" for msn in self.merchant_queues
                    for base in (self.agreements_queue, self.charges_queue))
        return (self.agreements_queue, self.charges_queue, *own)

    def merchant_of(self, queue: str) -> str | None:
        """The MSN whose own queue this is, if any."""
        for base in (self.agreements_queue, self.charges_queue):
            if queue.startswith(f"{base}.") and queue[len(base) + 1:] in self.merchant_queues:
                return queue[len(base) + 1:]
        return None
