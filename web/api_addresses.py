"""A signed-in buyer's saved shipping addresses over HTTP (issue 20): list, add, replace,
delete and choose the default the checkout sheet is prefilled from. The rules (ten at most,
one default) are people/addresses.py's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from people import addresses
from people.error_codes import PeopleErrorCode
from people.models import SavedAddress
from web import responses as out
from web.api_accounts import signed_in_account
from web.http import JSONResponse, parse, read_body
from web.routing import Answer, Api
from web.schemas import AddressIn
from web.services import services

api = Api()
MINE = "/api/accounts/me/addresses"
ONE = MINE + "/{address_id:id}"
NOT_FOUND = (PeopleErrorCode.ADDRESS_NOT_FOUND,)


@api.route(
    "GET",
    MINE,
    "Your saved addresses, the default first",
    auth="account",
    tag="identity",
    ok={200: out.SavedAddressList},
)
async def list_addresses(request: Request) -> Response:
    return await _list(request, await _account_id(request))


@api.route(
    "POST",
    MINE,
    "Save an address (ten at most); your first is the default, as is one sent with `default: true`",
    body=AddressIn,
    auth="account",
    tag="identity",
    ok={201: out.SavedAddressAnswer},
    errors=(PeopleErrorCode.TOO_MANY_ADDRESSES,),
)
async def add_address(request: Request) -> Response:
    body = parse(AddressIn, await read_body(request))
    account_id = await _account_id(request)
    async with services(request).db.session() as session:
        saved = await addresses.add(session, account_id, _address(body), make_default=body.default)
    return JSONResponse({"address": address_json(saved)}, status_code=201)


@api.route(
    "PUT",
    ONE,
    "Replace one of your addresses; `default: true` also makes it the default",
    body=AddressIn,
    auth="account",
    tag="identity",
    ok={200: out.SavedAddressAnswer},
    errors=NOT_FOUND,
)
async def replace_address(request: Request) -> Response:
    body = parse(AddressIn, await read_body(request))
    account_id = await _account_id(request)
    async with services(request).db.session() as session:
        saved = await addresses.replace(
            session,
            account_id,
            request.path_params["address_id"],
            _address(body),
            make_default=body.default,
        )
    return JSONResponse({"address": address_json(saved)})


@api.route(
    "DELETE",
    ONE,
    "Delete one of your addresses; when it was the default, the newest left becomes it",
    auth="account",
    tag="identity",
    ok={204: Answer(description="Deleted")},
    errors=NOT_FOUND,
)
async def delete_address(request: Request) -> Response:
    account_id = await _account_id(request)
    async with services(request).db.session() as session:
        await addresses.remove(session, account_id, request.path_params["address_id"])
    return Response(status_code=204)


@api.route(
    "POST",
    ONE + "/default",
    "Make one of your addresses the default: your addresses, the default first",
    auth="account",
    tag="identity",
    ok={200: out.SavedAddressList},
    errors=NOT_FOUND,
)
async def choose_default(request: Request) -> Response:
    account_id = await _account_id(request)
    async with services(request).db.session() as session:
        await addresses.choose_default(session, account_id, request.path_params["address_id"])
    return await _list(request, account_id)


async def _account_id(request: Request) -> int:
    account = await signed_in_account(request, services(request))
    assert account.id is not None  # read from SQL
    return account.id


async def _list(request: Request, account_id: int) -> Response:
    async with services(request).db.session() as session:
        found = await addresses.addresses_of(session, account_id)
    return JSONResponse({"addresses": [address_json(a) for a in found]})


def _address(body: AddressIn) -> addresses.Address:
    return addresses.Address(
        name=body.name,
        line1=body.line1,
        line2=body.line2,
        city=body.city,
        postal_code=body.postal_code,
        country=body.country,
    )


def address_json(saved: SavedAddress) -> dict[str, object]:
    return {
        "id": saved.id,
        "name": saved.name,
        "line1": saved.line1,
        "line2": saved.line2,
        "city": saved.city,
        "postal_code": saved.postal_code,
        "country": saved.country,
        "is_default": saved.is_default,
        "created_ms": saved.created_ms,
    }
