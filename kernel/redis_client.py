"""One way to open Redis: a single server (``redis://``, ``rediss://``, ``unix://``) or a Redis /
Valkey Cluster (``redis+cluster://host:port[,host:port...]``, ``rediss+cluster://`` for TLS),
chosen by the URL's scheme (decision 0037).

Both clients speak the same commands; livecart's stores are typed against ``Redis`` and handed
a ``RedisCluster`` in cluster mode. What differs is kept to a few calls every store already
respects: every Function call names keys of one slot (tests/test_key_slots.py checks them all),
a transaction (WATCH/MULTI) touches one slot, and nothing but the pipeline's stream reads and
the room bus's subscriptions reaches more than one node (each knows how).
"""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

from kernel.errors import Unavailable

# How long a primary's replica count is trusted: a replica that attaches is waited for within
# this long; until then its primary's writes are confirmed by the replicas it had.
REPLICAS_FRESH_S = 1.0
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# A cluster client's connections per node. Past it a call fails (MaxConnectionsError) instead of
# waiting as the single server's blocking pool does, so it is set well above what a process
# uses: one connection per call in flight, and a node runs a few hundred at most.
CLUSTER_CONNECTIONS_PER_NODE = 2048


class NotReplicated(Unavailable):
    """A Function's writes reached fewer replicas than ``wait_replicas`` within ``wait_ms``.
    They stand on the primary; the caller is told to retry (every step repeats safely)."""


class Reloading:
    """Loads the Function libraries again when a server says a function is missing, then
    repeats the call once: a primary added to a cluster (slots moved to it) starts empty, as
    does a server restarted without its data. The libraries are those this client loaded.

    With ``wait_replicas`` set, every Function call is followed by ``WAIT`` on the same
    connection (decision 0038): nobody is told of a hold, a sale or a bid that a failover to
    a replica could forget. A primary with fewer replicas that could be promoted over it
    (counted once a second) is waited for by those it has, and one with none is not waited
    for."""

    _libraries: dict[str, str]
    _replica_counts: dict[str, tuple[float, int]]
    wait_replicas = 0
    wait_ms = 100

    async def function_load(self, code: str, replace: bool | None = False) -> Any:
        self._libraries = getattr(self, "_libraries", {})
        self._libraries[code.split("\n", 1)[0]] = code  # by its "#!lua name=..." line
        return await super().function_load(code, replace)  # type: ignore[misc]

    async def fcall(self, function: str, numkeys: int, *keys_and_args: Any) -> Any:
        call = super().fcall if not self.wait_replicas else self._fcall_replicated  # type: ignore[misc]
        try:
            return await call(function, numkeys, *keys_and_args)
        except ResponseError as err:
            libraries = getattr(self, "_libraries", {})
            if "function not found" not in str(err).lower() or not libraries:
                raise
        for code in libraries.values():
            await super().function_load(code, True)  # type: ignore[misc]
        return await call(function, numkeys, *keys_and_args)

    async def _fcall_replicated(self, function: str, numkeys: int, *keys_and_args: Any) -> Any:
        """FCALL, then WAIT in the same pipeline: one connection, so WAIT counts the replicas
        that have this call's writes; on a cluster both go to the node of the call's keys."""
        target: dict[str, Any] = {}
        cluster = self if isinstance(self, RedisCluster) and numkeys else None
        if cluster is not None:
            target["target_nodes"] = cluster.get_node_from_key(keys_and_args[0])
        wanted = min(self.wait_replicas, await self._replicas_known(target))
        if not wanted:  # no replica to wait for: nothing could be promoted over this primary
            return await super().fcall(function, numkeys, *keys_and_args)  # type: ignore[misc]
        async with self.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            pipe.fcall(function, numkeys, *keys_and_args)
            pipe.execute_command("WAIT", wanted, self.wait_ms, **target)
            result, acked = await pipe.execute()
        now = cluster.get_node_from_key(keys_and_args[0]) if cluster is not None else None
        if now is not None and now.name != target["target_nodes"].name:
            # The slot moved (a failover): the call followed it, the WAIT went to the old
            # node and counted nothing of ours. The caller repeats on the new one.
            raise NotReplicated("Redis moved this deal's data just now; try again.", replicas=0)
        if int(acked) < wanted and int(acked) < await self._replicas(target):
            raise NotReplicated(
                "Redis could not confirm this change on a replica in time; try again.",
                replicas=int(acked),
            )
        return result

    async def _replicas_known(self, target: dict[str, Any]) -> int:
        """The primary's replicas, as counted at most ``REPLICAS_FRESH_S`` ago: a call never
        waits out ``wait_ms`` on a primary that has none (one just promoted)."""
        node = target["target_nodes"].name if target else ""
        known = getattr(self, "_replica_counts", None)
        if known is None:
            known = self._replica_counts = {}
        checked = known.get(node)
        now = time.monotonic()
        if checked is None or now - checked[0] > REPLICAS_FRESH_S:
            known[node] = checked = (now, await self._replicas(target))
        return int(checked[1])

    async def _replicas(self, target: dict[str, Any]) -> int:
        """The replicas a failover could promote over this primary, which must have a write
        before anyone is told of it. On a cluster: every replica of the primary's shard that
        the cluster has not failed, connected to it or not (one cut off for a moment is still
        promoted if the primary dies; decision 0038). A single server has no automatic
        failover: its connected replicas. None: nothing could be promoted over the primary."""
        if not target:
            info = await self.info("replication")  # type: ignore[attr-defined]
            return int(info.get("connected_slaves", 0))
        node = target["target_nodes"]
        shards = await self.execute_command("CLUSTER SHARDS", **target)  # type: ignore[attr-defined]
        for shard in shards:
            nodes = shard["nodes"]
            if any(self._is_node(n, node) and n["role"] == "master" for n in nodes):
                return sum(1 for n in nodes if n["role"] == "replica" and n["health"] != "fail")
        return 0

    @staticmethod
    def _is_node(described: dict[str, Any], node: ClusterNode) -> bool:
        hosts = {described.get("ip"), described.get("endpoint"), described.get("hostname")}
        return int(described["port"]) == node.port and node.host in hosts


class ReloadingRedis(Reloading, Redis):  # type: ignore[misc]  # redis-py's own stubs clash
    pass


class ReloadingCluster(Reloading, RedisCluster):  # type: ignore[misc]
    pass


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def is_cluster_client(client: object) -> bool:
    """Whether ``client`` (typed ``Redis`` everywhere) is in fact a cluster client."""
    return isinstance(client, RedisCluster)


def startup_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The single-server URL redis-py reads the options from (user, password, TLS query
    parameters) and every ``host:port`` the cluster URL names, for a client to start from."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a cluster node must be host:port, not {item.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    first = f"{userinfo}@{hosts.split(',')[0]}" if userinfo else hosts.split(",")[0]
    plain = urlunsplit((CLUSTER_SCHEMES[parts.scheme], first, parts.path, parts.query, ""))
    return plain, nodes


def check_url(url: str) -> None:
    """Raise ValueError for a URL neither client could open (at startup, not at the first call)."""
    if is_cluster(url):
        plain, _nodes = startup_nodes(url)
        options = parse_url(plain)
        if options.get("db"):
            raise ValueError("a Redis Cluster has database 0 only: no /N in the URL")
    else:
        parse_url(url)


def connect(
    url: str,
    *,
    decode_responses: bool = True,
    max_connections: int = 256,
    client_name: str | None = None,
    wait_replicas: int = 0,
    wait_ms: int = 100,
) -> Redis:
    """A client for ``url``. For a single server: a blocking pool, where a call past
    ``max_connections`` waits (up to 10 s) for a connection to come back rather than failing; a
    storm of 500 chat lines at once failed half of them with the default pool."""
    if is_cluster(url):
        cluster = cluster_client(url, decode_responses=decode_responses, client_name=client_name)
        cluster.wait_replicas, cluster.wait_ms = wait_replicas, wait_ms
        return cast(Redis, cluster)
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=decode_responses,
        max_connections=max_connections,
        timeout=10,
        client_name=client_name,
    )
    client = ReloadingRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_pool: closing the client closes the pool
    client.wait_replicas, client.wait_ms = wait_replicas, wait_ms
    return client


def cluster_client(
    url: str, *, decode_responses: bool = True, client_name: str | None = None
) -> ReloadingCluster:
    plain, nodes = startup_nodes(url)
    options: dict[str, Any] = dict(parse_url(plain))
    options.pop("host", None)
    options.pop("port", None)
    options.pop("db", None)
    if options.pop("connection_class", None) is not None:  # rediss:// gives an SSLConnection
        options["ssl"] = True
    return ReloadingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        decode_responses=decode_responses,
        max_connections=CLUSTER_CONNECTIONS_PER_NODE,
        client_name=client_name,
        **options,
    )
