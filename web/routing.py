"""A small route table that also writes the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web.schemas import MAX_ID

Handler = Callable[[Request], Awaitable[Response]]


class IdConvertor(Convertor[int]):
    """Ids that fit the SQL INTEGER columns: a larger one is a 404, not a database overflow."""

    regex = "[0-9]{1,15}"

    def convert(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:  # no row can have it, and PostgreSQL would refuse the parameter
            raise HTTPException(404)
        return number

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())

AUTH_SCHEMES = {
    "seller": "Seller API token from `livecart create-seller`",
    "viewer": "Guest session token from `POST /api/session`",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    handler: Handler
    body: type[BaseModel] | None
    auth: str | None
    tag: str
    headers: tuple[str, ...] = ()
    # Served but left out of the OpenAPI document (a 405 that only names the allowed methods).
    hidden: bool = False


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        body: type[BaseModel] | None = None,
        auth: str | None = None,
        tag: str = "api",
        headers: tuple[str, ...] = (),
        hidden: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(method, path, summary, handler, body, auth, tag, headers, hidden)
            )
            return handler

        return register

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Handler]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = op.handler
        return [
            Route(path, _dispatch(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for op in self.operations:
            if op.hidden:
                continue
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", op.path)
            error = {"$ref": "#/components/responses/Error"}
            entry: dict[str, Any] = {
                "summary": op.summary,
                "tags": [op.tag],
                "responses": {"default": error},
            }
            params = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in re.findall(r"\{(\w+)", op.path)
            ]
            params += [
                {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                for h in op.headers
            ]
            if params:
                entry["parameters"] = params
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": op.body.model_json_schema()}},
                }
            if op.auth:
                entry["security"] = [{op.auth: []}]
            paths.setdefault(path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": "livecart", "version": "1"},
            "paths": paths,
            "components": {
                "securitySchemes": {
                    name: {"type": "http", "scheme": "bearer", "description": d}
                    for name, d in AUTH_SCHEMES.items()
                },
                "responses": {
                    "Error": {
                        "description": "An error",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    }
                },
            },
        }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
                "request_id": {"type": "string"},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}


def _dispatch(methods: dict[str, Handler]) -> Handler:
    if len(methods) == 1:
        return next(iter(methods.values()))

    async def dispatch(request: Request) -> Response:
        # Starlette lets HEAD through wherever GET is allowed: answer it as GET (the server
        # sends no body), unless the path registered its own HEAD.
        handler = methods.get(request.method) or methods["GET"]
        return await handler(request)

    return dispatch
