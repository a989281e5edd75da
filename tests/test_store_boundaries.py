"""Redis is reached only through stores, and its keys are named only in keys modules.

A *store* is a module whose job is the Redis side of one thing; it is the only code that reads
or writes those keys, and everything else calls its methods:

- checkout/holds.py: a deal's stock and holds (``HoldStore``, over ``lua/holds.lua``);
- checkout/shelf.py: a shop's list-price stock and cart holds (``ShelfStore``, over
  ``lua/shelf.lua``); checkout/cart_store.py: a buyer's cart;
- checkout/pipeline.py: a deal's orders stream, its consumer group and dead letters
  (``OrderPipeline`` writes SQL from it, ``OrderStream`` tells how far it is);
- checkout/idempotency.py, checkout/limits.py, checkout/payments.py: Idempotency-Keys, rate
  buckets and the sandbox provider's ledger;
- live/store.py: a room's state, event log, chat, viewers and likes (``RoomStore``);
- live/bus.py: the pub/sub subscription that brings every room's events to this node;
- live/auctions.py, live/giveaways.py: a room's auctions and giveaways (over
  ``lua/auctions.lua`` and ``lua/giveaways.lua``, in the room's slot);
- live/analytics.py: a room's per-minute analytics, counted in memory and flushed to Redis;
- people/challenges.py: passkey ceremonies' challenges; people/auth_stamps.py: sellers'
  sign-in stamps.

The keys modules (checkout/keys.py, live/keys.py, people/keys.py) name every key; stores ask
them. Two more
places may hold a client: web/embedded.py starts the private Valkey and pings it until it
answers (a process supervisor, before any store exists; it reads and writes no data), and the
composition root makes clients, hands them (and the sandbox ledger's key) to stores and closes
them: ``Redis.from_url`` and ``aclose`` are no commands.

Every other module of the four packages fails on a call made on a Redis client (a receiver
called ``redis``, like ``svc.redis.ping()`` or ``self.store.redis.hget(...)``, or a name bound
to a client, pipeline or subscription), on a string shaped like a key (``"lc:..."``, a hash tag
``{deal:``/``{room:``, a suffix such as ``":dead"``), or on a key taken from a keyspace
(``keys.room(7).log``). A store fails on a string shaped like a key.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.source import ROOT, name_of, production_files

STORES = frozenset(
    {
        "checkout/holds.py",
        "checkout/shelf.py",
        "checkout/cart_store.py",
        "checkout/pipeline.py",
        "checkout/idempotency.py",
        "checkout/limits.py",
        "checkout/payments.py",
        "live/store.py",
        "live/bus.py",
        "live/auctions.py",
        "live/giveaways.py",
        "live/analytics.py",
        "people/challenges.py",
        "people/auth_stamps.py",
    }
)
KEYS_MODULES = frozenset({"checkout/keys.py", "live/keys.py", "people/keys.py"})
PROCESS_SUPERVISOR = "web/embedded.py"

# Client methods that are no Redis command: closing a client is the composition root's job.
LIFECYCLE = frozenset({"aclose", "close"})
# Calls that make a client, a pipeline or a subscription (whose own calls are commands).
CLIENT_MAKERS = frozenset({"Redis", "from_url", "pipeline", "pubsub"})
# Keyspace methods and properties that name keys one reads or writes (checkout/keys.py,
# live/keys.py). ``sandbox`` is left out: the composition root hands it to its store.
KEY_BUILDERS = frozenset(
    {"deal", "room", "idempotency", "live_deals", "live_rooms", "deal_rooms", "shelf", "shelves"}
    | {"cart", "sku_shops"}
)
KEYSPACES = frozenset({"keys", "keyspace", "live_keys"})
KEY_SHAPED = re.compile(r"^lc:|\{(deal|room|shop):|^:[a-z][a-z-]*(:[a-z-]+)*$")


def dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of names and attributes, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _makes_client(value: ast.expr | None) -> bool:
    while isinstance(value, ast.Await):
        value = value.value
    return (
        isinstance(value, ast.Call)
        and dotted(value.func).rpartition(".")[2] in CLIENT_MAKERS
        and "redis" in ast.unparse(value).lower()
    )


def client_names(tree: ast.Module) -> set[str]:
    """Names bound to a Redis client, pipeline or subscription anywhere in the module."""
    names = {"redis"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _makes_client(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(node, ast.withitem)
            and _makes_client(node.context_expr)
            and isinstance(node.optional_vars, ast.Name)
        ):
            names.add(node.optional_vars.id)
    return names


def redis_calls(tree: ast.Module) -> Iterator[tuple[int, str]]:
    clients = client_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        receiver, method = dotted(node.func.value), node.func.attr
        on_client = receiver in clients or receiver.endswith(".redis")
        constructor = receiver == "redis" and method[:1].isupper()  # redis.Redis(...)
        if on_client and not constructor and method not in LIFECYCLE:
            yield node.lineno, f"Redis call {receiver}.{method}()"


def key_shaped_strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and KEY_SHAPED.search(node.value)
        ):
            yield node.lineno, f"key-shaped string {node.value!r}"


def keys_taken(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in KEY_BUILDERS:
            receiver = dotted(node.value)
            if receiver.rpartition(".")[2] in KEYSPACES:
                yield node.lineno, f"key taken from {receiver}.{node.attr}"


def outside_a_store(tree: ast.Module) -> list[tuple[int, str]]:
    return sorted({*redis_calls(tree), *key_shaped_strings(tree), *keys_taken(tree)})


def modules(names: frozenset[str], *, inside: bool) -> list[Path]:
    return [path for path in production_files() if (name_of(path) in names) == inside]


def report(path: Path, found: list[tuple[int, str]]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in found]


def module_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_lists_name_real_modules() -> None:
    for name in (*STORES, *KEYS_MODULES, PROCESS_SUPERVISOR):
        assert (ROOT / name).is_file(), name


@pytest.mark.parametrize(
    "path",
    modules(STORES | KEYS_MODULES | {PROCESS_SUPERVISOR}, inside=False),
    ids=module_id,
)
def test_outside_the_stores_nothing_calls_redis_or_names_a_key(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert report(path, outside_a_store(tree)) == []


@pytest.mark.parametrize("path", modules(STORES, inside=True), ids=module_id)
def test_stores_take_their_keys_from_a_keys_module(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert report(path, sorted(key_shaped_strings(tree))) == []


@pytest.mark.parametrize(
    "source",
    [
        "async def f(svc):\n    await svc.redis.ping()\n",
        "async def f(self, k):\n    redis = self.store.redis\n    await redis.hget(k, 'a')\n",
        "async def f(url):\n    r = Redis.from_url(url)\n    await r.get('x')\n",
        "async def f(r):\n    async with r.redis.pipeline() as p:\n        p.incr('x')\n",
        "def f(stream):\n    return stream + ':dead'\n",
        "def f(p, i):\n    return f'{p}:{{deal:{i}}}:holds'\n",
        "def f(svc, i):\n    return svc.rooms.keys.room(i).log\n",
    ],
)
def test_the_walk_catches_each_way_around_the_stores(source: str) -> None:
    assert outside_a_store(ast.parse(source))


def test_the_walk_leaves_a_composition_roots_clients_alone() -> None:
    source = (
        "async def f(url, keys):\n"
        "    redis = Redis.from_url(url)\n"
        "    store = HoldStore(redis, keys)\n"
        "    await store.ping()\n"
        "    await redis.aclose()\n"
    )
    assert outside_a_store(ast.parse(source)) == []
