"""The Redis side of list-price sales: a shop's shelf (``lua/shelf.lua``, decision 0028). Every
decision on its stock happens inside one function call in the shop's slot; this module only
encodes the calls and reads the answers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple, cast

from redis.asyncio import Redis

from checkout.error_codes import CheckoutErrorCode
from checkout.hold_states import HoldState
from checkout.keys import Keyspace, shop_id_of_hold
from kernel.batch import Batcher
from kernel.errors import Conflict

LIBRARY = resources.files("checkout").joinpath("lua/shelf.lua").read_text()


class Line(NamedTuple):
    """Units of one SKU at the price they were held at, less the line's share of the
    discounts (``off``: products, bundles, the voucher)."""

    sku_id: int
    qty: int
    unit_price: int
    off: int = 0

    @property
    def total(self) -> int:
        return self.qty * self.unit_price - self.off

    def encoded(self) -> str:
        return f"{self.sku_id}:{self.qty}:{self.unit_price}:{self.off}"

    def json(self) -> dict[str, int]:
        return {
            "sku_id": self.sku_id,
            "qty": self.qty,
            "unit_price": self.unit_price,
            "discount": self.off,
            "total": self.total,
        }


def decode_lines(text: str) -> tuple[Line, ...]:
    """The lines of a shelf hold or order entry: ``sku:qty:price:off`` joined by commas."""
    return tuple(Line(*(int(part) for part in item.split(":"))) for item in text.split(",") if item)


class HoldAsk(NamedTuple):
    """One checkout's hold, as ``ShelfStore.hold`` is asked for it (see lc_shelf_hold_many):
    its lines sorted by SKU, and their text as the call carries it and a fresh hold echoes it."""

    buyer: str
    request_id: str
    lines: tuple[Line, ...]
    lines_text: str
    shipping_fee: int
    shipping_discount: int
    voucher: str
    voucher_discount: int
    priced_with: tuple[str, str, str]
    address: str

    def encoded(self) -> str:
        """As lc_shelf_hold_many takes it: the fields joined by tabs (none can hold one: ids,
        codes, numbers and orjson's text)."""
        amounts = f"{self.shipping_fee}:{self.shipping_discount}:{self.voucher_discount}"
        head = (self.buyer, self.request_id, self.address, amounts, self.voucher)
        return "\t".join((*head, *self.priced_with, self.lines_text))


class Shortfall(NamedTuple):
    sku_id: int
    wanted: int
    available: int


@dataclass(frozen=True)
class Refusal:
    """Why a shelf hold was refused: ``short`` (too few units, or a SKU never put on the
    shelf), ``off_sale``, ``mixed_currencies``, ``repriced`` (a price moved since the quote),
    ``address_hold_limit`` (``detail``: the cap, then "sku:held" per SKU over it) or a voucher's
    refusal (``voucher_*``, with what it concerns in ``detail``)."""

    word: str
    short: list[Shortfall] = field(default_factory=list)
    off_sale: list[int] = field(default_factory=list)
    detail: tuple[str, ...] = ()


class SaleTerms(NamedTuple):
    """What a SKU sells for at list price, as SQL has it (and its product, which vouchers and
    promotions name)."""

    sku_id: int
    price: int
    currency: str
    on_sale: bool
    product_id: int

    def encoded(self) -> list[str]:
        on_sale = "1" if self.on_sale else "0"
        return [str(self.sku_id), str(self.price), self.currency, on_sale, str(self.product_id)]


class Offer(NamedTuple):
    """A SKU as a checkout prices it: its terms on the shelf and the units available there."""

    terms: SaleTerms
    available: int


@dataclass(frozen=True)
class ShelfQuote:
    """What ``lc_shelf_quote`` read: the shop's shipping rule ("kind:fee:free_over") and its
    promotions (checkout/promotions.py's encoding), each "" if never pushed, and each SKU's
    offer (missing: no terms on this shelf). A quote remembered from a recent read
    (``ShelfStore.recent_quote``) knows no stock."""

    shipping: str
    promotions: str
    offers: dict[int, Offer]
    stock_known: bool = True


# How long a read of a shop's terms prices checkouts without another read. Stale terms cost a
# refused round ("repriced"), never a wrong charge, and a refused round refreshes them; so this
# only bounds how long a node keeps a SKU it no longer sells. At 1 s, every expiry sent each
# in-flight checkout of the shop to Redis for a read (7 % of a cart checkout's CPU at 3k/s).
RECENT_MS = 10_000
RECENT_SHOPS = 10_000  # shops remembered at most (all forgotten at once past it)
RECENT_QUOTES = 1_000  # quotes kept per shop's read (all forgotten at once past it)


class RecentRead(NamedTuple):
    since: float  # time.monotonic() of the first read
    shipping: str
    promotions: str
    terms: dict[int, SaleTerms]
    quotes: dict[tuple[int, ...], ShelfQuote]


class ShelfStock(NamedTuple):
    quantity: int
    available: int
    held: int
    sold: int


class ShelfHold(NamedTuple):
    id: str
    qty: int
    expires_ms: int
    state: HoldState
    lines: tuple[Line, ...] = ()
    replayed: bool = False
    total: int = 0
    currency: str = ""
    shipping_fee: int = 0
    shipping_discount: int = 0
    voucher: str = ""
    voucher_discount: int = 0  # the voucher's part of the lines' discounts

    def json(self) -> dict[str, Any]:
        """As a deal hold's answer, with its lines and what the buyer pays (``voucher`` only
        when it redeems one)."""
        body: dict[str, Any] = {
            "id": self.id,
            "qty": self.qty,
            "state": self.state,
            "expires_ms": self.expires_ms,
            "lines": [line.json() for line in self.lines],
            "subtotal": sum(line.qty * line.unit_price for line in self.lines),
            "discount": sum(line.off for line in self.lines) + self.shipping_discount,
            "shipping_fee": self.shipping_fee,
            "shipping_discount": self.shipping_discount,
            "voucher_discount": self.voucher_discount,
            "total": self.total,
            "currency": self.currency,
        }
        if self.voucher:
            body["voucher"] = self.voucher
        return body


@dataclass(frozen=True)
class ShelfTerms:
    """What begin_payment answers: the hold's units, total and lines."""

    hold_id: str
    shop_id: int
    qty: int
    total: int
    currency: str
    lines: tuple[Line, ...]
    expires_ms: int
    paid: bool


class ShelfStore:
    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        *,
        hold_ttl_ms: int,
        pay_ttl_ms: int,
        address_cap: int = 0,
    ):
        self.redis = redis
        self.keys = keyspace
        self.hold_ttl_ms = hold_ttl_ms
        self.pay_ttl_ms = pay_ttl_ms
        self.address_cap = address_cap  # units of one SKU a client address may hold; 0: none
        # Checkouts of one shop arriving while its last hold call is in flight go together in
        # the next (as a deal's reservations do): one round trip for many holds.
        self._holds: Batcher[HoldAsk, ShelfHold | Refusal] = Batcher(self.hold_many)
        # shop -> (when read, its shipping rule, SKU terms): recent reads, which price the next
        # checkouts of the shop without reading again. Never trusted: the hold refuses
        # ("repriced") when a price, currency or the shipping rule it is given is not the
        # shelf's, and the checkout reads afresh. So an edit costs one refusal, never a charge.
        # Each entry also keeps the quotes it made, by their SKUs, until the entry is replaced.
        self._recent: dict[int, RecentRead] = {}

    async def install(self) -> None:
        await self.redis.function_load(LIBRARY, replace=True)

    async def _call(self, name: str, shop_id: int, *args: Any) -> Any:
        keys = self.keys.shelf(shop_id).function_keys()
        return await self.redis.fcall(name, len(keys), *keys, *args)

    async def move(self, shop_id: int, sku_id: int, units: int, tag: str) -> int | None:
        """Put units on the shelf (``units`` > 0) or take them off it; None if done, else the
        units available when a take found too few (nothing moved). Repeats answer the same."""
        answer = await self._call("lc_shelf_move", shop_id, sku_id, units, tag)
        if answer == "ok":
            await self.redis.sadd(self.keys.shelves, str(shop_id))
            return None
        return int(answer.split(" ")[1])

    async def set_terms(self, shop_id: int, terms: list[SaleTerms]) -> None:
        """Push SKUs' sale terms (as SQL has them) to the shop's shelf, and which shop each SKU
        is in to the SKU index a checkout reads first."""
        if not terms:
            return
        flat = [part for t in terms for part in t.encoded()]
        await self._call("lc_shelf_terms", shop_id, *flat)
        await self.redis.hset(self.keys.sku_shops, mapping={str(t.sku_id): shop_id for t in terms})

    async def shops_of(self, sku_ids: list[int]) -> dict[int, int]:
        """The shop of each SKU the index knows (a SKU never pushed is missing)."""
        if not sku_ids:
            return {}
        found = await self.redis.hmget(self.keys.sku_shops, [str(s) for s in sku_ids])
        return {sku: int(shop) for sku, shop in zip(sku_ids, found, strict=True) if shop}

    async def quote(self, shop_id: int, sku_ids: list[int], buyer: str = "") -> ShelfQuote:
        """The shop's shipping rule and the SKUs' terms and units on its shelf, for pricing;
        with a ``buyer``, a unit kept for them from a SKU's waitlist counts as available."""
        raw = await self._call("lc_shelf_quote", shop_id, buyer, *sku_ids)
        offers = {}
        for i, sku_id in enumerate(sku_ids):
            price, currency, sale, product, available = raw[2 + 5 * i : 7 + 5 * i]
            if price != "":
                terms = SaleTerms(sku_id, int(price), currency, sale == "1", int(product or 0))
                offers[sku_id] = Offer(terms, int(available or 0))
        self._remember(shop_id, raw[0], raw[1], offers)
        return ShelfQuote(raw[0], raw[1], offers)

    def recent_quote(self, shop_id: int, sku_ids: list[int]) -> ShelfQuote | None:
        """The SKUs' terms and the shop's shipping rule from a read less than ``RECENT_MS``
        ago, if one had them all (no stock: the hold counts it)."""
        found = self._recent.get(shop_id)
        if found is None or time.monotonic() - found[0] > RECENT_MS / 1000:
            return None
        _, shipping, promotions, terms, quotes = found
        key = tuple(sku_ids)
        quote = quotes.get(key)
        if quote is not None:
            return quote
        if not shipping or not promotions or any(sku not in terms for sku in sku_ids):
            return None
        offers = {sku: Offer(terms[sku], 0) for sku in sku_ids}
        quote = ShelfQuote(shipping, promotions, offers, stock_known=False)
        if len(quotes) >= RECENT_QUOTES:
            quotes.clear()
        quotes[key] = quote  # the next checkout of the same items takes it as it is
        return quote

    def _remember(
        self, shop_id: int, shipping: str, promotions: str, offers: dict[int, Offer]
    ) -> None:
        now = time.monotonic()
        found = self._recent.get(shop_id)
        if found is None or now - found[0] > RECENT_MS / 1000:
            if found is None and len(self._recent) >= RECENT_SHOPS:
                self._recent.clear()
            found = RecentRead(now, shipping, promotions, {}, {})
        # An entry is as old as its first read: later reads add SKUs, never extend its life.
        since, _, _, terms, _ = found
        fresh = {sku: offer.terms for sku, offer in offers.items()}
        self._recent[shop_id] = RecentRead(since, shipping, promotions, {**terms, **fresh}, {})

    async def set_shipping(self, shop_id: int, rule: str) -> None:
        """Push the shop's shipping rule ("kind:fee:free_over", as SQL has it) to its shelf."""
        await self._call("lc_shelf_shipping", shop_id, rule)

    async def set_promotions(self, shop_id: int, encoded: str) -> None:
        """Push the shop's promotions (as checkout/promotions.py encodes SQL's) to its shelf."""
        await self._call("lc_shelf_promotions", shop_id, encoded)

    async def hold(
        self,
        shop_id: int,
        buyer: str,
        request_id: str,
        lines: Sequence[Line],
        *,
        shipping_fee: int = 0,
        shipping_discount: int = 0,
        voucher: str = "",
        voucher_discount: int = 0,
        priced_with: tuple[str, str, str] = ("", "", ""),
        address: str = "",
    ) -> ShelfHold | Refusal:
        """Hold the priced ``lines`` (one per SKU of the shop) all or none, redeeming the
        voucher if one is named (``voucher_discount``: its part of the lines' discounts): the
        hold, or why not. ``priced_with`` is the shipping rule, the currency and the promotions
        the lines were priced with: they, and every line's price, must be the shelf's now (else
        "repriced"). ``address``: the client address the per-address cap counts (empty: a
        caller inside livecart, uncapped)."""
        if not lines:
            raise ValueError("at least one line")
        held = tuple(sorted(lines))
        ask = HoldAsk(
            buyer,
            request_id,
            held,
            ",".join(line.encoded() for line in held),
            shipping_fee,
            shipping_discount,
            voucher,
            voucher_discount,
            priced_with,
            address,
        )
        return await self._holds.submit(shop_id, ask)

    async def hold_many(self, shop_id: int, asks: list[HoldAsk]) -> list[ShelfHold | Refusal]:
        """Several holds of one shop in one call, decided in order: an answer each."""
        answers = await self._call(
            "lc_shelf_hold_many",
            shop_id,
            shop_id,
            self.hold_ttl_ms,
            self.address_cap,
            *(ask.encoded() for ask in asks),
        )
        return [
            _hold_answer(answer.split("\t"), ask) for answer, ask in zip(answers, asks, strict=True)
        ]

    async def begin_payment(self, hold_id: str, buyer: str, attempt: str) -> ShelfTerms | str:
        """The hold's terms, or the refusal's word (as lua/holds.lua's)."""
        shop_id = _shop_of(hold_id)
        raw = await self._call(
            "lc_shelf_begin_payment", shop_id, hold_id, buyer, attempt, self.pay_ttl_ms
        )
        if raw[0] not in ("ok", "paid"):
            return cast(str, raw[0])
        qty, total, currency, lines, expires = raw[1:]
        return ShelfTerms(
            hold_id=hold_id,
            shop_id=shop_id,
            qty=int(qty),
            total=int(total),
            currency=currency,
            lines=decode_lines(lines),
            expires_ms=int(expires),
            paid=raw[0] == "paid",
        )

    async def commit(
        self, hold_id: str, buyer: str, payment_ref: str, attempt: str, shipping: str
    ) -> str:
        """paying -> sold; "ok" or the refusal's word."""
        shop_id = _shop_of(hold_id)
        raw = await self._call(
            "lc_shelf_commit", shop_id, hold_id, buyer, payment_ref, attempt, shipping, shop_id
        )
        return cast(str, raw[0])

    async def payment_failed(self, hold_id: str, buyer: str, attempt: str) -> None:
        await self._call("lc_shelf_payment_failed", _shop_of(hold_id), hold_id, buyer, attempt)

    async def release(self, hold_id: str, buyer: str) -> str:
        raw = await self._call("lc_shelf_release", _shop_of(hold_id), hold_id, buyer)
        return cast(str, raw[0])

    async def get_hold(self, hold_id: str, buyer: str) -> ShelfHold | None:
        raw = await self._call("lc_shelf_get_hold", _shop_of(hold_id), hold_id, buyer)
        if not raw:
            return None
        state, _, expires, text, *charge = raw
        return _shelf_hold(hold_id, state, expires, decode_lines(text), charge)

    async def wait(self, shop_id: int, sku_id: int, buyer: str, channel: str) -> list[str]:
        """Join the SKU's waitlist (lc_shelf_wait): ["ok", place, waiting], ["offered", hold,
        expires_ms], or the refusal's word. ``channel``: where to tell the buyer of an offer
        ("" for nowhere: they ask with ``waiting``)."""
        answer = await self._call(
            "lc_shelf_wait", shop_id, buyer, sku_id, channel, self.hold_ttl_ms
        )
        # After the join: the sweeper's list may drop a shop it found nobody waiting at, then
        # sees this add (see expire_waited).
        await self.redis.sadd(self.keys.waited_shelves, str(shop_id))
        return [str(word) for word in answer]

    async def unwait(self, shop_id: int, sku_id: int, buyer: str) -> bool:
        """Leave the SKU's waitlist: whether the buyer was on it."""
        return bool(await self._call("lc_shelf_unwait", shop_id, buyer, sku_id))

    async def waiting(self, shop_id: int, sku_id: int, buyer: str) -> tuple[int, int, str, int]:
        """The buyer's place on the SKU's waitlist (0: not on it), how many wait, and the
        hold kept for them with its expiry ("" and 0 for none)."""
        place, waiting, hold, expires = await self._call("lc_shelf_waiting", shop_id, buyer, sku_id)
        return int(place), int(waiting), str(hold), int(expires)

    async def expire_waited(self) -> None:
        """Lapsed holds back on the shelves that buyers wait at, so each returned unit is
        kept for the next in line on time; a shelf nobody waits at leaves the list."""
        waited = self.keys.waited_shelves
        for shop in await self.redis.smembers(waited):
            if await self.expire(int(shop)):
                continue
            await self.redis.srem(waited, shop)
            if await self.expire(int(shop)):  # someone joined meanwhile (they add after joining)
                await self.redis.sadd(waited, shop)

    async def waiting_for(self, shop_id: int, sku_id: int) -> int:
        """How many wait for the SKU."""
        return (await self.waiting(shop_id, sku_id, ""))[1]

    async def stock(self, shop_id: int, sku_ids: list[int]) -> dict[int, ShelfStock]:
        """Each SKU's shelf counters after lapsed holds went back (zeros for one never put)."""
        if not sku_ids:
            return {}
        flat = await self._call("lc_shelf_stock", shop_id, *sku_ids)
        numbers = [int(n) for n in flat]
        return {sku_id: ShelfStock(*numbers[4 * i : 4 * i + 4]) for i, sku_id in enumerate(sku_ids)}

    async def load_voucher(
        self,
        shop_id: int,
        code: str,
        *,
        budget: int,
        per_buyer: int,
        starts_ms: int,
        ends_ms: int,
        room_id: int | None,
    ) -> bool:
        """Put a voucher's budget on the shop's shelf; the first load wins."""
        room = "" if room_id is None else room_id
        args = (code, budget, per_buyer, starts_ms, ends_ms, room)
        return bool(await self._call("lc_shelf_load_voucher", shop_id, *args))

    async def claim(self, shop_id: int, code: str, buyer: str, room_live: bool) -> list[str]:
        """One claim of the voucher: ["ok", left, mine] or the refusal's word and details."""
        answer = await self._call("lc_shelf_claim", shop_id, code, buyer, "1" if room_live else "0")
        return cast(list[str], answer)

    async def vouchers_left(self, shop_id: int, codes: list[str]) -> dict[str, int | None]:
        """Each voucher's uses left (None: never put on the shelf)."""
        if not codes:
            return {}
        raw = await self._call("lc_shelf_vouchers_left", shop_id, *codes)
        return {code: int(n) if n != "" else None for code, n in zip(codes, raw, strict=True)}

    async def usable(
        self, shop_id: int, buyer: str, codes: list[str]
    ) -> dict[str, tuple[int, int, int | None]]:
        """For showing a cart: each voucher's (claims the buyer made, of them in use or used,
        uses left in its budget; None if never loaded). A read: the hold decides."""
        if not codes:
            return {}
        raw = await self._call("lc_shelf_usable", shop_id, buyer, *codes)
        return {
            code: (int(raw[3 * i]), int(raw[3 * i + 1]), _int_or_none(raw[3 * i + 2]))
            for i, code in enumerate(codes)
        }

    async def expire(self, shop_id: int) -> int:
        """Lapsed holds back on the shelf (to its waiters first): how many buyers still wait
        for any of its SKUs."""
        return int(await self._call("lc_shelf_expire", shop_id))

    # -- for the audit: the shelf as Redis holds it, nothing reclaimed first --------------------

    async def counters(self, shop_id: int) -> dict[int, ShelfStock]:
        """Every SKU's counters on the shop's shelf, as stored."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.shelf(shop_id).stock))
        found: dict[int, dict[str, int]] = {}
        for key, value in raw.items():
            sku, _, name = key.partition(":")
            if name in ShelfStock._fields:
                found.setdefault(int(sku), {})[name] = int(value)
        return {
            sku: ShelfStock(*(c.get(name, 0) for name in ShelfStock._fields))
            for sku, c in found.items()
        }

    async def terms(self, shop_id: int) -> dict[int, SaleTerms]:
        """Every SKU's sale terms on the shop's shelf, as stored."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.shelf(shop_id).stock))
        parts: dict[int, dict[str, str]] = {}
        for key, value in raw.items():
            sku, _, name = key.partition(":")
            if name in ("price", "currency", "sale", "product"):
                parts.setdefault(int(sku), {})[name] = value
        return {
            sku: SaleTerms(
                sku, int(p["price"]), p["currency"], p["sale"] == "1", int(p.get("product", 0))
            )
            for sku, p in parts.items()
            if {"price", "currency", "sale"} <= p.keys()
        }

    async def shipping(self, shop_id: int) -> str:
        """The shop's shipping rule on its shelf, as stored ("" if never pushed)."""
        found = await self.redis.hget(self.keys.shelf(shop_id).stock, "shipping")
        return cast(str, found or "")

    async def promotions(self, shop_id: int) -> str:
        """The shop's promotions on its shelf, as stored ("" if never pushed)."""
        found = await self.redis.hget(self.keys.shelf(shop_id).stock, "promos")
        return cast(str, found or "")

    async def recorded_holds(self, shop_id: int) -> dict[str, tuple[HoldState, tuple[Line, ...]]]:
        """Every hold the shelf granted: its state now and its lines."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.shelf(shop_id).holds))
        holds = {}
        for hold_id, record in raw.items():
            parts = record.split("|")
            holds[hold_id] = (HoldState(parts[0]), decode_lines(parts[11]))
        return holds

    async def shop_ids(self) -> list[int]:
        return sorted(int(m) for m in await self.redis.smembers(self.keys.shelves))

    async def move_answer(self, shop_id: int, tag: str) -> str | None:
        """What lc_shelf_move answered under ``tag``, if it ran (for the audit and repairs)."""
        return cast(str | None, await self.redis.hget(self.keys.shelf(shop_id).moves, tag))


def _hold_answer(raw: list[str], ask: HoldAsk) -> ShelfHold | Refusal:
    word = raw[0]
    if word == "short":
        return Refusal(word, short=[Shortfall(*(int(p) for p in x.split(":"))) for x in raw[1:]])
    if word == "off_sale":
        return Refusal(word, off_sale=[int(sku) for sku in raw[1:]])
    if word != "ok":
        return Refusal(word, detail=tuple(raw[1:]))
    hold_id, expires, state, replayed, total, currency, text, *charge = raw[1:]
    # A fresh hold echoes the asked lines (a replayed one answers its own): not decoded again.
    held = ask.lines if text == ask.lines_text else decode_lines(text)
    return _shelf_hold(hold_id, state, expires, held, [total, currency, *charge], replayed)


def _shelf_hold(
    hold_id: str,
    state: str,
    expires: str,
    held: tuple[Line, ...],
    charge: list[str],
    replayed: str = "0",
) -> ShelfHold:
    """A hold from the shelf's answer; ``charge``: total, currency, shipping fee, its
    discount, the voucher and its part, as lc_shelf_hold_many and lc_shelf_get_hold list them."""
    total, currency, fee, fee_off, code, code_off = charge
    return ShelfHold(
        id=hold_id,
        qty=sum(line.qty for line in held),
        expires_ms=int(expires),
        state=HoldState(state),
        lines=held,
        replayed=replayed == "1",
        total=int(total),
        currency=currency,
        shipping_fee=int(fee),
        shipping_discount=int(fee_off),
        voucher=code,
        voucher_discount=int(code_off),
    )


def _int_or_none(value: str) -> int | None:
    return None if value == "" else int(value)


def _shop_of(hold_id: str) -> int:
    shop_id = shop_id_of_hold(hold_id)
    if shop_id is None:
        raise Conflict("No such hold.", code=CheckoutErrorCode.HOLD_NOT_FOUND, hold_id=hold_id)
    return shop_id
