"""The route table (web/routing.py) on a tiny app: one Starlette route per path, whatever
methods were registered on it."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from people.roles import Duty
from web.app import openapi_document
from web.http import http_error_handler
from web.routing import Api
from web.schemas import ProductPatch, SkuPatch


async def read(request: Request) -> Response:
    return PlainTextResponse("read", headers={"X-Handler": "get"})


async def change(request: Request) -> Response:
    return PlainTextResponse("changed")


def client_for(api: Api) -> httpx.AsyncClient:
    app = Starlette(routes=api.routes())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


async def test_head_is_answered_by_get_on_a_path_with_several_methods() -> None:
    api = Api()
    api.route("GET", "/thing", "Read")(read)
    api.route("PATCH", "/thing", "Change")(change)
    async with client_for(api) as client:
        head = await client.head("/thing")
        assert head.status_code == 200
        assert head.headers["x-handler"] == "get"
        assert (await client.patch("/thing")).text == "changed"
        assert (await client.put("/thing")).status_code == 405


async def test_hidden_operations_are_served_but_not_documented() -> None:
    api = Api()
    api.route("GET", "/thing", "Read")(read)
    api.route("PUT", "/thing", "", hidden=True)(change)
    async with client_for(api) as client:
        assert (await client.put("/thing")).text == "changed"
    assert list(api.openapi()["paths"]["/thing"]) == ["get"]


async def test_a_method_the_path_does_not_take_is_a_405_with_allow() -> None:
    api = Api()
    api.route("GET", "/thing", "Read")(read)
    api.route("PATCH", "/thing", "Change")(change)
    app = Starlette(routes=api.routes(), exception_handlers={HTTPException: http_error_handler})
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        refused = await client.put("/thing")
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


class Thing(BaseModel):
    name: str


def test_each_status_is_documented_with_its_codes() -> None:
    api = Api()
    api.route(
        "POST",
        "/things/{thing_id:id}",
        "Change a thing",
        body=Thing,
        auth="seller",
        duty=Duty.LIVE,
        ok={200: Thing},
        errors=("room_not_found", "room_ended", "room_busy"),
    )(change)
    responses = api.openapi()["paths"]["/things/{thing_id}"]["post"]["responses"]
    assert sorted(responses) == [
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "503",
    ]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }

    def codes(status: str) -> list[str]:
        schema = responses[status]["content"]["application/json"]["schema"]
        found: list[str] = schema["properties"]["error"]["properties"]["code"]["enum"]
        return found

    assert codes("404") == ["not_found", "room_not_found"]
    assert codes("409") == ["room_ended", "room_busy"]
    # A cookie-signed-in seller's change needs the token; a role must be allowed to.
    assert codes("403") == ["csrf_failed", "role_forbidden"]
    assert set(codes("422")) == {"invalid_request", "unknown_field"}


def test_a_code_missing_from_the_table_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="not_a_code"):
        Api().route("GET", "/thing", "Read", errors=("not_a_code",))


def test_patch_bodies_are_documented_without_null() -> None:
    """The server refuses null in a partial update; its schema must not offer it."""
    for model in (ProductPatch, SkuPatch):
        schema = json.dumps(model.model_json_schema())
        assert "null" not in schema, model.__name__


def test_every_documented_operation_says_what_it_answers_on_success() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            assert any(s.startswith("2") for s in operation["responses"]), f"{method} {path}"
