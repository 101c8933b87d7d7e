"""The command ledger: who holds a command, what became of it, and its events.

One Redis hash per command. Claiming, finishing and scheduling a retry are each a
single Lua script, so a command's outcome and its events are written in one atomic
step and a finished command is never carried out again. The events queue lives in
the same Redis, so that step puts the events straight onto it; an event that cannot
go there (a foreign value under the queue's key, say) is written to the outbox
instead, in the same step, and the relay publishes it later.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis
from pydantic_core import to_json

from worker.store.eventqueue import EventQueue
from worker.store.keys import Keys
from worker.vipps.budgets import TAKE_SLOT, BudgetSlot

TERMINAL = ("succeeded", "failed", "rejected", "dead_lettered")

# A claim may also take the rate budget slot of the call it is about to make (KEYS[5], ARGV[10..12]):
# one round trip for both. The slot is taken only when the claim succeeds.
_CLAIM = TAKE_SLOT + """
local cmd, inflight, retry, heartbeats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fp, payload, now, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local owner, broker, hb_timeout, cid, ctype = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local function claimed(attempts, first)
  local wait = 0
  if KEYS[5] then wait = take_slot(KEYS[5], tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]) end
  return {'claimed', attempts, first, wait}
end
local status = redis.call('HGET', cmd, 'status')
if not status then
  redis.call('HSET', cmd, 'fingerprint', fp, 'payload', payload, 'type', ctype, 'status', 'in_progress',
             'owner', owner, 'broker', broker, 'lease_until', now + lease, 'attempts', 1, 'first_attempt_ms', now)
  redis.call('ZADD', inflight, now + lease, cid)
  return claimed(1, now)
end
if redis.call('HGET', cmd, 'fingerprint') ~= fp then
  return {'mismatch', 0, 0}
end
if status == 'succeeded' or status == 'failed' or status == 'rejected' or status == 'dead_lettered' then
  return {'done', status, redis.call('HGET', cmd, 'events') or '[]'}
end
if status == 'in_progress' then
  local lease_until = tonumber(redis.call('HGET', cmd, 'lease_until'))
  local holder = redis.call('HGET', cmd, 'broker')
  local alive = lease_until > now
  if alive and holder ~= broker then
    local beat = redis.call('ZSCORE', heartbeats, holder)
    if beat and tonumber(beat) < now - hb_timeout then alive = false end
  end
  if alive and redis.call('HGET', cmd, 'owner') ~= owner then
    return {'busy', lease_until - now, 0}
  end
elseif status == 'retry_wait' then
  local next_ms = tonumber(redis.call('HGET', cmd, 'next_attempt_ms'))
  if next_ms > now then return {'wait', next_ms - now, 0} end
end
local attempts = redis.call('HINCRBY', cmd, 'attempts', 1)
redis.call('HSET', cmd, 'status', 'in_progress', 'owner', owner, 'broker', broker, 'lease_until', now + lease)
redis.call('ZADD', inflight, now + lease, cid)
redis.call('ZREM', retry, cid)
return claimed(attempts, tonumber(redis.call('HGET', cmd, 'first_attempt_ms')))
"""

# Outcome, its events and watchlist changes: all or nothing. Values come as plain ARGV (no JSON to decode):
# command_id, status, now, retention, events_json, error, type, create, fingerprint, payload, the delivery's
# redis message id (or ''), then the watch changes and the events (see _WATCH_CHANGES and _PUBLISH).
# With KEYS[13..14] (the delivery's dramatiq acks set and message hash) the delivery is acked as dramatiq's
# own ack does it, once the outcome is recorded: no window in which one is done without the other.
_FINISH = """
local cmd, inflight, retry, outbox, pending, born = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local watch_agreements, watch_charges, wstate, queue, messages = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local settled = KEYS[12]
local cid, now = ARGV[1], ARGV[3]
local function ack()
  if KEYS[14] and redis.pcall('SREM', KEYS[13], ARGV[11]) == 1 then redis.pcall('HDEL', KEYS[14], ARGV[11]) end
end
local status = redis.call('HGET', cmd, 'status')
if status == 'succeeded' or status == 'failed' or status == 'rejected' or status == 'dead_lettered' then
  ack()
  return {0}
end
if ARGV[8] == '1' and not status then
  redis.call('HSET', cmd, 'fingerprint', ARGV[9], 'payload', ARGV[10], 'type', ARGV[7], 'attempts', 0,
             'first_attempt_ms', now)
end
redis.call('HSET', cmd, 'status', ARGV[2], 'events', ARGV[5], 'finished_ms', now, 'error', ARGV[6])
redis.call('HDEL', cmd, 'lease_until', 'next_attempt_ms')
redis.call('EXPIRE', cmd, ARGV[4])
redis.call('ZREM', inflight, cid)
redis.call('ZREM', retry, cid)
local at = 12
__WATCH__
local published = {1}
__PUBLISH__
ack()
return published
"""

# Watch changes from ARGV[at]: their count, then (member, next check ms, state JSON) each. A next check >= 0
# schedules a check; -1 forgets the resource; -2 stops polling but keeps what was seen, in the settled index
# (pruned after the retention period, see prune_settled).
_WATCH_CHANGES = """
local changes = tonumber(ARGV[at])
for i = at + 1, at + 3 * changes, 3 do
  local member, score = ARGV[i], tonumber(ARGV[i + 1])
  local watch = watch_agreements
  if string.sub(member, 1, 7) == 'charge:' then watch = watch_charges end
  if score < 0 then
    redis.call('ZREM', watch, member)
    if score == -1 then
      redis.call('HDEL', wstate, member)
      redis.call('ZREM', settled, member)
    else
      redis.call('HSET', wstate, member, ARGV[i + 2])
      redis.call('ZADD', settled, now, member)
    end
  else
    redis.call('ZADD', watch, score, member)
    redis.call('HSET', wstate, member, ARGV[i + 2])
    redis.call('ZREM', settled, member)
  end
end
at = at + 1 + 3 * changes
"""
# Events from ARGV[at] to the end, (event_id, redis_message_id, message, type) each: onto the events queue as
# dramatiq's enqueue puts them (HSET message, RPUSH id); one whose publish fails goes into the outbox, pending
# from now. Last in its script, so a failure before it publishes nothing. Appends the published types.
_PUBLISH = """
for i = at, #ARGV, 4 do
  local ok = redis.pcall('HSET', messages, ARGV[i + 1], ARGV[i + 2])
  if type(ok) == 'number' then
    ok = redis.pcall('RPUSH', queue, ARGV[i + 1])
    if type(ok) ~= 'number' then redis.pcall('HDEL', messages, ARGV[i + 1]) end
  end
  if type(ok) == 'number' then
    published[#published + 1] = ARGV[i + 3]
  else
    redis.call('HSET', outbox, ARGV[i], ARGV[i + 2])
    redis.call('ZADD', pending, now, ARGV[i])
    redis.call('ZADD', born, 'NX', now, ARGV[i])
  end
end
"""
_FINISH = _FINISH.replace("__WATCH__", _WATCH_CHANGES).replace("__PUBLISH__", _PUBLISH)

# Events and watch changes of an observation (a poll, or a rejected delivery), all or nothing.
# ARGV: now, then the watch changes and the events.
_OBSERVE = """
local outbox, pending, born, watch_agreements, watch_charges, wstate = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local queue, messages, settled = KEYS[7], KEYS[8], KEYS[9]
local now, at = ARGV[1], 2
local published = {}
""" + _WATCH_CHANGES + _PUBLISH + "return published"

_RETRY_LATER = """
local cmd, inflight, retry = KEYS[1], KEYS[2], KEYS[3]
local cid, next_ms, err = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('HGET', cmd, 'status') ~= 'in_progress' then return 0 end
-- A wait for our own rate budget sent nothing to Vipps: it is not an attempt.
if ARGV[4] == '1' then redis.call('HINCRBY', cmd, 'attempts', -1) end
redis.call('HSET', cmd, 'status', 'retry_wait', 'next_attempt_ms', next_ms, 'error', err)
redis.call('HDEL', cmd, 'lease_until')
redis.call('ZREM', inflight, cid)
redis.call('ZADD', retry, next_ms, cid)
return 1
"""


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"      # ours: go ahead and call Vipps
    DONE = "done"            # finished before: re-publish its events, nothing else
    BUSY = "busy"            # another live attempt holds it
    WAIT = "wait"            # a retry is scheduled for later
    MISMATCH = "mismatch"    # same command_id, different payload


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    attempts: int = 0
    first_attempt_ms: int = 0
    wait_ms: int = 0
    budget_wait_ms: int = 0  # > 0: claimed, but the call's rate budget slot frees only in this many ms
    final_status: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DeliveryAck:
    """Where dramatiq keeps a fetched message until it is acked, so ``finish`` can ack it with the outcome."""

    acks_key: str
    messages_key: str
    redis_message_id: str
    done: bool = False  # set once finish has acked it: dramatiq's own ack is then skipped


@dataclass(frozen=True)
class WatchChange:
    member: str
    next_check_ms: int          # negative removes the member
    state: dict[str, Any] | None = None


def fingerprint(command: dict[str, Any]) -> str:
    """What makes two deliveries the same intent: everything but when it was issued."""
    body = {k: v for k, v in command.items() if k != "issued_at"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _compact(value: Any) -> bytes:
    """Compact JSON (UTF-8) of what the ledger stores; pydantic-core's encoder, several times faster than json's."""
    return to_json(value)


def now_ms() -> int:
    return int(time.time() * 1000)


class Ledger:
    def __init__(self, client: redis.Redis, keys: Keys, *, heartbeats_key: str, heartbeat_timeout_ms: int,
                 retention_seconds: int, events: EventQueue,
                 on_published: Callable[[list[str]], None] | None = None) -> None:
        self.redis = client
        self.events = events
        self.on_published = on_published  # receives the types of the events published
        self.keys = keys
        self.heartbeats_key = heartbeats_key
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.retention_seconds = retention_seconds
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._observe = client.register_script(_OBSERVE)
        self._prune_settled = client.register_script(_PRUNE_SETTLED)

    def claim(self, command: dict[str, Any], *, owner: str, broker_id: str, lease_ms: int,
              budget: BudgetSlot | None = None) -> Claim:
        """Claim a command; with ``budget``, also take that rate budget slot if the claim succeeds."""
        cid = command["command_id"]
        payload = _compact(command)
        now = now_ms()
        keys = [self.keys.command(cid), self.keys.inflight, self.keys.retry, self.heartbeats_key]
        args: list[str | bytes | int] = [fingerprint(command), payload, now, lease_ms, owner, broker_id,
                                 self.heartbeat_timeout_ms, cid, command["type"]]
        if budget is not None:
            keys.append(budget.key)
            args += [budget.limit, budget.window_ms, os.urandom(8).hex()]
        result = self._claim(keys=keys, args=args)
        status = ClaimStatus(_text(result[0]))
        if status is ClaimStatus.CLAIMED:
            return Claim(status, attempts=int(result[1]), first_attempt_ms=int(result[2]),
                         budget_wait_ms=int(result[3]))
        if status is ClaimStatus.DONE:
            return Claim(status, final_status=_text(result[1]), events=json.loads(_text(result[2])))
        if status in (ClaimStatus.BUSY, ClaimStatus.WAIT):
            return Claim(status, wait_ms=int(result[1]))
        return Claim(status)

    def finish(self, command: dict[str, Any], *, status: str, events: list[dict[str, Any]],
               watch: list[WatchChange] | None = None, error: dict[str, Any] | None = None,
               create: bool = False, ack: DeliveryAck | None = None) -> bool:
        """Record a terminal outcome, publish its events and apply its watch changes, atomically.

        With ``ack``, the delivery is acked in the same step. Returns False when the command had already
        finished (the first outcome stands).
        """
        assert status in TERMINAL
        cid = command["command_id"]
        create_args = [fingerprint(command), _compact(command)] if create else ["", ""]
        args = [cid, status, now_ms(), self.retention_seconds, _compact(events), json.dumps(error) if error else "",
                str(command.get("type", "")), "1" if create else "", *create_args,
                ack.redis_message_id if ack else "", *self._changes(watch or []), *self._messages(events)]
        keys = [self.keys.command(cid), self.keys.inflight, self.keys.retry, self.keys.outbox,
                self.keys.outbox_pending, self.keys.outbox_born, self.keys.watch, self.keys.watch_charges,
                self.keys.watch_state, *self.events.keys, self.keys.watch_settled]
        if ack:
            keys += [ack.acks_key, ack.messages_key]
        result = self._finish(keys=keys, args=args)
        if ack:
            ack.done = True
        self._published(result[1:])
        return bool(result[0])

    def retry_later(self, command_id: str, *, at_ms: int, error: dict[str, Any], not_sent: bool = False) -> bool:
        keys = [self.keys.command(command_id), self.keys.inflight, self.keys.retry]
        return bool(self._retry_later(keys=keys, args=[command_id, at_ms, json.dumps(error), int(not_sent)]))

    def release(self, command_id: str) -> None:
        """Give up a claim at once (after an unexpected error) so the next delivery may take it."""
        now = now_ms()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.command(command_id), "lease_until", now)
        pipe.zadd(self.keys.inflight, {command_id: now}, xx=True)
        pipe.execute()

    def observe(self, events: list[dict[str, Any]], watch: list[WatchChange]) -> None:
        """Publish events and apply watch changes atomically."""
        if not events and not watch:
            return
        keys = [self.keys.outbox, self.keys.outbox_pending, self.keys.outbox_born, self.keys.watch,
                self.keys.watch_charges, self.keys.watch_state, *self.events.keys, self.keys.watch_settled]
        self._published(self._observe(keys=keys, args=[now_ms(), *self._changes(watch), *self._messages(events)]))

    def prune_settled(self, *, older_than_ms: int, limit: int = 1000) -> int:
        """Forget settled resources (a charge that reached its final status) after the retention period.

        A later observation of one starts afresh; its transition events keep their ids, so a repeat is
        one more delivery of an event consumers have seen, not a new one.
        """
        return int(self._prune_settled(keys=[self.keys.watch_settled, self.keys.watch_state],
                                       args=[older_than_ms, limit]))

    @staticmethod
    def _changes(watch: list[WatchChange]) -> list[str | bytes | int]:
        args: list[str | bytes | int] = [len(watch)]
        for w in watch:
            args += [w.member, w.next_check_ms, _compact(w.state or {})]
        return args

    def _messages(self, events: list[dict[str, Any]]) -> list[str | bytes]:
        return [part for e in events for part in (e["event_id"], *self.events.message(e), str(e.get("type")))]

    def _published(self, types: list[Any]) -> None:
        if self.on_published and types:
            self.on_published([_text(t) for t in types])

    def replay_events(self, events: list[dict[str, Any]]) -> None:
        """Publish recorded events again (a redelivered, finished command)."""
        self.observe(events, [])

    def get(self, command_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self.keys.command(command_id))
        if not raw:
            return None
        record = {_text(k): _text(v) for k, v in raw.items()}
        for name in ("events", "error", "payload"):
            if record.get(name):
                record[name] = json.loads(record[name])
        return record

    def payload(self, command_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self.keys.command(command_id), "payload")
        return json.loads(raw) if raw else None


# Forget what was seen of resources settled before ARGV[1] (ms), at most ARGV[2] of them.
_PRUNE_SETTLED = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(old) do
  redis.call('HDEL', KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
end
return #old
"""

_TAKE_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(items) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], m) end
return items
"""


class Schedules:
    """Take due members of a schedule (a ZSET scored in ms) atomically, pushing them on so others skip them."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = client.register_script(_TAKE_DUE)

    def take_due(self, zset: str, *, now: int, limit: int, push_ms: int) -> list[str]:
        return [_text(m) for m in self._take(keys=[zset], args=[now, limit, now + push_ms])]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
