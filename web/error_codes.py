"""Every error code the HTTP API answers, with its status. Each route declares the codes it can
answer (``errors=`` on ``api.route``); the OpenAPI document lists them per route, grouped by the
statuses here, and docs/protocol.md says what each one means. A route may name no other code.

The status a client sees is decided where the error is raised (its ``DomainError`` class,
``web/http.py``); this table says the same for the document, and the schemathesis run
(tests/test_openapi_fuzz.py) fails if the two ever disagree on a response it sees."""

from __future__ import annotations

from collections.abc import Iterable

_BY_STATUS: dict[int, tuple[str, ...]] = {
    400: ("malformed_json", "invalid_sdp", "sdp_too_large", "no_video", "unsupported_codec"),
    401: ("missing_token", "invalid_token", "session_expired", "seller_token_required"),
    402: ("card_declined", "insufficient_funds"),
    403: ("csrf_failed",),
    404: (
        "not_found",
        "shop_not_found",
        "product_not_found",
        "sku_not_found",
        "deal_not_found",
        "hold_not_found",
        "order_not_found",
        "unknown_action",
        "room_not_found",
        "product_not_in_bag",
        "sku_not_in_bag",
        "chat_not_found",
        "session_not_found",
        "session_ended",
    ),
    405: ("method_not_allowed",),
    409: (
        "deal_not_live",
        "deal_not_started",
        "deal_ended",
        "deal_not_scheduled",
        "deal_state_mismatch",
        "sold_out",
        "insufficient_stock",
        "limit_exceeded",
        "address_hold_limit",
        "address_hold_limit",
        "hold_expired",
        "hold_released",
        "hold_already_paid",
        "payment_in_progress",
        "payment_refunded",
        "request_in_progress",
        "invalid_transition",
        "order_changed",
        "seller_exists",
        "product_has_skus",
        "sku_in_use",
        "stock_unavailable",
        "stock_allocated",
        "stock_changed",
        "product_archived",
        "product_has_live_deal",
        "room_not_live",
        "room_ended",
        "bag_full",
        "room_busy",
        "room_state_mismatch",
        "already_publishing",
        "stream_not_live",
    ),
    413: ("body_too_large",),
    415: ("unsupported_media_type",),
    422: (
        "invalid_request",
        "unknown_field",
        "invalid_status",
        "invalid_price",
        "invalid_window",
        "deal_price_not_below_list",
        "deal_quantity_above_stock",
        "limit_above_quantity",
        "idempotency_key_required",
        "idempotency_key_reused",
        "tracking_required",
        "unexpected_tracking",
        "invalid_card",
        "invalid_title",
        "invalid_countdown",
        "invalid_duration",
        "invalid_limit",
        "invalid_quantity",
        "invalid_user",
    ),
    429: ("rate_limited",),
    503: (
        "service_unavailable",
        "not_ready",
        "too_many_viewers",
        "shutting_down",
        "session_closed",
    ),
}
STATUS: dict[str, int] = {code: status for status, codes in _BY_STATUS.items() for code in codes}

# Codes a whole kind of route can answer, added to the ones a route declares.
BODY = (
    "malformed_json",
    "body_too_large",
    "unsupported_media_type",
    "invalid_request",
    "unknown_field",
)
VIEWER = ("missing_token", "invalid_token", "session_expired")
# A seller signed in on the pages sends a cookie instead: its session may have ended, and a
# request that changes something needs the page's CSRF token.
SELLER = ("missing_token", "invalid_token", "seller_token_required", "session_expired")
SELLER_CHANGE = (*SELLER, "csrf_failed")
PATH = ("not_found",)  # an id out of range, or a value the path cannot take
STORAGE = ("service_unavailable",)  # Redis unreachable


def by_status(codes: Iterable[str]) -> dict[int, list[str]]:
    """The codes grouped by their status, each group in the order given, without repeats."""
    grouped: dict[int, list[str]] = {}
    for code in codes:
        group = grouped.setdefault(STATUS[code], [])
        if code not in group:
            group.append(code)
    return dict(sorted(grouped.items()))


def unknown(codes: Iterable[str]) -> list[str]:
    return [code for code in codes if code not in STATUS]
