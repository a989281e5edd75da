"""The payment provider's webhook (decision 0027; docs/money.md, "Payment webhook contract"). No
token: the ``Livecart-Signature`` over the raw body is the caller's proof, so the body is read
as bytes and checked before it is parsed (a parsed and re-encoded body would not match)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from checkout import webhooks
from checkout.error_codes import CheckoutErrorCode
from checkout.payments import ProviderEvent
from kernel.clock import now_ms
from kernel.errors import CommonErrorCode, Unavailable
from web import responses as out
from web.http import JSONResponse, parse, read_body
from web.routing import Api, Param
from web.schemas import WebhookEventIn
from web.services import services

api = Api()

SIGNATURE = Param(
    webhooks.SIGNATURE_HEADER,
    '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the webhook secret>`; '
    "several `v1` while the secret is rotated, one must match",
    required=True,
)


@api.route(
    "POST",
    "/api/payments/webhook",
    "The payment provider's events, signed: each is applied once (a repeat answers "
    '`"replayed": true` and changes nothing), in any order; other answers than 200 are sent '
    "again by the provider",
    body=WebhookEventIn,
    tag="payments",
    headers=(SIGNATURE,),
    ok={200: out.WebhookAnswer},
    errors=(
        CheckoutErrorCode.INVALID_SIGNATURE,
        CheckoutErrorCode.SIGNATURE_EXPIRED,
        CommonErrorCode.UNAVAILABLE,
    ),
)
async def payment_webhook(request: Request) -> Response:
    svc = services(request)
    raw = await read_body(request)
    webhooks.verify(
        request.headers.get(webhooks.SIGNATURE_HEADER, ""),
        raw,
        svc.settings.webhook_secrets,
        now_ms() // 1000,
        svc.settings.webhook_tolerance_s,
    )
    # Parsed only once the signature holds: a forged body is refused without being read.
    body = parse(WebhookEventIn, raw)
    event = ProviderEvent(body.id, body.type, body.data.object, body.created_ms)
    outcome = await webhooks.apply_event(svc.db, svc.refunds, event)
    if outcome == webhooks.EventOutcome.DEFERRED:
        # A dispute of a charge whose order the pipeline has not written yet: nothing recorded.
        raise Unavailable(
            "The order this event concerns is not written yet; send the event again.",
            code=CommonErrorCode.UNAVAILABLE,
        )
    if outcome == webhooks.EventOutcome.REPLAYED:
        return JSONResponse({"received": True, "replayed": True})
    return JSONResponse({"received": True})
