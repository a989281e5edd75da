"""What the seller center's Finance tab shows (web/templates/_finance.html): one shop's earnings
per currency, its payout method and withdrawals, and its statement for a period of whole UTC
days (this month unless ``?statement_from=`` / ``?statement_to=`` say otherwise), with the link
to the same statement as CSV. Read from the ledger as ``GET /api/finance…`` reads it."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from catalog.models import Shop
from checkout import finance_store
from checkout.ledger import Account
from checkout.models import Payout
from checkout.statements import Earnings, Statement, StatementLine
from kernel.clock import now_ms
from kernel.errors import Invalid
from web.api_finance import DAY_MS, MAX_PERIOD_DAYS, check_period
from web.services import services

PAGE_LINES = 200  # statement lines shown on the page; the CSV has them all
PAGE_PAYOUTS = 20
# The ledger's accounts as the page names them: keys in web/i18n (decision 0047).
ACCOUNT_LABELS = {
    Account.PENDING: "sc_account_pending",
    Account.AVAILABLE: "sc_account_available",
    Account.PAID_OUT: "sc_account_paid_out",
}
DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``first_day`` to ``last_day`` inclusive; ``error`` says why the days
    asked for were not taken (this month is shown instead): a key in web/i18n, whose
    placeholder ``max_days`` the page fills."""

    first_day: str
    last_day: str
    from_ms: int
    to_ms: int
    error: str = ""
    max_days: int = MAX_PERIOD_DAYS


def _ms(day: datetime.date) -> int:
    midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(midnight.timestamp()) * 1000


def this_month(now: int) -> Period:
    today = datetime.datetime.fromtimestamp(now / 1000, datetime.UTC).date()
    first = today.replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    last = following - datetime.timedelta(days=1)
    return Period(first.isoformat(), last.isoformat(), _ms(first), _ms(following))


def period_of(first_day: str | None, last_day: str | None, now: int) -> Period:
    """The days asked for, or this month (with the reason when the days were refused)."""
    if not first_day and not last_day:
        return this_month(now)
    try:
        if not (first_day and last_day and DAY.match(first_day) and DAY.match(last_day)):
            raise ValueError
        first = datetime.date.fromisoformat(first_day)
        last = datetime.date.fromisoformat(last_day)
    except ValueError:
        return replace(this_month(now), error="sc_period_days")
    from_ms, to_ms = _ms(first), _ms(last) + DAY_MS
    try:
        check_period(from_ms, to_ms)
    except Invalid:
        return replace(this_month(now), error="sc_period_invalid")
    return Period(first.isoformat(), last.isoformat(), from_ms, to_ms)


@dataclass(frozen=True)
class FinanceView:
    shop: Shop
    shops: Sequence[Shop]
    earnings: list[Earnings]
    payouts: list[Payout]
    period: Period
    statement: Statement
    lines: tuple[StatementLine, ...]  # the first PAGE_LINES of the statement's
    csv_url: str

    @property
    def more_lines(self) -> int:
        return len(self.statement.lines) - len(self.lines)

    @staticmethod
    def label(account: Account) -> str:
        """The account's name: a key in web/i18n."""
        return ACCOUNT_LABELS[account]


def chosen_shop(shops: Sequence[Shop], wanted: str | None) -> Shop | None:
    """The shop asked for if it is one of these, else the first."""
    return next((s for s in shops if str(s.id) == wanted), shops[0] if shops else None)


async def finance_view(
    request: Request, session: AsyncSession, shops: Sequence[Shop], wanted_shop: str | None
) -> FinanceView | None:
    shop = chosen_shop(shops, request.query_params.get("finance_shop") or wanted_shop)
    if shop is None or shop.id is None:
        return None
    period = period_of(
        request.query_params.get("statement_from"),
        request.query_params.get("statement_to"),
        now_ms(),
    )
    conn = await session.connection()
    earnings = await finance_store.earnings(conn, shop.id)
    statement = await finance_store.statement(conn, shop.id, period.from_ms, period.to_ms)
    payouts = await services(request).payouts.of_shop(shop.id, limit=PAGE_PAYOUTS)
    query = urlencode({"shop_id": shop.id, "from_ms": period.from_ms, "to_ms": period.to_ms})
    return FinanceView(
        shop=shop,
        shops=shops,
        earnings=earnings,
        payouts=payouts,
        period=period,
        statement=statement,
        lines=statement.lines[:PAGE_LINES],
        csv_url=f"/api/finance/statement.csv?{query}",
    )
