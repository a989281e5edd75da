"""livecart's Redis side on a real Valkey cluster of its own (tests/cluster.py: 3 primaries, each
with a replica, on loopback): the libraries reach every primary and come back to one that lost
them, and a primary killed in the middle of a storm of reservations is replaced by its replica
without forgetting any hold a buyer was told of (WAIT, decision 0038) or selling a unit twice."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from checkout.holds import Hold, HoldStore, ReserveRequest
from checkout.keys import Keyspace
from kernel.db import Database
from kernel.errors import DomainError
from kernel.redis_client import NotReplicated, connect
from tests.cluster import ClusterNode, ValkeyCluster
from tests.conftest import PREFIX, SellerAccount
from tests.helpers import make_live_deal, until

pytestmark = pytest.mark.storage

LIBRARIES = {"livecart_holds", "livecart_shelf"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    with ValkeyCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ValkeyCluster]:
    """A cluster for one test that kills a node of it."""
    with ValkeyCluster(tmp_path / "cluster") as running:
        yield running


async def hold_store(cluster: ValkeyCluster, **wait: int) -> HoldStore:
    store = HoldStore(connect(cluster.url, **wait), Keyspace(f"{PREFIX}c{secrets.token_hex(3)}"))
    await store.install()
    return store


def libraries_on(port: int) -> set[str]:
    client = redis.Redis(port=port, decode_responses=True)
    try:
        listed = [dict(zip(lib[::2], lib[1::2], strict=True)) for lib in client.function_list()]
        return {str(lib["library_name"]).split("_v")[0] for lib in listed}
    finally:
        client.close()


def port_of_deal(store: HoldStore, deal_id: int) -> int:
    client = store.redis
    assert isinstance(client, RedisCluster)
    return int(client.get_node_from_key(store.keys.deal(deal_id).deal).port)


@pytest.fixture
async def store(cluster: ValkeyCluster) -> AsyncIterator[HoldStore]:
    held = await hold_store(cluster)
    yield held
    await held.redis.aclose()


async def test_the_libraries_reach_every_primary_and_come_back_to_one_that_lost_them(
    cluster: ValkeyCluster, store: HoldStore, db: Database, seller: SellerAccount
) -> None:
    for port in cluster.primary_ports():
        assert libraries_on(port) >= LIBRARIES, f"primary {port}"
    deal = await make_live_deal(db, store, seller, quantity=5)
    port = port_of_deal(store, deal.id or 0)
    flushed = redis.Redis(port=port)
    flushed.function_flush()  # as a new primary, given the deal's slot, would start
    flushed.close()
    assert not LIBRARIES & libraries_on(port)
    hold = await store.reserve(deal.id or 0, ReserveRequest(secrets.token_hex(8), 2))
    assert (hold.qty, hold.state) == (2, "held")
    assert libraries_on(port) >= LIBRARIES


async def reserve_until_answered(
    store: HoldStore, deal_id: int, buyer: str, delay: float, deadline: float
) -> Hold | str:
    """A buyer's reservation after ``delay`` s, retried with the same request id (so a retry
    can only find the same hold) until Redis answers it, as a client retries a 503."""
    await asyncio.sleep(delay)
    request = ReserveRequest(buyer, 1, request_id=f"r{buyer}")
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await store.reserve(deal_id, request)
        except DomainError as err:
            if not isinstance(err, NotReplicated):
                return err.code
        except (RedisError, RedisClusterException, OSError):
            pass  # the primary is gone and its replica not yet promoted
        if loop.time() > deadline:
            return "gave_up"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_killed_primary_is_replaced_and_forgets_no_hold_a_buyer_was_told_of(
    own_cluster: ValkeyCluster, db: Database, seller: SellerAccount
) -> None:
    store = await hold_store(own_cluster, wait_replicas=1, wait_ms=1000)
    try:
        deal = await make_live_deal(
            db, store, seller, quantity=300, limit=1, hold_ttl_ms=600_000, pay_ttl_ms=600_000
        )
        deal_id = deal.id or 0
        victim = own_cluster.node_at(port_of_deal(store, deal_id))
        deadline = asyncio.get_running_loop().time() + 60
        buyers = [secrets.token_hex(8) for _ in range(400)]
        tasks = [  # arriving over 4 s, so the kill falls in the middle of them
            asyncio.create_task(reserve_until_answered(store, deal_id, b, i / 100, deadline))
            for i, b in enumerate(buyers)
        ]

        async def some_answered() -> bool:
            return sum(t.done() for t in tasks) >= 100

        await until(some_answered, "100 reservations answered before the kill")
        victim.kill()
        killed = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*tasks)
        waited = asyncio.get_running_loop().time() - killed
        before = sum(isinstance(a, Hold) for a in answers[:100])
        print(f"\nfailover: the last of 400 answered {waited:.1f} s after the kill; {before} holds")
        await asyncio.to_thread(own_cluster.wait_ready)
        assert victim.port not in own_cluster.primary_ports()  # its replica took over
        told = {b: a for b, a in zip(buyers, answers, strict=True) if isinstance(a, Hold)}
        assert "gave_up" not in answers
        assert len(told) == 300
        assert set(answers) - set(told.values()) <= {"sold_out", "insufficient_stock"}
        state = await store.snapshot(deal_id)
        assert state is not None
        assert (state.available, state.held, state.sold) == (0, 300, 0)
        for buyer, hold in told.items():  # every hold a buyer was told of is still theirs
            assert (await read_until_answered(store, hold, buyer)).state == "held"
    finally:
        await asyncio.wait_for(store.redis.aclose(), 10)


async def read_until_answered(store: HoldStore, hold: Hold, buyer: str) -> Hold:
    """The hold as Redis has it now, asked again while the client learns the new slot map."""
    failures: list[str] = []
    for _ in range(50):
        try:
            found = await store.get_hold(hold.id, buyer)
            assert isinstance(found, Hold)
            return found
        except (NotReplicated, RedisError, RedisClusterException, OSError) as err:
            failures.append(repr(err))
            await asyncio.sleep(0.1)
    raise AssertionError(f"hold {hold.id} could not be read after the failover: {failures[-3:]}")


def replicated(primary: ClusterNode, replica: ClusterNode) -> bool:
    """The replica has every write its primary has made (their offsets meet)."""
    with primary.client() as a, replica.client() as b:
        ahead = int(a.info("replication")["master_repl_offset"])
        return int(b.info("replication").get("slave_repl_offset", -1)) == ahead


Told = tuple[str, Hold]  # a buyer, and the hold they were told of


async def reserve_once(store: HoldStore, deal_id: int) -> Told | str:
    """One reservation, not retried: the buyer and their hold (they are told), or why not."""
    buyer = secrets.token_hex(8)
    try:
        return buyer, await store.reserve(deal_id, ReserveRequest(buyer, 1))
    except DomainError as err:
        return str(err.code)


async def still_there(store: HoldStore, told: Told) -> bool:
    """Whether the (promoted) primary has the hold, asked again while the client learns the
    new slot map."""
    buyer, hold = told
    for _ in range(50):
        try:
            await store.get_hold(hold.id, buyer)
            return True
        except DomainError as err:
            if err.code == "hold_not_found":
                return False
        except (RedisError, RedisClusterException, OSError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"hold {hold.id} could not be read after the failover")


@pytest.mark.slow
@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_in_the_loss_window_a_hold_is_refused_with_wait_and_forgotten_without(
    own_cluster: ValkeyCluster, db: Database, seller: SellerAccount, wait_replicas: int
) -> None:
    """Forces the window: the deal's replica is cut off (paused, its link closed by the
    primary) while still a member the cluster would promote, buyers reserve, the primary dies
    and the replica takes over. Without WAIT every hold told in the window is forgotten
    (so the window is real and this test reaches it); with WAIT none is told, and nothing
    told before is lost."""
    store = await hold_store(own_cluster, wait_replicas=wait_replicas, wait_ms=200)
    try:
        deal = await make_live_deal(
            db, store, seller, quantity=100, limit=1, hold_ttl_ms=600_000, pay_ttl_ms=600_000
        )
        deal_id = deal.id or 0
        before = [await reserve_once(store, deal_id) for _ in range(5)]
        assert all(isinstance(h, tuple) for h in before), before
        primary = own_cluster.node_at(port_of_deal(store, deal_id))
        replica = own_cluster.replica_of(primary)
        await until(lambda: asyncio.to_thread(replicated, primary, replica), "replica in step")
        # Slow failure detection while the replica is paused, so the cluster still counts it
        # a replica it would promote (a failed one would not be waited for).
        own_cluster.set_node_timeout(60_000)
        replica.pause()
        with primary.client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")

        async def cut_off() -> bool:
            with primary.client() as client:
                return int(client.info("replication")["connected_slaves"]) == 0

        await until(cut_off, "the primary's link to its replica closed")
        window = await asyncio.gather(*(reserve_once(store, deal_id) for _ in range(20)))
        primary.kill()
        replica.resume()
        own_cluster.set_node_timeout(2000)
        await asyncio.to_thread(own_cluster.wait_ready)
        assert replica.port in own_cluster.primary_ports()  # the cut-off replica took over
        told = [h for h in window if isinstance(h, tuple)]
        kept = [h for h in told if await still_there(store, h)]
        print(f"\nWAIT {wait_replicas}: {len(told)} of 20 told in the window, {len(kept)} kept")
        if wait_replicas:
            assert set(window) == {"unavailable"}  # nobody was told: every one may retry
        else:
            assert len(told) == 20 and kept == []  # told, then forgotten by the failover
        for hold in before:  # what was replicated before the window survives either way
            assert isinstance(hold, tuple) and await still_there(store, hold)
        state = await store.snapshot(deal_id)
        assert state is not None and state.available + state.held + state.sold == 100
        assert state.held == len(before)
    finally:
        await asyncio.wait_for(store.redis.aclose(), 10)
