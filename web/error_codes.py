"""The HTTP edge's own error codes, and every code's HTTP status (or that only the websocket
carries it). Each route declares the codes it can answer (``errors=`` on ``api.route``); the
OpenAPI document lists them per route, grouped by the statuses here, and docs/protocol.md says
what each one means. A route may name no other code. Codes are enum members, one enum per
package (decision 0021); tests/test_error_codes.py checks each has its status here.

The status a client sees is decided where the error is raised (its ``DomainError`` class,
``web/http.py``); this table says the same for the document, and the schemathesis run
(tests/test_openapi_fuzz.py) fails if the two ever disagree on a response it sees."""

from __future__ import annotations

from collections.abc import Iterable

from catalog.error_codes import CatalogErrorCode
from checkout.error_codes import CheckoutErrorCode
from kernel.errors import CommonErrorCode, ErrorCode
from live.error_codes import LiveErrorCode
from people.error_codes import PeopleErrorCode


class WebErrorCode(ErrorCode):
    """Refusals at the HTTP edge: the request's form, the seller's page session, and the
    server's own state."""

    METHOD_NOT_ALLOWED = "method_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED_FORM = "malformed_form"  # a seller-center form that is not UTF-8
    INVALID_STATUS = "invalid_status"  # a ?status= no deal, order or room has
    INVALID_SORT = "invalid_sort"  # a ?sort= the order list does not know
    # The seller center's shipments CSV: the file as a whole, then one of its rows.
    MALFORMED_CSV = "malformed_csv"
    MALFORMED_CSV_ROW = "malformed_csv_row"
    INVALID_ORDER_ID = "invalid_order_id"
    # Query parameters: one missing or malformed, and a statement's period (the finance routes)
    INVALID_QUERY = "invalid_query"
    INVALID_PERIOD = "invalid_period"
    SESSION_EXPIRED = "session_expired"
    SELLER_TOKEN_REQUIRED = "seller_token_required"
    ACCOUNT_TOKEN_REQUIRED = "account_token_required"
    CSRF_FAILED = "csrf_failed"
    SERVICE_UNAVAILABLE = "service_unavailable"  # Redis unreachable
    NOT_READY = "not_ready"  # /readyz
    INTERNAL_ERROR = "internal_error"  # a bug: the 500 answer
    HTTP_ERROR = "http_error"  # a refusal of Starlette's own other than 404 and 405


# Every package's codes, in the order docs/protocol.md lists them.
ENUMS: tuple[type[ErrorCode], ...] = (
    CommonErrorCode,
    WebErrorCode,
    CatalogErrorCode,
    CheckoutErrorCode,
    LiveErrorCode,
    PeopleErrorCode,
)

_BY_STATUS: dict[int, tuple[ErrorCode, ...]] = {
    400: (
        CommonErrorCode.ERROR,  # a DomainError of no kind: web/http.py's status_of says 400
        CommonErrorCode.MALFORMED_JSON,
        WebErrorCode.MALFORMED_FORM,
        CheckoutErrorCode.INVALID_SIGNATURE,
        CheckoutErrorCode.SIGNATURE_EXPIRED,
        WebErrorCode.MALFORMED_CSV,
        WebErrorCode.HTTP_ERROR,  # Starlette's form parser's; no route reads multipart
        LiveErrorCode.INVALID_SDP,
        LiveErrorCode.SDP_TOO_LARGE,
        LiveErrorCode.NO_VIDEO,
        LiveErrorCode.UNSUPPORTED_CODEC,
    ),
    401: (
        CommonErrorCode.UNAUTHORIZED,
        CommonErrorCode.MISSING_TOKEN,
        CommonErrorCode.INVALID_TOKEN,
        WebErrorCode.SESSION_EXPIRED,
        WebErrorCode.SELLER_TOKEN_REQUIRED,
        WebErrorCode.ACCOUNT_TOKEN_REQUIRED,
        PeopleErrorCode.WRONG_PASSWORD,
        PeopleErrorCode.PASSKEY_UNKNOWN,
        PeopleErrorCode.PASSKEY_REJECTED,
        PeopleErrorCode.PASSKEY_SIGN_COUNT,
    ),
    402: (
        CommonErrorCode.PAYMENT_FAILED,
        CheckoutErrorCode.CARD_DECLINED,
        CheckoutErrorCode.INSUFFICIENT_FUNDS,
    ),
    403: (
        CommonErrorCode.FORBIDDEN,
        WebErrorCode.CSRF_FAILED,
        CheckoutErrorCode.ACCOUNT_REQUIRED,
        PeopleErrorCode.ROLE_FORBIDDEN,
        PeopleErrorCode.INVITATION_EMAIL_MISMATCH,
        PeopleErrorCode.NOT_ON_STAFF,
    ),
    404: (
        CommonErrorCode.NOT_FOUND,
        LiveErrorCode.AUCTION_NOT_FOUND,
        LiveErrorCode.GIVEAWAY_NOT_FOUND,
        LiveErrorCode.SELLER_NOT_FOUND,
        CheckoutErrorCode.NO_PAYMENT_METHOD,
        PeopleErrorCode.MEMBER_NOT_FOUND,
        PeopleErrorCode.TOKEN_NOT_FOUND,
        PeopleErrorCode.INVITATION_INVALID,
        CatalogErrorCode.SHOP_NOT_FOUND,
        CatalogErrorCode.PRODUCT_NOT_FOUND,
        CatalogErrorCode.SKU_NOT_FOUND,
        CatalogErrorCode.PLAN_NOT_FOUND,
        CheckoutErrorCode.VOUCHER_NOT_FOUND,
        CheckoutErrorCode.PROMOTION_NOT_FOUND,
        CatalogErrorCode.DEAL_NOT_FOUND,
        CheckoutErrorCode.HOLD_NOT_FOUND,
        CheckoutErrorCode.ORDER_NOT_FOUND,
        CheckoutErrorCode.REQUEST_NOT_FOUND,
        CheckoutErrorCode.UNKNOWN_ACTION,
        LiveErrorCode.ROOM_NOT_FOUND,
        LiveErrorCode.PRODUCT_NOT_IN_BAG,
        LiveErrorCode.SKU_NOT_IN_BAG,
        LiveErrorCode.CHAT_NOT_FOUND,
        LiveErrorCode.SESSION_NOT_FOUND,
        LiveErrorCode.SESSION_ENDED,
        PeopleErrorCode.ADDRESS_NOT_FOUND,
        PeopleErrorCode.PASSKEY_NOT_FOUND,
    ),
    405: (WebErrorCode.METHOD_NOT_ALLOWED,),
    409: (
        CommonErrorCode.CONFLICT,
        PeopleErrorCode.ALREADY_MEMBER,
        PeopleErrorCode.OWNER_FIXED,
        PeopleErrorCode.TOO_MANY_TOKENS,
        CatalogErrorCode.DEAL_NOT_LIVE,
        CatalogErrorCode.DEAL_NOT_STARTED,
        CatalogErrorCode.DEAL_ENDED,
        CatalogErrorCode.DEAL_NOT_SCHEDULED,
        CatalogErrorCode.PLAN_ENDED,
        CheckoutErrorCode.DEAL_STATE_MISMATCH,
        CheckoutErrorCode.SOLD_OUT,
        CheckoutErrorCode.INSUFFICIENT_STOCK,
        CheckoutErrorCode.CART_EMPTY,
        CheckoutErrorCode.CART_FULL,
        CheckoutErrorCode.CART_SPANS_SHOPS,
        CheckoutErrorCode.MIXED_CURRENCIES,
        CheckoutErrorCode.QUOTE_CHANGED,
        CheckoutErrorCode.VOUCHER_EXISTS,
        CheckoutErrorCode.VOUCHER_NOT_STARTED,
        CheckoutErrorCode.VOUCHER_ENDED,
        CheckoutErrorCode.VOUCHER_EXHAUSTED,
        CheckoutErrorCode.VOUCHER_CLAIMED,
        CheckoutErrorCode.VOUCHER_ROOM_NOT_LIVE,
        CheckoutErrorCode.VOUCHER_NOT_CLAIMED,
        CheckoutErrorCode.VOUCHER_USED,
        CheckoutErrorCode.VOUCHER_MIN_SPEND,
        CheckoutErrorCode.VOUCHER_NOT_APPLICABLE,
        CheckoutErrorCode.LIMIT_EXCEEDED,
        CheckoutErrorCode.ADDRESS_HOLD_LIMIT,
        CheckoutErrorCode.HOLD_EXPIRED,
        CheckoutErrorCode.HOLD_RELEASED,
        CheckoutErrorCode.CHECKOUT_REQUIRED,
        CheckoutErrorCode.HOLD_ALREADY_PAID,
        CheckoutErrorCode.PAYMENT_IN_PROGRESS,
        CheckoutErrorCode.PAYMENT_REFUNDED,
        CheckoutErrorCode.REQUEST_IN_PROGRESS,
        CheckoutErrorCode.INVALID_TRANSITION,
        CheckoutErrorCode.ORDER_CHANGED,
        CheckoutErrorCode.REFUND_EXCEEDS_PAID,
        CheckoutErrorCode.ORDER_NOT_REFUNDABLE,
        CheckoutErrorCode.ORDER_DISPUTED,
        CheckoutErrorCode.PROVIDER_REFUSED,
        CheckoutErrorCode.RETURN_OPEN,
        CheckoutErrorCode.RETURN_WINDOW_CLOSED,
        CheckoutErrorCode.CANCEL_REQUESTED,
        CheckoutErrorCode.NOTHING_TO_WITHDRAW,
        CheckoutErrorCode.NO_PAYOUT_METHOD,
        CheckoutErrorCode.PAYOUT_LIMIT,
        CatalogErrorCode.SELLER_EXISTS,
        CatalogErrorCode.HANDLE_TAKEN,
        PeopleErrorCode.EMAIL_TAKEN,
        PeopleErrorCode.GUEST_CLAIMED,
        PeopleErrorCode.TOO_MANY_ADDRESSES,
        PeopleErrorCode.PASSKEY_EXISTS,
        PeopleErrorCode.PASSKEYS_UNAVAILABLE,
        CatalogErrorCode.PRODUCT_HAS_SKUS,
        CatalogErrorCode.SKU_IN_USE,
        CatalogErrorCode.STOCK_UNAVAILABLE,
        CatalogErrorCode.STOCK_ALLOCATED,
        CatalogErrorCode.STOCK_CHANGED,
        CatalogErrorCode.PRODUCT_ARCHIVED,
        CatalogErrorCode.PRODUCT_HAS_LIVE_DEAL,
        CatalogErrorCode.VARIANT_EXISTS,
        CatalogErrorCode.OPTIONS_IN_USE,
        LiveErrorCode.ROOM_NOT_LIVE,
        LiveErrorCode.ROOM_ENDED,
        LiveErrorCode.ROOM_NOT_SCHEDULED,
        LiveErrorCode.BAG_FULL,
        LiveErrorCode.ROOM_BUSY,
        LiveErrorCode.ROOM_STATE_MISMATCH,
        LiveErrorCode.ALREADY_PUBLISHING,
        LiveErrorCode.STREAM_NOT_LIVE,
        LiveErrorCode.AUCTION_CLOSED,
        LiveErrorCode.BID_TOO_LOW,
        LiveErrorCode.BID_NOT_HIGHER,
        LiveErrorCode.SHILL_BID,
        LiveErrorCode.MUTED,
        LiveErrorCode.BANNED,
        LiveErrorCode.NO_BUY_NOW,
        LiveErrorCode.BUY_NOW_GONE,
        LiveErrorCode.GIVEAWAY_CLOSED,
        LiveErrorCode.GIVEAWAY_OPEN,
        LiveErrorCode.NOT_ELIGIBLE,
        LiveErrorCode.PAYMENT_METHOD_REQUIRED,
        LiveErrorCode.UNPAID_WIN,
        CheckoutErrorCode.AUCTION_LOT,
        CheckoutErrorCode.NOT_SOLD_OUT,
    ),
    413: (WebErrorCode.BODY_TOO_LARGE,),
    415: (WebErrorCode.UNSUPPORTED_MEDIA_TYPE,),
    422: (
        CommonErrorCode.INVALID_REQUEST,
        LiveErrorCode.INVALID_AUCTION,
        LiveErrorCode.INVALID_GIVEAWAY,
        LiveErrorCode.INVALID_KEYWORDS,
        CommonErrorCode.UNKNOWN_FIELD,
        CheckoutErrorCode.INVALID_VOUCHER,
        WebErrorCode.INVALID_STATUS,
        WebErrorCode.INVALID_SORT,
        WebErrorCode.MALFORMED_CSV_ROW,
        WebErrorCode.INVALID_ORDER_ID,
        WebErrorCode.INVALID_QUERY,
        WebErrorCode.INVALID_PERIOD,
        CatalogErrorCode.INVALID_PRICE,
        CatalogErrorCode.INVALID_WINDOW,
        CatalogErrorCode.DEAL_PRICE_NOT_BELOW_LIST,
        CatalogErrorCode.DEAL_QUANTITY_ABOVE_STOCK,
        CatalogErrorCode.LIMIT_ABOVE_QUANTITY,
        CatalogErrorCode.INVALID_COUNTDOWN,
        CatalogErrorCode.INVALID_DURATION,
        CatalogErrorCode.INVALID_LIMIT,
        CatalogErrorCode.INVALID_QUANTITY,
        CatalogErrorCode.INVALID_VARIANT,
        CatalogErrorCode.INVALID_SHIPPING_RULE,
        CatalogErrorCode.INVALID_PLAN,
        CatalogErrorCode.DEAL_PRICE_BELOW_PLAN,
        CheckoutErrorCode.INVALID_PROMOTION,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REQUIRED,
        CheckoutErrorCode.IDEMPOTENCY_KEY_REUSED,
        CheckoutErrorCode.TRACKING_REQUIRED,
        CheckoutErrorCode.UNEXPECTED_TRACKING,
        CheckoutErrorCode.TOO_MANY_SHIPMENTS,
        CheckoutErrorCode.INVALID_CARD,
        CheckoutErrorCode.INVALID_AMOUNT,
        CheckoutErrorCode.RESTOCK_EXCEEDS_UNITS,
        CheckoutErrorCode.INVALID_REASON,
        CheckoutErrorCode.INVALID_PHOTOS,
        CheckoutErrorCode.INVALID_UNITS,
        LiveErrorCode.INVALID_TITLE,
        LiveErrorCode.INVALID_USER,
        PeopleErrorCode.INVALID_EMAIL,
        PeopleErrorCode.WEAK_PASSWORD,
        PeopleErrorCode.RESET_INVALID,
        PeopleErrorCode.PASSKEY_CHALLENGE_INVALID,
        PeopleErrorCode.PASSKEY_NOT_VERIFIED,
    ),
    429: (CommonErrorCode.RATE_LIMITED,),
    500: (WebErrorCode.INTERNAL_ERROR,),
    503: (
        CommonErrorCode.UNAVAILABLE,
        WebErrorCode.SERVICE_UNAVAILABLE,
        WebErrorCode.NOT_READY,
        LiveErrorCode.TOO_MANY_VIEWERS,
        LiveErrorCode.SHUTTING_DOWN,
        LiveErrorCode.SESSION_CLOSED,
    ),
}
STATUS: dict[ErrorCode, int] = {
    code: status for status, codes in _BY_STATUS.items() for code in codes
}

# Codes only a room's websocket (or its stream.failed event) carries: no HTTP call answers them.
WEBSOCKET_ONLY: frozenset[ErrorCode] = frozenset(
    {
        LiveErrorCode.DEAL_NOT_IN_ROOM,
        LiveErrorCode.EMPTY_CHAT,
        LiveErrorCode.CHAT_TOO_LONG,
        LiveErrorCode.INVALID_CHAT,
        LiveErrorCode.CHAT_RATE_LIMITED,
        LiveErrorCode.NOTHING_PINNED,
        LiveErrorCode.VARIANT_REQUIRED,
        LiveErrorCode.UNKNOWN_VARIANT,
        LiveErrorCode.INVALID_CLAIM,
        LiveErrorCode.MALFORMED_MESSAGE,
        LiveErrorCode.UNKNOWN_TYPE,
        LiveErrorCode.INVALID_FIELD,
        LiveErrorCode.UNSUPPORTED_PROTOCOL,
        LiveErrorCode.HELLO_REQUIRED,
        LiveErrorCode.ALREADY_JOINED,
        LiveErrorCode.VIEWER_SESSION_REQUIRED,
        LiveErrorCode.ICE_FAILED,
        LiveErrorCode.DTLS_FAILED,
        LiveErrorCode.CONNECT_TIMEOUT,
    }
)

# Codes a whole kind of route can answer, added to the ones a route declares.
BODY = (
    CommonErrorCode.MALFORMED_JSON,
    WebErrorCode.BODY_TOO_LARGE,
    WebErrorCode.UNSUPPORTED_MEDIA_TYPE,
    CommonErrorCode.INVALID_REQUEST,
    CommonErrorCode.UNKNOWN_FIELD,
)
VIEWER = (
    CommonErrorCode.MISSING_TOKEN,
    CommonErrorCode.INVALID_TOKEN,
    WebErrorCode.SESSION_EXPIRED,
)
# An account's own routes: a guest token is not enough.
ACCOUNT = (*VIEWER, WebErrorCode.ACCOUNT_TOKEN_REQUIRED)
# A seller signed in on the pages sends a cookie instead: its session may have ended, and a
# request that changes something needs the page's CSRF token.
SELLER = (
    CommonErrorCode.MISSING_TOKEN,
    CommonErrorCode.INVALID_TOKEN,
    WebErrorCode.SELLER_TOKEN_REQUIRED,
    WebErrorCode.SESSION_EXPIRED,
)
SELLER_CHANGE = (*SELLER, WebErrorCode.CSRF_FAILED)
PATH = (CommonErrorCode.NOT_FOUND,)  # an id out of range, or a value the path cannot take
STORAGE = (WebErrorCode.SERVICE_UNAVAILABLE,)  # Redis unreachable


def by_status(codes: Iterable[ErrorCode]) -> dict[int, list[ErrorCode]]:
    """The codes grouped by their status, each group in the order given, without repeats."""
    grouped: dict[int, list[ErrorCode]] = {}
    for code in codes:
        group = grouped.setdefault(STATUS[code], [])
        if code not in group:
            group.append(code)
    return dict(sorted(grouped.items()))


def unknown(codes: Iterable[ErrorCode]) -> list[ErrorCode]:
    return [code for code in codes if code not in STATUS]
