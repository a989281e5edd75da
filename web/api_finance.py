"""A seller's finance (decision 0027, docs/money.md "Finance in the seller center"): earnings per
currency, a statement for a period (JSON or CSV), withdrawals and their history. Every figure is
read from the ledger; a withdrawal is ``checkout.payouts``'. The payout method itself is set on
the shop (``PUT /api/shops/{shop}/payout-method``, web/api_catalog.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog import service as catalog
from catalog.error_codes import CatalogErrorCode
from catalog.models import Seller, Shop
from checkout import finance_store
from checkout.error_codes import CheckoutErrorCode
from checkout.models import Payout
from checkout.statements import Earnings, Statement, iso_utc, statement_csv
from kernel.errors import Invalid
from people.roles import Duty
from web import responses as out
from web.auth import seller
from web.error_codes import WebErrorCode
from web.http import JSONResponse, json_body
from web.l10n import minor_digits
from web.routing import ID_SCHEMA, Answer, Api, Param
from web.schemas import MAX_ID, WithdrawalIn
from web.services import services

api = Api()

DAY_MS = 86_400_000
MAX_PERIOD_DAYS = 366  # a year, leap day included: a statement stays a readable size
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant an ISO date writes
MS_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_MS}

SHOP_ID = Param("shop_id", "One of your shops", ID_SCHEMA, required=True)
PERIOD = (
    SHOP_ID,
    Param("from_ms", "The period's start, epoch ms (inclusive)", MS_SCHEMA, required=True),
    Param(
        "to_ms",
        f"The period's end, epoch ms (exclusive): after from_ms, at most {MAX_PERIOD_DAYS} days on",
        MS_SCHEMA,
        required=True,
    ),
)
QUERY_REFUSALS = (WebErrorCode.INVALID_QUERY, CatalogErrorCode.SHOP_NOT_FOUND)
PERIOD_REFUSALS = (*QUERY_REFUSALS, WebErrorCode.INVALID_PERIOD)
CSV_DISPOSITION = Param(
    "Content-Disposition", 'attachment; filename="statement-….csv"', required=True
)


def whole_param(request: Request, name: str, upper: int) -> int:
    """A required whole-number query parameter, 0 to ``upper``."""
    raw = request.query_params.get(name)
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > upper:
        raise Invalid(
            f"Give {name} as a whole number from 0 to {upper}.",
            code=WebErrorCode.INVALID_QUERY,
            param=name,
        )
    return int(raw)


def check_period(from_ms: int, to_ms: int) -> None:
    if to_ms <= from_ms or to_ms - from_ms > MAX_PERIOD_DAYS * DAY_MS:
        raise Invalid(
            f"A statement's period ends after it starts and spans at most {MAX_PERIOD_DAYS} days.",
            code=WebErrorCode.INVALID_PERIOD,
            max_days=MAX_PERIOD_DAYS,
        )


async def _own_shop(request: Request, me: Seller) -> Shop:
    """The query's shop, if it is the seller's (another seller's is answered as a missing one:
    no existence leak)."""
    shop_id = whole_param(request, "shop_id", MAX_ID)
    async with services(request).db.session() as session:
        return await catalog.owned_shop(session, me, shop_id)


def earnings_json(found: Earnings) -> dict[str, Any]:
    return {
        "currency": found.currency,
        "pending": found.pending,
        "available": found.available,
        "paid_out": found.paid_out,
        "withdrawable": found.withdrawable,
    }


def statement_json(statement: Statement) -> dict[str, Any]:
    return {
        "shop_id": statement.shop_id,
        "from_ms": statement.from_ms,
        "to_ms": statement.to_ms,
        "balances": [
            {
                "account": b.account.value,
                "currency": b.currency,
                "opening": b.opening,
                "closing": b.closing,
            }
            for b in statement.balances
        ],
        "entries": [
            {
                "id": line.id,
                "created_ms": line.created_ms,
                "txn": line.txn,
                "account": line.account.value,
                "amount": line.amount,
                "currency": line.currency,
                "reference": line.reference,
            }
            for line in statement.lines
        ],
    }


def payout_json(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "shop_id": payout.shop_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status,
        "destination": payout.destination,
        "provider_ref": payout.provider_ref,
        "utc_day": payout.utc_day,
        "created_ms": payout.created_ms,
        "updated_ms": payout.updated_ms,
    }


async def read_statement(request: Request) -> Statement:
    me = await seller(request)
    shop = await _own_shop(request, me)
    from_ms = whole_param(request, "from_ms", MAX_MS)
    to_ms = whole_param(request, "to_ms", MAX_MS)
    check_period(from_ms, to_ms)
    async with services(request).db.session() as session:
        conn = await session.connection()
        return await finance_store.statement(conn, shop.id or 0, from_ms, to_ms)


@api.route(
    "GET",
    "/api/finance",
    "Your shop's earnings per currency: pending (not yet withdrawable), available, paid out, "
    "and what a withdrawal would take now; and its payout method",
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    query=(SHOP_ID,),
    ok={200: out.FinanceAnswer},
    errors=QUERY_REFUSALS,
)
async def finance(request: Request) -> Response:
    me = await seller(request)
    shop = await _own_shop(request, me)
    async with services(request).db.session() as session:
        found = await finance_store.earnings(await session.connection(), shop.id or 0)
    return JSONResponse(
        {
            "finance": {
                "shop_id": shop.id,
                "payout_method": shop.payout_method,
                "earnings": [earnings_json(e) for e in found],
            }
        }
    )


@api.route(
    "GET",
    "/api/finance/statement",
    "Your shop's statement for a period: every entry of its pending, available and paid-out "
    "accounts, oldest first, and each account's opening and closing balance per currency",
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    query=PERIOD,
    ok={200: out.StatementAnswer},
    errors=PERIOD_REFUSALS,
)
async def statement(request: Request) -> Response:
    return JSONResponse({"statement": statement_json(await read_statement(request))})


@api.route(
    "GET",
    "/api/finance/statement.csv",
    "The same statement's entries as CSV: created_at (ISO 8601, UTC), txn, account, "
    "amount_minor, amount (a decimal in the currency's major units), currency, reference",
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    query=PERIOD,
    ok={
        200: Answer(
            {"type": "string"},
            "The entries, oldest first, after a header row",
            "text/csv",
            headers=(CSV_DISPOSITION,),
        )
    },
    errors=PERIOD_REFUSALS,
)
async def statement_as_csv(request: Request) -> Response:
    found = await read_statement(request)
    # The days the period covers, its last one being the day of its last millisecond.
    first, last = iso_utc(found.from_ms)[:10], iso_utc(found.to_ms - 1)[:10]
    name = f"statement-shop-{found.shop_id}-{first}-to-{last}.csv"
    return Response(
        statement_csv(found.lines, minor_digits),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api.route(
    "POST",
    "/api/finance/withdrawals",
    "Withdraw the whole available balance of a currency to the shop's payout method: one "
    "withdrawal a day per shop and currency (a UTC day; a failed payout does not use it up)",
    body=WithdrawalIn,
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    ok={201: out.PayoutAnswer},
    errors=(
        CatalogErrorCode.SHOP_NOT_FOUND,
        CheckoutErrorCode.NO_PAYOUT_METHOD,
        CheckoutErrorCode.NOTHING_TO_WITHDRAW,
        CheckoutErrorCode.PAYOUT_LIMIT,
    ),
)
async def withdraw(request: Request) -> Response:
    me = await seller(request)
    body = await json_body(request, WithdrawalIn)
    svc = services(request)
    async with svc.db.session() as session:
        await catalog.owned_shop(session, me, body.shop_id)
    payout = await svc.payouts.withdraw(body.shop_id, body.currency, f"seller:{me.id}")
    return JSONResponse({"payout": payout_json(payout)}, status_code=201)


@api.route(
    "GET",
    "/api/finance/payouts",
    "Your shop's withdrawals, newest first (the last 100)",
    auth="seller",
    duty=Duty.MONEY,
    tag="finance",
    query=(SHOP_ID,),
    ok={200: out.PayoutList},
    errors=QUERY_REFUSALS,
)
async def payouts(request: Request) -> Response:
    me = await seller(request)
    shop = await _own_shop(request, me)
    found = await services(request).payouts.of_shop(shop.id or 0)
    return JSONResponse({"payouts": [payout_json(p) for p in found]})
