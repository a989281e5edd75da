"""A buyer's card on file (decision 0031): bidding on an auction needs one, and a win is
charged to it at once, so a winner cannot walk away for free. The card lives with the payment
provider (the sandbox here); livecart keeps only the provider's method id."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from checkout.error_codes import CheckoutErrorCode
from kernel.errors import NotFound
from web import responses as out
from web.auth import viewer
from web.http import JSONResponse, json_body
from web.routing import Api
from web.schemas import PaymentMethodIn
from web.services import services

api = Api()


@api.route(
    "PUT",
    "/api/payment-method",
    "Keep a card on file (and a shipping address for what it pays)",
    body=PaymentMethodIn,
    auth="viewer",
    tag="checkout",
    ok={200: out.PaymentMethodAnswer},
    errors=(CheckoutErrorCode.INVALID_CARD,),
)
async def save(request: Request) -> Response:
    svc = services(request)
    buyer = viewer(request)
    body = await json_body(request, PaymentMethodIn)
    shipping = orjson.dumps(body.shipping.model_dump()).decode() if body.shipping else ""
    method = await svc.payments.save_method(buyer, body.card, shipping)
    return JSONResponse({"payment_method": {"id": method.id, "last4": method.last4}})


@api.route(
    "GET",
    "/api/payment-method",
    "Your card on file",
    auth="viewer",
    tag="checkout",
    ok={200: out.PaymentMethodAnswer},
    errors=(CheckoutErrorCode.NO_PAYMENT_METHOD,),
)
async def show(request: Request) -> Response:
    svc = services(request)
    method = await svc.payments.method_of(viewer(request))
    if method is None:
        raise NotFound("No card on file.", code=CheckoutErrorCode.NO_PAYMENT_METHOD)
    return JSONResponse({"payment_method": {"id": method.id, "last4": method.last4}})
