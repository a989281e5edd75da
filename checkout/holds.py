"""The Redis side of a flash deal: loads the Redis Functions in ``lua/holds.lua`` once and calls
them. No Python here reads stock and writes it back; every decision happens inside one function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple, cast

from redis.asyncio import Redis

from catalog.error_codes import CatalogErrorCode
from catalog.models import Deal
from checkout.deal_phase import DealPhase, phase_at
from checkout.error_codes import CheckoutErrorCode
from checkout.hold_states import HoldRecord, HoldState
from checkout.keys import DEAL_KEYS_TTL_S, Keyspace, deal_id_of_hold, shop_id_of_hold
from checkout.limits import ReserveLimits, throttled
from checkout.shelf import Line, ShelfHold, ShelfStore
from kernel.errors import (
    CommonErrorCode,
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    Invalid,
    NotFound,
)

LIBRARY = resources.files("checkout").joinpath("lua/holds.lua").read_text()


# Tuples, not dataclasses: a storm makes thousands of these a second on the hot path.
class ReserveRequest(NamedTuple):
    buyer: str
    qty: int
    request_id: str = ""
    # The client address it came from (checkout.limits.client_address); "" for callers inside
    # livecart, which the per-address limits leave alone.
    address: str = ""
    # Signed in to an account (decision 0041): a deal for accounts only takes these alone.
    account: bool = False


class Hold(NamedTuple):
    id: str
    qty: int
    expires_ms: int
    state: HoldState
    replayed: bool = False

    def json(self) -> dict[str, Any]:
        """The hold as buyers see it, over HTTP and the websocket alike."""
        return {"id": self.id, "qty": self.qty, "state": self.state, "expires_ms": self.expires_ms}

    @classmethod
    def of_record(cls, hold_id: str, record: HoldRecord) -> Hold:
        return cls(id=hold_id, qty=record.qty, expires_ms=record.expires_ms, state=record.state)


@dataclass(frozen=True)
class PaymentTerms:
    hold_id: str
    qty: int
    unit_price: int
    currency: str
    sku_id: int
    shop_id: int
    expires_ms: int
    paid: bool = False  # this attempt sold the hold already (a retry after a crash)
    # A shelf hold's lines (decision 0028); empty for a deal hold, which is one line of qty
    # units at unit_price.
    lines: tuple[Line, ...] = ()
    # A shelf hold's charge as the shelf adds it up: its lines less their discounts, plus
    # shipping less its discount. None for a deal hold.
    total: int | None = None

    @property
    def amount(self) -> int:
        if self.total is not None:
            return self.total
        return self.qty * self.unit_price


@dataclass(frozen=True)
class AdoptedSale:
    """A deal hold's sale as SQL knows it, for ``HoldStore.adopt_sale``."""

    deal_id: int
    hold_id: str
    buyer: str
    qty: int
    unit_price: int
    payment_ref: str
    attempt: str = ""  # the attempt's name in the hold record (checkout.attempt_id)
    shipping: str = ""  # JSON text, as committed


class DealCounters(NamedTuple):
    """A deal's stock counters as stored, before any lapsed hold is returned."""

    quantity: int
    available: int
    held: int
    sold: int


@dataclass(frozen=True)
class DealState:
    quantity: int
    available: int
    held: int
    sold: int
    starts_ms: int
    ends_ms: int
    stopped: bool
    per_buyer_limit: int
    deal_price: int
    currency: str
    server_ms: int

    @property
    def phase(self) -> DealPhase:
        """What a viewer can do now, judged on the server's clock."""
        return phase_at(
            self.server_ms,
            starts_ms=self.starts_ms,
            ends_ms=self.ends_ms,
            stopped=self.stopped,
            available=self.available,
        )

    @property
    def over(self) -> bool:
        """It can sell nothing more: ended, with no hold left held or paying."""
        return self.phase is DealPhase.ENDED and self.held == 0


# Every refusal lua/holds.lua answers, by the word it answers with (the first of its reply).
_SCRIPT_CODES: dict[str, ErrorCode] = {
    code.value: code
    for code in (
        CatalogErrorCode.DEAL_NOT_LIVE,
        CatalogErrorCode.DEAL_ENDED,
        CatalogErrorCode.DEAL_NOT_STARTED,
        CatalogErrorCode.INVALID_QUANTITY,
        CommonErrorCode.RATE_LIMITED,
        CheckoutErrorCode.LIMIT_EXCEEDED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        CheckoutErrorCode.ADDRESS_HOLD_LIMIT,
        CheckoutErrorCode.SOLD_OUT,
        CheckoutErrorCode.INSUFFICIENT_STOCK,
        CheckoutErrorCode.AUCTION_LOT,
        CheckoutErrorCode.HOLD_NOT_FOUND,
        CheckoutErrorCode.HOLD_EXPIRED,
        CheckoutErrorCode.HOLD_RELEASED,
        CheckoutErrorCode.HOLD_ALREADY_PAID,
        CheckoutErrorCode.PAYMENT_IN_PROGRESS,
        CheckoutErrorCode.CHECKOUT_REQUIRED,
    )
}


def script_code(word: str) -> ErrorCode:
    """The code of a refusal from lua/holds.lua, given the word it answered with."""
    return _SCRIPT_CODES[word]


_HOLD_ERRORS: dict[ErrorCode, tuple[type[DomainError], str]] = {
    CheckoutErrorCode.HOLD_NOT_FOUND: (NotFound, "No such hold among yours."),
    CheckoutErrorCode.HOLD_EXPIRED: (
        Conflict,
        "The hold has expired; its units went back on sale.",
    ),
    CheckoutErrorCode.HOLD_RELEASED: (Conflict, "The hold was released."),
    CheckoutErrorCode.HOLD_ALREADY_PAID: (Conflict, "The hold has already been paid."),
    CheckoutErrorCode.PAYMENT_IN_PROGRESS: (Conflict, "A payment for this hold is in progress."),
    CheckoutErrorCode.CHECKOUT_REQUIRED: (
        Conflict,
        "This unit is kept for you from the waitlist: check its SKU out (POST "
        "/api/cart/checkout) to price it and pay.",
    ),
    CatalogErrorCode.DEAL_ENDED: (
        Conflict,
        "The deal was stopped; its held units went back on sale.",
    ),
}


def hold_error(code: ErrorCode, hold_id: str) -> DomainError:
    cls, message = _HOLD_ERRORS[code]
    return cls(message, code=code, hold_id=hold_id)


def reserve_error(result: list[str]) -> DomainError:
    code = script_code(result[0])
    if code is CatalogErrorCode.DEAL_NOT_LIVE:
        return Conflict("The deal is not live.", code=code)
    if code is CatalogErrorCode.DEAL_ENDED:
        return Conflict("The deal has ended.", code=code, ended_ms=int(result[1]))
    if code is CatalogErrorCode.DEAL_NOT_STARTED:
        return Conflict("The deal has not started yet.", code=code, starts_ms=int(result[1]))
    if code is CheckoutErrorCode.LIMIT_EXCEEDED:
        return Conflict(
            "That would take you over the per-buyer limit.",
            code=code,
            limit=int(result[1]),
            already=int(result[2]),
        )
    if code is CheckoutErrorCode.SOLD_OUT:
        return Conflict("Sold out.", code=code, wanted=int(result[1]), left=0)
    if code is CheckoutErrorCode.AUCTION_LOT:
        return Conflict("This unit is sold by auction: bid for it.", code=code)
    if code is CheckoutErrorCode.ACCOUNT_REQUIRED:
        return Forbidden("This deal sells to signed-in accounts only: sign in.", code=code)
    if code is CheckoutErrorCode.INSUFFICIENT_STOCK:
        return Conflict("Not enough left.", code=code, wanted=int(result[1]), left=int(result[2]))
    if code is CommonErrorCode.RATE_LIMITED:
        return throttled(int(result[1]), "reservations")
    if code is CheckoutErrorCode.ADDRESS_HOLD_LIMIT:
        return Conflict(
            "Too many units of this deal are held from your network; pay for or release one, "
            "or wait for holds to lapse.",
            code=code,
            limit=int(result[1]),
            held=int(result[2]),
        )
    return Invalid(
        "The quantity must be a positive whole number.", code=CatalogErrorCode.INVALID_QUANTITY
    )


# Told a deal's id when a call here changed what the deal has left (a hold granted, released,
# restocked): the room of the deal is told at once (decision 0048). Must not block or raise.
StockChanged = Callable[[int], None]


# lc_release's answers after which the deal has units back: released now, or a lapsed hold
# found and closed (its units already counted as back, but its room may still say sold out).
LAPSED_OR_BACK = frozenset({"ok", "hold_expired"})


def _unheard(deal_id: int) -> None:
    """Nobody listens (a worker, a tool, a test): rooms learn of stock from their tick."""


class HoldStore:
    """Every hold, a deal's or a shelf's: the paying steps take either kind of hold id and call
    the library that holds it (a shelf hold's id starts with ``s``)."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        limits: ReserveLimits | None = None,
        shelf: ShelfStore | None = None,
        stock_changed: StockChanged | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keyspace
        self.limits = limits or ReserveLimits()
        self.shelf = shelf or ShelfStore(redis, keyspace, hold_ttl_ms=120_000, pay_ttl_ms=60_000)
        self.stock_changed = stock_changed or _unheard

    async def install(self) -> None:
        """Register the functions. REPLACE makes a newer library win after an upgrade."""
        await self.redis.function_load(LIBRARY, replace=True)
        await self.shelf.install()

    async def _call(self, name: str, deal_id: int, *args: Any) -> Any:
        keys = self.keys.deal(deal_id).function_keys()
        return await self.redis.fcall(name, len(keys), *keys, *args)

    async def load_deal(self, deal: Deal, *, hold_ttl_ms: int, pay_ttl_ms: int) -> bool:
        """Load the deal's terms and stock (once). An auction's lot (decision 0031) is
        sealed: nobody may reserve it; only :meth:`award` holds its unit."""
        terms = {
            "deal": deal.id,
            "sku": deal.sku_id,
            "shop": deal.shop_id,
            "price": deal.deal_price,
            "currency": deal.currency,
            "quantity": deal.quantity,
            "limit": deal.per_buyer_limit,
            "starts": deal.starts_ms,
            "ends": deal.ends_ms,
            "hold_ttl": hold_ttl_ms,
            "pay_ttl": pay_ttl_ms,
            "sealed": int(deal.kind == "lot"),
            "accounts_only": int(deal.accounts_only),
        }
        assert deal.id is not None
        flat = [str(part) for pair in terms.items() for part in pair]
        loaded = await self._call("lc_load_deal", deal.id, *flat)
        if not loaded:
            # Loaded before: fine if it is this deal (a repeated start), wrong if Redis holds a
            # different deal under this id (a reset database, or two sharing one key prefix).
            identity = ["deal", "sku", "shop", "price", "quantity", "starts", "ends"]
            found = await self.redis.hmget(self.keys.deal(deal.id).deal, identity)
            if found != [str(terms[name]) for name in identity]:
                raise Conflict(
                    "Redis already holds a different deal under this id. Is another database "
                    "using the same Redis and LIVECART_REDIS_PREFIX?",
                    code=CheckoutErrorCode.DEAL_STATE_MISMATCH,
                    deal_id=deal.id,
                )
        await self.redis.sadd(self.keys.live_deals, str(deal.id))
        return bool(loaded)

    async def award(
        self, deal_id: int, buyer: str, price: int, request_id: str, hold_ttl_ms: int
    ) -> Hold | None:
        """The auction lot's unit held for ``buyer`` at ``price`` (decision 0031); the same
        ``request_id`` answers the same hold. None while an earlier hold still has the unit."""
        raw = await self._call("lc_award", deal_id, buyer, price, request_id, hold_ttl_ms)
        if raw[0] == "lot_taken":
            return None
        if raw[0] != "ok":  # the lot was stopped (deal_ended), or is no lot (deal_not_live)
            raise Conflict("The auction's lot is not on sale.", code=script_code(raw[0]))
        return Hold(raw[1], 1, int(raw[2]), HoldState.HELD, False)

    async def join_waitlist(self, deal_id: int, buyer: str, *, account: bool = False) -> int:
        """Wait for a unit of the sold-out deal: the buyer's place (from 1). A unit that comes
        back goes to the first waiting, as a hold (``offers_after`` tells who)."""
        raw = await self._call("lc_wait", deal_id, buyer, "a" if account else "g")
        if raw[0] == "ok":
            return int(raw[1])
        if raw[0] == CheckoutErrorCode.NOT_SOLD_OUT:
            raise Conflict(
                "Units are left: reserve one instead.", code=CheckoutErrorCode.NOT_SOLD_OUT
            )
        raise reserve_error([str(part) for part in raw])

    async def leave_waitlist(self, deal_id: int, buyer: str) -> bool:
        return bool(await self._call("lc_unwait", deal_id, buyer))

    async def waitlist_place(self, deal_id: int, buyer: str) -> tuple[int, int]:
        """(the buyer's place, 0 if not waiting; how many wait)."""
        place, waiting = await self._call("lc_waiting", deal_id, buyer)
        return int(place), int(waiting)

    async def offers_after(self, deal_id: int, after: str) -> list[tuple[str, Hold, str]]:
        """Units handed to waiting buyers after stream entry ``after`` ("0" for all): (entry id,
        the hold, its buyer), oldest first."""
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(
                self.keys.deal(deal_id).offers, f"({after}" if after != "0" else "-", "+"
            ),
        )
        return [
            (
                entry,
                Hold(f["hold"], 1, int(f["expires"]), HoldState.HELD),
                f["buyer"],
            )
            for entry, f in entries
        ]

    async def stop_deal(self, deal_id: int) -> list[tuple[str, str]]:
        """Stop selling; returns the held holds that went back, as (hold id, buyer). Payments
        under way finish or fail as they are."""
        flat = await self._call("lc_stop_deal", deal_id)
        return list(zip(flat[0::2], flat[1::2], strict=True))

    async def reserve_many(
        self, deal_id: int, requests: list[ReserveRequest]
    ) -> list[Hold | DomainError]:
        # One line per request in one argument: encoding three arguments per request cost more
        # client CPU than the rest of a reservation. Spaces and newlines cannot occur in these
        # fields (buyer ids are hex, request ids are validated, addresses come from
        # client_address), and are refused here anyway.
        lines = [
            f"{r.buyer} {r.qty} {r.request_id} {r.address} {'a' if r.account else 'g'}\n"
            for r in requests
        ]
        blob = "".join(lines)
        if blob.count("\n") != len(requests) or blob.count(" ") != 4 * len(requests):
            raise ValueError("buyer, request ids and addresses must not hold spaces or newlines")
        raw = await self._call("lc_reserve_many", deal_id, deal_id, blob, *self.limits.argv())
        outcomes = [_reserve_outcome(item.split(" ")) for item in raw]
        if any(isinstance(o, Hold) and not o.replayed for o in outcomes):
            self.stock_changed(deal_id)
        return outcomes

    async def reserve(self, deal_id: int, request: ReserveRequest) -> Hold:
        (outcome,) = await self.reserve_many(deal_id, [request])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def begin_payment(self, hold_id: str, buyer: str, attempt: str = "") -> PaymentTerms:
        if shop_id_of_hold(hold_id) is not None:
            return await self._begin_shelf_payment(hold_id, buyer, attempt)
        deal_id = _deal_of(hold_id)
        raw = await self._call("lc_begin_payment", deal_id, hold_id, buyer, attempt)
        if raw[0] == "hold_expired":  # lapsed, closed now: its room may still say sold out
            self.stock_changed(deal_id)
        if raw[0] not in ("ok", "paid"):
            raise hold_error(script_code(raw[0]), hold_id)
        return PaymentTerms(
            hold_id=hold_id,
            qty=int(raw[1]),
            unit_price=int(raw[2]),
            currency=raw[3],
            sku_id=int(raw[4]),
            shop_id=int(raw[5]),
            expires_ms=int(raw[6]),
            paid=raw[0] == "paid",
        )

    async def _begin_shelf_payment(self, hold_id: str, buyer: str, attempt: str) -> PaymentTerms:
        terms = await self.shelf.begin_payment(hold_id, buyer, attempt)
        if isinstance(terms, str):
            raise hold_error(script_code(terms), hold_id)
        first = terms.lines[0]
        return PaymentTerms(
            hold_id=hold_id,
            qty=terms.qty,
            unit_price=first.unit_price if len(terms.lines) == 1 else 0,
            currency=terms.currency,
            sku_id=first.sku_id,
            shop_id=terms.shop_id,
            expires_ms=terms.expires_ms,
            paid=terms.paid,
            lines=terms.lines,
            total=terms.total,
        )

    async def commit(
        self, hold_id: str, buyer: str, payment_ref: str, attempt: str = "", shipping: str = ""
    ) -> None:
        """paying -> sold; ``shipping`` (JSON text, or empty) travels to the order record."""
        if shop_id_of_hold(hold_id) is not None:
            word = await self.shelf.commit(hold_id, buyer, payment_ref, attempt, shipping)
            if word != "ok":
                raise hold_error(script_code(word), hold_id)
            return
        raw = await self._call(
            "lc_commit", _deal_of(hold_id), hold_id, buyer, payment_ref, attempt, shipping
        )
        if raw[0] != "ok":
            raise hold_error(script_code(raw[0]), hold_id)

    async def payment_failed(self, hold_id: str, buyer: str, attempt: str = "") -> None:
        if shop_id_of_hold(hold_id) is not None:
            await self.shelf.payment_failed(hold_id, buyer, attempt)
            return
        await self._call("lc_payment_failed", _deal_of(hold_id), hold_id, buyer, attempt)

    async def release(self, hold_id: str, buyer: str) -> None:
        if shop_id_of_hold(hold_id) is not None:
            word = await self.shelf.release(hold_id, buyer)
        else:
            deal_id = _deal_of(hold_id)
            word = (await self._call("lc_release", deal_id, hold_id, buyer))[0]
            if word in LAPSED_OR_BACK:
                self.stock_changed(deal_id)
        if word != "ok":
            raise hold_error(script_code(word), hold_id)

    async def get_hold(self, hold_id: str, buyer: str) -> Hold | ShelfHold:
        if shop_id_of_hold(hold_id) is not None:
            held = await self.shelf.get_hold(hold_id, buyer)
            if held is None:
                raise hold_error(CheckoutErrorCode.HOLD_NOT_FOUND, hold_id)
            return held
        raw = await self._call("lc_get_hold", _deal_of(hold_id), hold_id, buyer)
        if not raw:
            raise hold_error(CheckoutErrorCode.HOLD_NOT_FOUND, hold_id)
        return Hold(id=hold_id, state=HoldState(raw[0]), qty=int(raw[1]), expires_ms=int(raw[2]))

    async def live_holds_of(self, deal_id: int, buyer: str, now: int) -> list[Hold]:
        """A buyer's holds still held or paying (for a reconnecting viewer). Read only."""
        keys = self.keys.deal(deal_id)
        ids = cast(list[str], await self.redis.zrangebyscore(keys.expiry, now, "+inf"))
        if not ids:
            return []
        found: list[Hold] = []
        records = cast(list[str | None], await self.redis.hmget(keys.holds, ids))
        for hold_id, raw in zip(ids, records, strict=True):
            if raw is None:
                continue
            record = HoldRecord.parse(raw)
            if record.buyer == buyer and record.state.open:
                found.append(Hold.of_record(hold_id, record))
        return found

    async def units_taken(self, deal_id: int, buyer: str) -> int:
        """Units the buyer holds, is paying for or has bought in the deal: what its per-buyer
        limit counts. Lapsed holds are returned first, so they do not count."""
        await self.expire(deal_id)
        return int(await self.redis.hget(self.keys.deal(deal_id).buyers, buyer) or 0)

    async def expire(self, deal_id: int) -> int:
        return int(await self._call("lc_expire", deal_id))

    async def snapshot(self, deal_id: int) -> DealState | None:
        raw = await self._call("lc_snapshot", deal_id)
        if not raw:
            return None
        q, avail, held, sold, starts, ends, stopped, limit, price, currency, now = raw
        return DealState(
            quantity=int(q),
            available=int(avail),
            held=int(held),
            sold=int(sold),
            starts_ms=int(starts),
            ends_ms=int(ends),
            stopped=stopped == "1",
            per_buyer_limit=int(limit),
            deal_price=int(price),
            currency=currency,
            server_ms=int(now),
        )

    async def restock(self, hold_id: str, units: int, refund_key: str) -> bool:
        """Give a refunded hold's units back to its deal if it can still sell them (True), or
        say it cannot (False: they belong to the SKU). A repeat answers the same."""
        deal_id = deal_id_of_hold(hold_id)
        if deal_id is None:
            return False
        answer = await self._call("lc_restock", deal_id, hold_id, units, refund_key)
        if answer == "deal":
            self.stock_changed(deal_id)
        return bool(answer == "deal")

    async def restock_answers(self, deal_id: int) -> dict[str, str]:
        """What ``lc_restock`` answered for the deal, by refund key ("deal" or "over")."""
        return cast(dict[str, str], await self.redis.hgetall(self.keys.deal(deal_id).restocks))

    async def forget(self, deal_id: int) -> None:
        """Stop sweeping and reading a settled, drained deal; its keys expire after a while, so
        late readers (a buyer looking at an old hold) still get answers for a week."""
        keys = self.keys.deal(deal_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in (*keys.function_keys(), keys.dead_letters):
                pipe.expire(key, DEAL_KEYS_TTL_S)
            pipe.srem(self.keys.live_deals, str(deal_id))
            await pipe.execute()

    async def live_deal_ids(self) -> list[int]:
        members = await self.redis.smembers(self.keys.live_deals)
        return sorted(int(m) for m in members)

    # -- for the audit: the books as Redis holds them, nothing reclaimed or changed first ----

    async def counters(self, deal_id: int) -> DealCounters | None:
        """The deal's stock counters as stored; None if Redis has no such deal."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.deal(deal_id).deal))
        if not raw:
            return None
        return DealCounters(*(int(raw.get(name, 0)) for name in DealCounters._fields))

    async def adopt_sale(self, sale: AdoptedSale, *, announce: bool) -> tuple[str, int]:
        """Make Redis hold a sale that SQL knows was paid for and Redis forgot (decision 0040):
        ("adopted", units), ("agrees", 0), ("oversold", units still available),
        ("foreign_hold", 0) or ("no_deal", 0). With ``announce`` the sale's order.paid entry
        goes on the orders stream (no SQL order yet), as ``commit`` would have put it."""
        raw = await self._call(
            "lc_adopt_sale", sale.deal_id, sale.hold_id, sale.buyer, sale.qty, sale.unit_price,
            sale.payment_ref, sale.attempt, sale.shipping, "1" if announce else "0",
        )  # fmt: skip
        return str(raw[0]), int(raw[1]) if len(raw) > 1 else 0

    async def hold_records(self, deal_id: int) -> dict[str, HoldRecord]:
        """Every hold the deal granted, by id, as its record is now (buyer and attempt too)."""
        records = cast(dict[str, str], await self.redis.hgetall(self.keys.deal(deal_id).holds))
        return {hold_id: HoldRecord.parse(raw) for hold_id, raw in records.items()}

    async def recorded_holds(self, deal_id: int) -> list[Hold]:
        """Every hold the deal granted, in the state its record has now."""
        records = cast(dict[str, str], await self.redis.hgetall(self.keys.deal(deal_id).holds))
        return [Hold.of_record(hold_id, HoldRecord.parse(raw)) for hold_id, raw in records.items()]

    async def ping(self) -> None:
        """Raise unless Redis answers (the readiness check: reserving needs it)."""
        await self.redis.ping()


def _deal_of(hold_id: str) -> int:
    deal_id = deal_id_of_hold(hold_id)
    if deal_id is None:
        raise hold_error(CheckoutErrorCode.HOLD_NOT_FOUND, hold_id)
    return deal_id


def _reserve_outcome(item: list[str]) -> Hold | DomainError:
    if item[0] != "ok":
        return reserve_error(item)
    return Hold(
        id=item[1],
        qty=int(item[2]),
        expires_ms=int(item[3]),
        state=HoldState(item[4]),
        replayed=item[5] == "1",
    )
