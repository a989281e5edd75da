"""Every Redis key the checkout package uses, in one place.

A deal's keys share the hash tag ``{deal:ID}`` so they live in one Redis Cluster slot and one
Redis Function can touch them all. Expiry: a deal's keys are kept while the deal runs and for
``DEAL_KEYS_TTL_S`` after it is stopped, so late payments and the pipeline can still finish.
"""

from __future__ import annotations

from dataclasses import dataclass

DEAL_KEYS_TTL_S = 7 * 24 * 3600
IDEMPOTENCY_TTL_S = 24 * 3600

ORDER_GROUP = "order-pipeline"


@dataclass(frozen=True)
class DealKeys:
    deal: str
    holds: str
    buyers: str
    requests: str
    expiry: str
    orders: str
    dead_letters: str
    # Per client address (see checkout/limits.py): reserve buckets, units in holds, and which
    # address each live hold counts against.
    rates: str
    addresses: str
    hold_addresses: str
    # Refund key -> what lc_restock answered ("deal" or "over"), so a repeat answers the same.
    restocks: str
    # Buyers waiting for a unit of the sold-out deal (zset by arrival), and the units handed to
    # them (stream: their notices).
    waitlist: str
    offers: str

    def function_keys(self) -> list[str]:
        """The KEYS list every function in holds.lua expects, in its order."""
        return [
            self.deal,
            self.holds,
            self.buyers,
            self.requests,
            self.expiry,
            self.orders,
            self.rates,
            self.addresses,
            self.hold_addresses,
            self.restocks,
            self.waitlist,
            self.offers,
        ]


@dataclass(frozen=True)
class ShelfKeys:
    """A shop's list-price stock and cart holds (lua/shelf.lua), all under ``{shop:ID}``."""

    stock: str
    holds: str
    requests: str
    expiry: str
    orders: str
    moves: str
    vouchers: str
    claims: str
    # Per client address and SKU, units in holds; and which address each live hold counts
    # against (the per-address cap, checkout/limits.py).
    addresses: str
    hold_addresses: str
    # Each SKU's waitlist while sold out, and each waiter's entry (decision 0036).
    waitlist: str
    waiters: str

    def function_keys(self) -> list[str]:
        """The KEYS list every function in shelf.lua expects, in its order."""
        return [
            self.stock,
            self.holds,
            self.requests,
            self.expiry,
            self.orders,
            self.moves,
            self.vouchers,
            self.claims,
            self.addresses,
            self.hold_addresses,
            self.waitlist,
            self.waiters,
        ]


@dataclass(frozen=True)
class SandboxKeys:
    objects: str  # hash: provider id -> the object as JSON
    keys: str  # hash: "<kind>|<idempotency key>" -> provider id
    events: str  # stream: every change, as the provider's events

    def function_keys(self) -> list[str]:
        """The KEYS list every function in sandbox.lua expects, in its order."""
        return [self.objects, self.keys, self.events]


@dataclass(frozen=True)
class Keyspace:
    prefix: str = "lc"

    def deal(self, deal_id: int) -> DealKeys:
        base = f"{self.prefix}:{{deal:{deal_id}}}"
        return DealKeys(
            deal=f"{base}:deal",
            holds=f"{base}:holds",
            buyers=f"{base}:buyers",
            requests=f"{base}:requests",
            expiry=f"{base}:expiry",
            orders=f"{base}:orders",
            dead_letters=dead_letters_of(f"{base}:orders"),
            rates=f"{base}:rates",
            addresses=f"{base}:addresses",
            hold_addresses=f"{base}:hold-addresses",
            restocks=f"{base}:restocks",
            waitlist=f"{base}:waitlist",
            offers=f"{base}:offers",
        )

    def shelf(self, shop_id: int) -> ShelfKeys:
        base = f"{self.prefix}:{{shop:{shop_id}}}"
        return ShelfKeys(
            stock=f"{base}:shelf",
            holds=f"{base}:holds",
            requests=f"{base}:requests",
            expiry=f"{base}:expiry",
            orders=f"{base}:orders",
            moves=f"{base}:moves",
            vouchers=f"{base}:vouchers",
            claims=f"{base}:claims",
            addresses=f"{base}:addresses",
            hold_addresses=f"{base}:hold_addresses",
            waitlist=f"{base}:waitlist",
            waiters=f"{base}:waiters",
        )

    @property
    def waited_shelves(self) -> str:
        """Set of shop ids with buyers waiting for a sold-out SKU: the sweeper returns their
        lapsed holds on time, so a kept unit reaches the line without a checkout to wake it."""
        return f"{self.prefix}:shelves:waited"

    @property
    def shelves(self) -> str:
        """Set of shop ids whose shelves have sold or may sell: the pipeline reads their
        orders streams and the sweeper their expiries."""
        return f"{self.prefix}:shelves"

    @property
    def sku_shops(self) -> str:
        """Hash: SKU id -> its shop id, for SKUs whose terms were pushed to a shelf."""
        return f"{self.prefix}:sku-shops"

    def cart(self, buyer: str) -> str:
        """A buyer's cart: hash SKU id -> units."""
        return f"{self.prefix}:cart:{buyer}"

    @property
    def live_deals(self) -> str:
        """Set of deal ids whose order streams the pipeline reads and the sweeper sweeps."""
        return f"{self.prefix}:deals:live"

    def idempotency(self, buyer: str, key: str) -> str:
        return f"{self.prefix}:idem:{buyer}:{key}"

    @property
    def sandbox(self) -> SandboxKeys:
        """The sandbox payment provider's records (checkout/lua/sandbox.lua): one hash tag, so
        one Redis Cluster slot."""
        base = f"{self.prefix}:{{sandbox}}"
        return SandboxKeys(objects=f"{base}:objects", keys=f"{base}:keys", events=f"{base}:events")


def dead_letters_of(orders: str) -> str:
    """The dead-letter stream of a deal's orders stream: entries the pipeline gave up on."""
    return f"{orders}:dead"


def is_hold_id(hold_id: str) -> bool:
    """A deal's hold id or a shelf's."""
    return deal_id_of_hold(hold_id) is not None or shop_id_of_hold(hold_id) is not None


def shop_id_of_hold(hold_id: str) -> int | None:
    """Shelf hold ids are ``s<shop id>-<n>``; anything else is not one."""
    if not hold_id.startswith("s"):
        return None
    return deal_id_of_hold(hold_id[1:])


def deal_id_of_hold(hold_id: str) -> int | None:
    """Hold ids are ``<deal id>-<n>``; anything else is not a hold id."""
    if not hold_id.isascii():  # "²".isdigit() is true, but int("²") raises
        return None
    head, sep, tail = hold_id.partition("-")
    if not sep or not head.isdigit() or not tail.isdigit() or len(hold_id) > 40:
        return None
    return int(head)
