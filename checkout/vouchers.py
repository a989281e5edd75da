"""Vouchers (decision 0028, choice 5): their terms in SQL, their budget and claims on the shop's
shelf in Redis, where one function call decides each claim, so a storm of claims takes exactly
the budget. A voucher is put on the shelf when it is made, and again by the first claim that
finds it missing (a crash between the two), from SQL, once (the first load wins)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import service as catalog
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Voucher
from checkout.pricing import BPS, VoucherKind
from checkout.shelf import ShelfStore
from kernel.clock import now_ms
from kernel.errors import Conflict, DomainError, Invalid, NotFound

CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
MAX_BUDGET = 1_000_000
MAX_PER_BUYER = 100


@dataclass(frozen=True)
class VoucherTerms:
    code: str
    kind: VoucherKind
    value: int
    currency: str
    budget: int
    per_buyer: int
    starts_ms: int
    ends_ms: int
    min_spend: int = 0
    max_discount: int | None = None
    room_id: int | None = None
    products: tuple[int, ...] | None = None


def check_terms(terms: VoucherTerms, now: int) -> None:
    """Every rule a voucher's terms must keep, or Invalid naming the first broken one."""
    problems = [
        (CODE.match(terms.code) is None, "code", "2-32 of A-Z, 0-9 and -, not starting with -"),
        (terms.value < 1, "value", "at least 1"),
        (terms.kind is VoucherKind.PERCENT and terms.value > BPS, "value", "at most 10000 bps"),
        (not 1 <= terms.budget <= MAX_BUDGET, "budget", f"1 to {MAX_BUDGET} uses"),
        (not 1 <= terms.per_buyer <= MAX_PER_BUYER, "per_buyer", f"1 to {MAX_PER_BUYER}"),
        (terms.per_buyer > terms.budget, "per_buyer", "at most the budget"),
        (terms.min_spend < 0, "min_spend", "0 or more"),
        (terms.max_discount is not None and terms.max_discount < 1, "max_discount", "1 or more"),
        (terms.ends_ms <= terms.starts_ms, "ends_ms", "after starts_ms"),
        (terms.ends_ms <= now, "ends_ms", "in the future"),
    ]
    for broken, field, rule in problems:
        if broken:
            raise Invalid(
                f"The voucher's {field} must be {rule}.",
                code=CheckoutErrorCode.INVALID_VOUCHER,
                field=field,
            )


async def create(session: AsyncSession, shop_id: int, terms: VoucherTerms) -> Voucher:
    """Write the voucher (the caller checked the shop is the seller's and the room, if any, is
    the shop's). A code the shop has is refused."""
    check_terms(terms, now_ms())
    if terms.products is not None:
        missing = await catalog.foreign_products(session, shop_id, terms.products)
        if missing:
            raise Invalid(
                "Some of those products are not this shop's.",
                code=CheckoutErrorCode.INVALID_VOUCHER,
                field="products",
                product_ids=missing,
            )
    voucher = Voucher(
        shop_id=shop_id,
        code=terms.code,
        kind=terms.kind.value,
        value=terms.value,
        currency=terms.currency,
        min_spend=terms.min_spend,
        max_discount=terms.max_discount,
        budget=terms.budget,
        per_buyer=terms.per_buyer,
        starts_ms=terms.starts_ms,
        ends_ms=terms.ends_ms,
        room_id=terms.room_id,
        products=None if terms.products is None else sorted(set(terms.products)),
        created_ms=now_ms(),
    )
    session.add(voucher)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(
            "The shop has a voucher of that code.",
            code=CheckoutErrorCode.VOUCHER_EXISTS,
            voucher=terms.code,
        ) from None
    await session.refresh(voucher)
    return voucher


async def put_on_shelf(shelf: ShelfStore, voucher: Voucher) -> None:
    await shelf.load_voucher(
        voucher.shop_id,
        voucher.code,
        budget=voucher.budget,
        per_buyer=voucher.per_buyer,
        starts_ms=voucher.starts_ms,
        ends_ms=voucher.ends_ms,
        room_id=voucher.room_id,
    )


async def of_shop(session: AsyncSession, shop_id: int) -> Sequence[Voucher]:
    query = select(Voucher).where(col(Voucher.shop_id) == shop_id).order_by(col(Voucher.id))
    return (await session.exec(query)).all()


async def get(session: AsyncSession, shop_id: int, code: str) -> Voucher:
    found = (
        await session.exec(
            select(Voucher).where(col(Voucher.shop_id) == shop_id, col(Voucher.code) == code)
        )
    ).first()
    if found is None:
        raise NotFound(
            "No such voucher.", code=CheckoutErrorCode.VOUCHER_NOT_FOUND, code_asked=code
        )
    return found


@dataclass(frozen=True)
class Claimed:
    code: str
    left: int  # uses of the budget left
    mine: int  # claims this buyer has made


async def claim(shelf: ShelfStore, voucher: Voucher, buyer: str, room_live: bool) -> Claimed:
    """One claim, decided in Redis; a voucher missing there is put there first (once)."""
    answer = await shelf.claim(voucher.shop_id, voucher.code, buyer, room_live)
    if answer[0] == CheckoutErrorCode.VOUCHER_NOT_FOUND.value:
        await put_on_shelf(shelf, voucher)
        answer = await shelf.claim(voucher.shop_id, voucher.code, buyer, room_live)
    if answer[0] != "ok":
        raise refusal(answer)
    return Claimed(voucher.code, left=int(answer[1]), mine=int(answer[2]))


def refusal(answer: list[str]) -> DomainError:
    """The API's refusal for the shelf's answer to a claim or a redemption."""
    word = answer[0]
    if word == "voucher_not_started":
        return Conflict(
            "The voucher cannot be claimed yet.",
            code=CheckoutErrorCode.VOUCHER_NOT_STARTED,
            starts_ms=int(answer[1]),
        )
    if word == "voucher_ended":
        return Conflict(
            "The voucher has ended.", code=CheckoutErrorCode.VOUCHER_ENDED, ends_ms=int(answer[1])
        )
    if word == "room_not_live":
        return Conflict(
            "This voucher is claimed from its live room, while the room is live.",
            code=CheckoutErrorCode.VOUCHER_ROOM_NOT_LIVE,
            room_id=int(answer[1]),
        )
    if word == "voucher_claimed":
        return Conflict(
            "You have claimed this voucher as often as one buyer may.",
            code=CheckoutErrorCode.VOUCHER_CLAIMED,
            per_buyer=int(answer[1]),
            claimed=int(answer[2]),
        )
    if word == "voucher_exhausted":
        return Conflict(
            "Every use of this voucher has been claimed.",
            code=CheckoutErrorCode.VOUCHER_EXHAUSTED,
        )
    return NotFound("No such voucher.", code=CheckoutErrorCode.VOUCHER_NOT_FOUND)


def check_window(voucher: Voucher, now: int) -> None:
    """Refuse a voucher outside its window, as the shelf refuses a claim then."""
    if now < voucher.starts_ms:
        raise refusal(["voucher_not_started", str(voucher.starts_ms)])
    if now >= voucher.ends_ms:
        raise refusal(["voucher_ended", str(voucher.ends_ms)])


def card_json(voucher: Voucher) -> dict[str, Any]:
    """The voucher as a live room shows it: enough to say what it saves and to claim it."""
    return {
        "shop_id": voucher.shop_id,
        "code": voucher.code,
        "kind": voucher.kind,
        "value": voucher.value,
        "currency": voucher.currency,
        "min_spend": voucher.min_spend,
        "max_discount": voucher.max_discount,
        "budget": voucher.budget,
        "ends_ms": voucher.ends_ms,
        "live_only": voucher.room_id is not None,
    }


def voucher_json(voucher: Voucher, left: int | None) -> dict[str, Any]:
    return {
        "id": voucher.id,
        "shop_id": voucher.shop_id,
        "code": voucher.code,
        "kind": voucher.kind,
        "value": voucher.value,
        "currency": voucher.currency,
        "min_spend": voucher.min_spend,
        "max_discount": voucher.max_discount,
        "budget": voucher.budget,
        "per_buyer": voucher.per_buyer,
        "starts_ms": voucher.starts_ms,
        "ends_ms": voucher.ends_ms,
        "room_id": voucher.room_id,
        "products": voucher.products,
        "left": voucher.budget if left is None else left,
    }
