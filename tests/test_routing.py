"""The route table (web/routing.py) on a tiny app: one Starlette route per path, whatever
methods were registered on it."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from web.routing import Api


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
