"""The shared token cache and the shared rate budgets, on a real Redis (and in memory)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import respx
from vipps_support import SECRETS

from worker.store.vipps_state import RedisBudgetBackend, RedisKeyValue, redis_backends
from worker.vipps import VippsClient, VippsSettings, errors
from worker.vipps import operations as ops
from worker.vipps.budgets import DEFAULT_RULES, BudgetRule, Budgets, BudgetSlot, MemoryBudgetBackend, extra_rules
from worker.vipps.observer import NullObserver
from worker.vipps.store import KeyValue, MemoryKeyValue
from worker.vipps.token import SHARED_CHECK_SECONDS, TokenCache, TokenGrant

KEY = "unit:vipps:token:abc"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    def __init__(self, lifetime: float = 3600.0, delay: float = 0.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> TokenGrant:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        return TokenGrant(f"token-{n}", self.lifetime)


class RecordingObserver(NullObserver):
    def __init__(self) -> None:
        self.refreshes: list[bool] = []

    def token_refreshed(self, ok: bool) -> None:
        self.refreshes.append(ok)


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest) -> KeyValue:
    if request.param == "redis":
        return RedisKeyValue(request.getfixturevalue("redis_client"))
    return MemoryKeyValue()


def make_cache(store: KeyValue, fetch: Callable[[], TokenGrant], **kwargs: object) -> TokenCache:
    options: dict[str, object] = {"margin": 300.0, "observer": NullObserver(), "lock_ttl": 5.0, **kwargs}
    return TokenCache(store, KEY, fetch, **options)  # type: ignore[arg-type]


def test_many_threads_in_many_processes_fetch_one_token(store: KeyValue) -> None:
    fetch = CountingFetch(delay=0.2)  # a slow token endpoint opens the race window
    caches = [make_cache(store, fetch) for _ in range(4)]  # four "processes" sharing the store
    with ThreadPoolExecutor(max_workers=32) as pool:
        tokens = list(pool.map(lambda i: caches[i % 4].get().value, range(64)))
    assert fetch.calls == 1
    assert set(tokens) == {"token-1"}


def test_refreshes_ahead_of_expiry_and_others_keep_the_valid_token(store: KeyValue) -> None:
    clock = FakeClock()
    fetch = CountingFetch(lifetime=86400)  # production lifetime
    a = make_cache(store, fetch, clock=clock)
    b = make_cache(store, fetch, clock=clock)
    assert a.get().value == "token-1"
    clock.now += 86400 - 301
    assert b.get().value == "token-1"  # not yet in the refresh window
    clock.now += 2  # now inside the 300 s margin
    assert store.set_if_absent(f"{KEY}:refresh-lock", "someone-else", 5000)
    assert b.get().value == "token-1"  # refresher busy elsewhere: the still-valid token is used
    assert fetch.calls == 1
    store.delete_if_equal(f"{KEY}:refresh-lock", "someone-else")
    assert b.get().value == "token-2"
    assert a.get().value == "token-2"  # a sees the refreshed token through the store
    assert fetch.calls == 2


@pytest.mark.parametrize(("lifetime", "margin_used"), [(3600, 300), (86400, 300), (60, 15)])
def test_margin_is_clamped_for_short_lifetimes(store: KeyValue, lifetime: float, margin_used: float) -> None:
    token = make_cache(store, CountingFetch(lifetime=lifetime)).get()
    assert token.expires_at - token.refresh_at == pytest.approx(margin_used)


def test_waits_for_another_callers_refresh_when_no_token_is_valid(store: KeyValue) -> None:
    fetch = CountingFetch()
    other = make_cache(store, CountingFetch())
    lock_key = f"{KEY}:refresh-lock"
    assert store.set_if_absent(lock_key, "other", 5000)  # another pod is refreshing

    def other_pod_finishes() -> None:
        time.sleep(0.2)
        store.delete_if_equal(lock_key, "other")
        other.get()  # stores its fresh token

    thread = threading.Thread(target=other_pod_finishes)
    thread.start()
    started = time.monotonic()
    token = make_cache(store, fetch).get()
    thread.join()
    assert time.monotonic() - started >= 0.15  # it waited rather than fetching
    assert token.value == "token-1"
    assert fetch.calls == 0


def test_invalidate_only_removes_the_token_that_failed(store: KeyValue) -> None:
    fetch = CountingFetch()
    a = make_cache(store, fetch)
    b = make_cache(store, fetch)
    stale = a.get()
    b.invalidate(stale)
    fresh = b.get()
    assert fresh.value == "token-2"
    a.invalidate(stale)  # late invalidation of the old token must not drop the new one
    assert a.get().value == "token-2"
    assert fetch.calls == 2


def test_a_process_uses_the_token_another_process_refreshed(store: KeyValue) -> None:
    clock = FakeClock()
    fetch = CountingFetch()
    a = make_cache(store, fetch, clock=clock)
    b = make_cache(store, fetch, clock=clock)
    first = a.get()
    b.invalidate(first)  # b met a 401 with it ...
    assert b.get().value == "token-2"  # ... and refreshed
    clock.now += SHARED_CHECK_SECONDS
    assert a.get().value == "token-2"  # a reads the shared token rather than trusting its older copy
    assert fetch.calls == 2


def test_a_recently_checked_local_copy_is_used_without_reading_the_store() -> None:
    clock = FakeClock()
    reads = {"n": 0}

    class CountingStore(MemoryKeyValue):
        def get(self, key: str) -> str | None:
            reads["n"] += 1
            return super().get(key)

    cache = make_cache(CountingStore(), CountingFetch(), clock=clock)
    cache.get()
    before = reads["n"]
    for _ in range(100):
        cache.get()
    assert reads["n"] == before  # no Redis round trip per Vipps call
    clock.now += SHARED_CHECK_SECONDS
    cache.get()
    assert reads["n"] == before + 1


def test_failed_refresh_keeps_the_current_token_until_expiry(store: KeyValue) -> None:
    clock = FakeClock()
    observer = RecordingObserver()
    fail = {"on": False}

    def fetch() -> TokenGrant:
        if fail["on"]:
            raise errors.TransientError("down", operation="AccessToken")
        return TokenGrant("token-ok", 3600)

    cache = make_cache(store, fetch, clock=clock, observer=observer)
    cache.get()
    fail["on"] = True
    clock.now += 3400  # inside the margin, still valid
    assert cache.get().value == "token-ok"
    clock.now += 300  # expired
    with pytest.raises(errors.TransientError):
        cache.get()
    assert observer.refreshes == [True, False, False]


def test_client_token_key_names_no_secret(
    settings: VippsSettings, redis_client: redis.Redis, vipps: respx.MockRouter
) -> None:
    vipps.get("/recurring/v3/agreements/agr_1").respond(200, json={"id": "agr_1"})
    with VippsClient(settings, **redis_backends(redis_client), key_prefix="keys-test") as c:
        c.fetch_agreement("agr_1")
    keys = [k.decode() for k in redis_client.keys("keys-test:*")]
    assert any(":vipps:token:" in k for k in keys)
    assert not [k for k in keys for s in SECRETS.values() if s in k]


def test_two_clients_share_one_token_through_redis(
    settings: VippsSettings, redis_client: redis.Redis, vipps: respx.MockRouter
) -> None:
    vipps.get("/recurring/v3/agreements/agr_1").respond(200, json={"id": "agr_1"})
    with (
        VippsClient(settings, **redis_backends(redis_client), key_prefix="share") as a,
        VippsClient(settings, **redis_backends(redis_client), key_prefix="share") as b,
    ):
        a.fetch_agreement("agr_1")
        b.fetch_agreement("agr_1")
    assert vipps.routes["token"].call_count == 1


# --- budgets ---------------------------------------------------------------------------------------


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest) -> RedisBudgetBackend | MemoryBudgetBackend:
    if request.param == "redis":
        return RedisBudgetBackend(request.getfixturevalue("redis_client"))
    return MemoryBudgetBackend()


def test_budget_is_shared_between_pods_and_says_how_long_to_wait(redis_client: redis.Redis) -> None:
    pods = [
        Budgets(
            RedisBudgetBackend(redis_client), "b", {ops.UPDATE_AGREEMENT: BudgetRule(5, ("msn", "agreementId"))}
        )
        for _ in range(2)
    ]
    values = {"msn": "123456", "agreementId": "agr_1"}
    waits = [pods[i % 2].take(ops.UPDATE_AGREEMENT, values) for i in range(7)]
    assert waits[:5] == [0.0] * 5
    assert all(55 < w <= 60 for w in waits[5:])
    assert pods[0].take(ops.UPDATE_AGREEMENT, {**values, "agreementId": "agr_2"}) == 0.0


def test_budget_slot_frees_after_the_window(backend: RedisBudgetBackend | MemoryBudgetBackend) -> None:
    budgets = Budgets(backend, "w", {ops.FETCH_CHARGE: BudgetRule(2, ("chargeId",), window=0.3)})
    assert budgets.take(ops.FETCH_CHARGE, {"chargeId": "c"}) == 0.0
    assert budgets.take(ops.FETCH_CHARGE, {"chargeId": "c"}) == 0.0
    wait = budgets.take(ops.FETCH_CHARGE, {"chargeId": "c"})
    assert 0 < wait <= 0.3
    time.sleep(wait + 0.02)
    assert budgets.take(ops.FETCH_CHARGE, {"chargeId": "c"}) == 0.0


def test_budget_is_atomic_under_concurrency(backend: RedisBudgetBackend | MemoryBudgetBackend) -> None:
    budgets = Budgets(backend, "c", {ops.LIST_CHARGES: BudgetRule(10, ("agreementId",))}, for_people=True)
    with ThreadPoolExecutor(max_workers=16) as pool:
        waits = list(pool.map(lambda _: budgets.take(ops.LIST_CHARGES, {"agreementId": "a"}), range(40)))
    assert waits.count(0.0) == 10


def test_operations_without_a_rule_are_unlimited(backend: RedisBudgetBackend | MemoryBudgetBackend) -> None:
    budgets = Budgets(backend, "u", {})
    assert all(budgets.take(ops.FORCE_ACCEPT, {}) == 0.0 for _ in range(50))


def test_a_prepaid_slot_covers_one_send_in_its_block_only(backend: RedisBudgetBackend | MemoryBudgetBackend) -> None:
    budgets = Budgets(backend, "p", {ops.CREATE_CHARGE: BudgetRule(2, ("idempotencyKey",))})
    values = {"idempotencyKey": "k1"}
    slot = budgets.slot(ops.CREATE_CHARGE, values)
    assert slot is not None and (slot.limit, slot.window_ms) == (2, 60_000)
    assert budgets.slot(ops.FORCE_ACCEPT, {}) is None
    with budgets.prepaid(slot):
        assert budgets.take(ops.CREATE_CHARGE, values) == 0.0  # paid for: nothing taken
        assert budgets.take(ops.CREATE_CHARGE, values) == 0.0  # a second send takes the first real slot
        assert budgets.take(ops.CREATE_CHARGE, {"idempotencyKey": "k2"}) == 0.0  # another key is not covered
    assert budgets.take(ops.CREATE_CHARGE, values) == 0.0
    assert budgets.take(ops.CREATE_CHARGE, values) > 0  # two real slots were taken for k1: the budget is full
    with budgets.prepaid(slot), ThreadPoolExecutor(max_workers=1) as pool:  # the block covers only this thread
        assert pool.submit(budgets.take, ops.CREATE_CHARGE, values).result() > 0


def test_client_budget_slot_by_operation_or_by_its_id(settings: VippsSettings) -> None:
    assert set(DEFAULT_RULES) <= set(ops.V3_OPERATIONS)  # rules name operations of the one table
    with VippsClient(settings, key_prefix="unit") as c:
        slot = c.budget_slot(ops.CREATE_CHARGE, agreement_id="agr_1", idempotency_key="k")
        assert slot == BudgetSlot("unit:vipps:budget:CreateChargeV3:123456:agr_1:k", 2, 60_000)
        assert c.budget_slot("CreateChargeV3", agreement_id="agr_1", idempotency_key="k") == slot
        assert c.budget_slot(ops.FORCE_ACCEPT, agreement_id="agr_1") is None  # no published limit
        with pytest.raises(KeyError):
            c.budget_slot("NoSuchOperationV3")


def test_people_keep_a_share_of_each_read_budget_that_workers_leave() -> None:
    backend = MemoryBudgetBackend()
    workers = Budgets(backend, "share", DEFAULT_RULES)
    people = Budgets(backend, "share", DEFAULT_RULES, for_people=True)
    values = {"msn": "123456"}
    taken = 0
    while workers.take(ops.LIST_AGREEMENTS, values) == 0:  # workers poll until refused
        taken += 1
    assert taken == 4  # of Vipps's 5 a minute per merchant
    assert people.take(ops.LIST_AGREEMENTS, values) == 0  # a support agent's lookup still goes out
    refused = people.take(ops.LIST_AGREEMENTS, values)
    assert 0 < refused <= 60  # and then says when to try again
    # Writes go through the workers only: no share is held back from them.
    create = {"msn": "123456", "agreementId": "agr_1", "idempotencyKey": "k"}
    assert [workers.take(ops.CREATE_CHARGE, create) for _ in range(2)] == [0, 0]


def test_charge_creation_is_also_capped_per_merchant() -> None:
    backend = MemoryBudgetBackend()
    budgets = Budgets(backend, "m", DEFAULT_RULES, extra=extra_rules(3))
    keys = [f"key-{i}" for i in range(5)]
    waits = [budgets.take(ops.CREATE_CHARGE, {"msn": "123456", "agreementId": "agr_1", "idempotencyKey": k})
             for k in keys]
    assert waits[:3] == [0.0, 0.0, 0.0] and all(w > 0 for w in waits[3:])  # 3 a minute for the merchant
    other = budgets.take(ops.CREATE_CHARGE, {"msn": "654321", "agreementId": "agr_2", "idempotencyKey": "k"})
    assert other == 0.0  # another merchant's cap is its own
    assert "500" not in budgets.describe(ops.CREATE_CHARGE) and "per merchant" in budgets.describe(ops.CREATE_CHARGE)
    assert Budgets(backend, "n", DEFAULT_RULES, extra=extra_rules(0)).describe(ops.CREATE_CHARGE).count(";") == 0
