"""Buyers' requests as the API shows them (``out.ReturnRequest``), and as the seller center's
Returns section lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkout import order_store, return_store
from checkout.models import Order, ReturnEvent, ReturnRequest
from checkout.order_store import ItemLine
from checkout.return_states import OPEN_REQUESTS, RequestKind, ReturnStatus
from checkout.returns import DAY_MS, HOUR_MS, RequestWindows
from kernel.db import Database
from web.settings import Settings


def request_windows(settings: Settings) -> RequestWindows:
    """The request rules' windows from the settings (``LIVECART_RETURN_*``)."""
    return RequestWindows(
        return_window_ms=round(settings.return_window_days * DAY_MS),
        response_ms=round(settings.return_response_hours * HOUR_MS),
        ship_back_ms=round(settings.return_ship_back_days * DAY_MS),
        receive_ms=round(settings.return_receive_days * DAY_MS),
    )


def request_json(
    request: ReturnRequest, currency: str, events: Sequence[ReturnEvent] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request.id,
        "order_id": request.order_id,
        "kind": request.kind,
        "reason": request.reason,
        "note": request.note,
        "photos": list(request.photos),
        "units": request.units,
        "amount": request.amount,
        "offer_amount": request.offer_amount,
        "currency": currency,
        "status": request.status,
        "answer": request.answer,
        "carrier": request.carrier,
        "tracking_number": request.tracking_number,
        "refund_id": request.refund_id,
        "created_ms": request.created_ms,
        "updated_ms": request.updated_ms,
    }
    if events is not None:
        body["events"] = [
            {
                "from": e.from_status,
                "to": e.to_status,
                "at_ms": e.at_ms,
                "actor": e.actor,
                "note": e.note,
            }
            for e in events
        ]
    return body


async def with_requests(
    db: Database, orders: Sequence[Order], bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each order's JSON (``bodies``, in the order of ``orders``) with its open or newest
    request, when it has one: what a buyer's views show."""
    latest = await return_store.latest_of_orders(db, [o.id for o in orders if o.id is not None])
    for order, body in zip(orders, bodies, strict=True):
        found = latest.get(order.id or 0)
        if found is not None:
            body["request"] = request_json(found, order.currency)
    return bodies


# -- the seller center's Returns section --------------------------------------------------------

# Each kind's label: its key in web/i18n/*.json.
KIND_LABELS = {
    RequestKind.CANCEL: "sc_kind_cancel",
    RequestKind.REFUND_ONLY: "sc_kind_refund_only",
    RequestKind.RETURN: "sc_kind_return",
}


@dataclass(frozen=True)
class ReturnRow:
    """One open request as its row shows it, with the answers it can take now."""

    request: ReturnRequest
    order: Order
    line: ItemLine | None
    kind_label: str
    can_answer: bool  # approve, reject, and (after delivery) offer
    can_offer: bool
    can_receive: bool


async def returns_view(db: Database, shop_ids: Sequence[int]) -> list[ReturnRow]:
    """The shops' open requests, the oldest first (the most urgent to answer)."""
    found = await return_store.of_shops_in(db, shop_ids, [s.value for s in OPEN_REQUESTS])
    async with db.session() as session:
        lines = await order_store.item_lines(session, [o.sku_id for _, o in found])
    rows = []
    for request, order in found:
        waiting = request.status == ReturnStatus.REQUESTED
        rows.append(
            ReturnRow(
                request=request,
                order=order,
                line=lines.get(order.sku_id),
                kind_label=KIND_LABELS[RequestKind(request.kind)],
                can_answer=waiting,
                can_offer=waiting and request.kind != RequestKind.CANCEL,
                can_receive=request.status == ReturnStatus.SHIPPED_BACK,
            )
        )
    return rows
