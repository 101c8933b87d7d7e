"""The command ledger: who holds a command, what became of it, and its events.

One Redis hash per command. Claiming, finishing and scheduling a retry are each a
single Lua script, so a command's outcome and its outbox entries are written in
one atomic step and a finished command is never carried out again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from worker.keys import Keys

TERMINAL = ("succeeded", "failed", "rejected", "dead_lettered")

_CLAIM = """
local cmd, inflight, retry, heartbeats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fp, payload, now, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local owner, broker, hb_timeout, cid, ctype = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
local status = redis.call('HGET', cmd, 'status')
if not status then
  redis.call('HSET', cmd, 'fingerprint', fp, 'payload', payload, 'type', ctype, 'status', 'in_progress',
             'owner', owner, 'broker', broker, 'lease_until', now + lease, 'attempts', 1, 'first_attempt_ms', now)
  redis.call('ZADD', inflight, now + lease, cid)
  return {'claimed', 1, now}
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
return {'claimed', attempts, tonumber(redis.call('HGET', cmd, 'first_attempt_ms'))}
"""

# Outcome, events into the outbox and watchlist changes: all or nothing.
_FINISH = """
local cmd, inflight, retry, outbox, pending, born = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local watch_agreements, watch_charges, wstate = KEYS[7], KEYS[8], KEYS[9]
local spec = cjson.decode(ARGV[1])
local status = redis.call('HGET', cmd, 'status')
if status == 'succeeded' or status == 'failed' or status == 'rejected' or status == 'dead_lettered' then
  return 0
end
if spec.create and not status then
  redis.call('HSET', cmd, 'fingerprint', spec.fingerprint, 'payload', spec.payload, 'type', spec.type,
             'attempts', 0, 'first_attempt_ms', spec.now)
end
redis.call('HSET', cmd, 'status', spec.status, 'events', spec.events_json, 'finished_ms', spec.now,
           'error', spec.error or '')
redis.call('HDEL', cmd, 'lease_until', 'next_attempt_ms')
redis.call('EXPIRE', cmd, spec.retention)
redis.call('ZREM', inflight, spec.command_id)
redis.call('ZREM', retry, spec.command_id)
__OUTBOX__
__WATCH__
return 1
"""

# Watch changes: score >= 0 schedules a check; -1 forgets the resource; -2 stops polling but keeps what was seen.
_WATCH_CHANGES = """
for _, w in ipairs(spec.watch) do
  local watch = watch_agreements
  if string.sub(w[1], 1, 7) == 'charge:' then watch = watch_charges end
  if w[2] < 0 then
    redis.call('ZREM', watch, w[1])
    if w[2] == -1 then redis.call('HDEL', wstate, w[1]) else redis.call('HSET', wstate, w[1], w[3]) end
  else
    redis.call('ZADD', watch, w[2], w[1])
    redis.call('HSET', wstate, w[1], w[3])
  end
end
"""
# Events into the outbox, each pending from now (spec.events = [[event_id, message], ...]).
_OUTBOX_WRITES = """
for _, ev in ipairs(spec.events) do
  redis.call('HSET', outbox, ev[1], ev[2])
  redis.call('ZADD', pending, spec.now, ev[1])
  redis.call('ZADD', born, 'NX', spec.now, ev[1])
end
"""
_FINISH = _FINISH.replace("__OUTBOX__", _OUTBOX_WRITES).replace("__WATCH__", _WATCH_CHANGES)

# Events and watch changes of an observation (a poll, or a rejected delivery), all or nothing.
_OBSERVE = """
local outbox, pending, born, watch_agreements, watch_charges, wstate = KEYS[1], KEYS[2], KEYS[3], KEYS[4],
  KEYS[5], KEYS[6]
local spec = cjson.decode(ARGV[1])
""" + _OUTBOX_WRITES + _WATCH_CHANGES + "return 1"

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


@dataclass(frozen=True)
class FollowUp:
    """A script to run right after another in the same round trip (see ``Ledger.finish``)."""

    sha: str
    keys: list[str]
    args: list[str | int]
    run: Callable[[], Any]            # the same, on its own (used when Redis had lost the script)
    done: Callable[[Any], None]       # receives the result, or the exception it raised


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
    final_status: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class WatchChange:
    member: str
    next_check_ms: int          # negative removes the member
    state: dict[str, Any] | None = None


def fingerprint(command: dict[str, Any]) -> str:
    """What makes two deliveries the same intent: everything but when it was issued."""
    body = {k: v for k, v in command.items() if k != "issued_at"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def now_ms() -> int:
    return int(time.time() * 1000)


class Ledger:
    def __init__(self, client: redis.Redis, keys: Keys, *, heartbeats_key: str, heartbeat_timeout_ms: int,
                 retention_seconds: int, encode: Callable[[dict[str, Any]], str]) -> None:
        self.redis = client
        # How an event is stored in the outbox: as the message the relay will put on the events queue.
        self.encode = encode
        self.keys = keys
        self.heartbeats_key = heartbeats_key
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.retention_seconds = retention_seconds
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._observe = client.register_script(_OBSERVE)

    def claim(self, command: dict[str, Any], *, owner: str, broker_id: str, lease_ms: int) -> Claim:
        cid = command["command_id"]
        payload = _compact(command)
        now = now_ms()
        result = self._claim(
            keys=[self.keys.command(cid), self.keys.inflight, self.keys.retry, self.heartbeats_key],
            args=[fingerprint(command), payload, now, lease_ms, owner, broker_id, self.heartbeat_timeout_ms,
                  cid, command["type"]])
        status = ClaimStatus(_text(result[0]))
        if status is ClaimStatus.CLAIMED:
            return Claim(status, attempts=int(result[1]), first_attempt_ms=int(result[2]))
        if status is ClaimStatus.DONE:
            return Claim(status, final_status=_text(result[1]), events=json.loads(_text(result[2])))
        if status in (ClaimStatus.BUSY, ClaimStatus.WAIT):
            return Claim(status, wait_ms=int(result[1]))
        return Claim(status)

    def finish(self, command: dict[str, Any], *, status: str, events: list[dict[str, Any]],
               watch: list[WatchChange] | None = None, error: dict[str, Any] | None = None,
               create: bool = False, then: FollowUp | None = None) -> bool:
        """Record a terminal outcome with its events (outbox) and watch changes atomically.

        ``then`` (the relay of these events) is sent in the same round trip as a separate script: it
        runs after the outcome is recorded and, if it fails, leaves the events in the outbox.
        Returns False when the command had already finished (the first outcome stands).
        """
        assert status in TERMINAL
        cid = command["command_id"]
        spec = {
            "command_id": cid,
            "status": status,
            "now": now_ms(),
            "retention": self.retention_seconds,
            "events": [[e["event_id"], self.encode(e)] for e in events],
            "events_json": _compact(events),
            "watch": [[w.member, w.next_check_ms, _compact(w.state or {})] for w in watch or []],
            "error": json.dumps(error) if error else "",
            "create": create,
            "type": str(command.get("type", "")),
        }
        if create:  # only a command that was never claimed needs its record made here
            spec |= {"fingerprint": fingerprint(command), "payload": _compact(command)}
        keys = [self.keys.command(cid), self.keys.inflight, self.keys.retry, self.keys.outbox,
                self.keys.outbox_pending, self.keys.outbox_born, self.keys.watch, self.keys.watch_charges,
                self.keys.watch_state]
        args = [_compact(spec)]
        if then is None:
            return bool(self._finish(keys=keys, args=args))
        return self._finish_then(keys, args, then)

    def _finish_then(self, keys: list[str], args: list[str], then: FollowUp) -> bool:
        # EVALSHA directly: a pipeline of Script objects would ask SCRIPT EXISTS on every call.
        pipe = self.redis.pipeline(transaction=False)
        pipe.evalsha(self._finish.sha, len(keys), *keys, *args)
        pipe.evalsha(then.sha, len(then.keys), *then.keys, *then.args)
        finished, followed = pipe.execute(raise_on_error=False)
        if isinstance(finished, redis.exceptions.NoScriptError):  # Redis lost its script cache: nothing ran
            finished = self._finish(keys=keys, args=args)
            followed = then.run()
        elif isinstance(followed, redis.exceptions.NoScriptError):
            followed = then.run()
        if isinstance(finished, Exception):
            raise finished
        then.done(followed)
        return bool(finished)

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
        """Write events to the outbox and apply watch changes atomically."""
        if not events and not watch:
            return
        spec = {"now": now_ms(), "events": [[e["event_id"], self.encode(e)] for e in events],
                "watch": [[w.member, w.next_check_ms, _compact(w.state or {})] for w in watch]}
        keys = [self.keys.outbox, self.keys.outbox_pending, self.keys.outbox_born, self.keys.watch,
                self.keys.watch_charges, self.keys.watch_state]
        self._observe(keys=keys, args=[_compact(spec)])

    def replay_events(self, events: list[dict[str, Any]]) -> None:
        """Put recorded events back into the outbox (a redelivered, finished command)."""
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
