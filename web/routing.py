"""A small route table that also writes the OpenAPI document, so the two cannot drift apart.

Each route declares, next to its handler, everything the document says about it: the body it
takes, its query and header parameters, what it answers on success (``ok``: status to a
pydantic model in web/responses.py, or an ``Answer``) and the error codes it can answer
(``errors``, from web/error_codes.py). Codes every route of a kind answers (a bad body, a
missing token, an id out of range, Redis unreachable) are added from what the route declares."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kernel.errors import ErrorCode
from people.error_codes import PeopleErrorCode
from people.roles import Duty, Role, may
from web import error_codes
from web.auth import as_seller, authorize
from web.cookies import SAFE_METHODS
from web.error_codes import WebErrorCode
from web.schemas import MAX_ID

Handler = Callable[[Request], Awaitable[Response]]
JsonSchema = dict[str, Any]


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
    "viewer": "Guest session token from `POST /api/session`, or an account's",
    "account": "Account session token from `POST /api/accounts` or `/api/accounts/sign-in`",
}
ID_SCHEMA: JsonSchema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
STRING: JsonSchema = {"type": "string"}


@dataclass(frozen=True)
class Param:
    """A query parameter, a request header or a response header."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: STRING)
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """A success response: its body (a model, a JSON schema for another media type, or none),
    what it means and the headers it carries."""

    body: type[BaseModel] | Mapping[str, Any] | None = None
    description: str = ""
    media_type: str = "application/json"
    headers: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Raw:
    """A request body that is not JSON (an SDP offer)."""

    media_type: str
    schema: Mapping[str, Any] = field(default_factory=lambda: STRING)


Ok = Mapping[int, Answer | type[BaseModel] | None]
Body = type[BaseModel] | Raw | None

REQUEST_ID = Param("X-Request-ID", "The request's id, as in the access log", required=True)
ALLOW = Param("Allow", "The methods this URL takes", required=True)
RETRY_AFTER = Param("Retry-After", "Seconds to wait before retrying")
SHARED_HEADERS = (REQUEST_ID, ALLOW, RETRY_AFTER)
ERROR_HEADERS: dict[int, tuple[Param, ...]] = {
    405: (ALLOW,),
    429: (RETRY_AFTER,),
    503: (RETRY_AFTER,),
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    handler: Handler
    body: Body
    auth: tuple[str, ...]
    tag: str
    headers: tuple[Param, ...] = ()
    # Served but left out of the OpenAPI document (a 405 that only names the allowed methods).
    hidden: bool = False
    ok: Ok = field(default_factory=dict)
    errors: tuple[ErrorCode, ...] = ()
    query: tuple[Param, ...] = ()
    body_required: bool = True
    path_params: Mapping[str, Param] = field(default_factory=dict)
    storage: bool = True
    # A seller route's duties, any one of which lets a member's role in (people/roles.py).
    duties: tuple[Duty, ...] = ()

    def all_errors(self) -> tuple[ErrorCode, ...]:
        """The declared codes and those every route of its kind can answer."""
        codes: list[ErrorCode] = []
        if isinstance(self.body, type):
            codes += error_codes.BODY
        if "seller" in self.auth:
            safe = self.method in SAFE_METHODS
            codes += error_codes.SELLER if safe else error_codes.SELLER_CHANGE
            codes.append(PeopleErrorCode.ROLE_FORBIDDEN)
        if "viewer" in self.auth:
            codes += error_codes.VIEWER
        if "account" in self.auth:
            codes += error_codes.ACCOUNT
        if "{" in self.path:
            codes += error_codes.PATH
        if self.storage:
            codes += error_codes.STORAGE
        return (*codes, *self.errors)


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        body: Body = None,
        auth: str | tuple[str, ...] | None = None,
        tag: str = "api",
        headers: tuple[Param, ...] = (),
        hidden: bool = False,
        ok: Ok | None = None,
        errors: tuple[ErrorCode, ...] = (),
        query: tuple[Param, ...] = (),
        body_required: bool = True,
        path_params: tuple[Param, ...] = (),
        storage: bool = True,
        duty: Duty | tuple[Duty, ...] = (),
    ) -> Callable[[Handler], Handler]:
        undeclared = error_codes.unknown(errors)
        if undeclared:
            raise ValueError(f"{method} {path}: codes not in web/error_codes.py: {undeclared}")
        schemes = (auth,) if isinstance(auth, str) else auth or ()
        duties = (duty,) if isinstance(duty, Duty) else duty
        if ("seller" in schemes) != bool(duties):
            raise ValueError(f"{method} {path}: a seller route names its duty, no other does")

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    summary=summary,
                    handler=handler,
                    body=body,
                    auth=schemes,
                    tag=tag,
                    headers=headers,
                    hidden=hidden,
                    ok=ok or {},
                    errors=errors,
                    query=query,
                    body_required=body_required,
                    path_params={p.name: p for p in path_params},
                    storage=storage,
                    duties=duties,
                )
            )
            return handler

        return register

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Handler]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = _guarded(op)
        return [
            Route(path, _dispatch(methods), methods=list(methods))
            for path, methods in by_path.items()
        ]

    def openapi(self) -> dict[str, Any]:
        schemas: dict[str, JsonSchema] = {}
        paths: dict[str, Any] = {}
        for op in self.operations:
            if not op.hidden:
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", op.path)
                paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas)
        return {
            "openapi": "3.1.0",
            "info": {"title": "livecart", "version": "1", "description": DESCRIPTION},
            "paths": paths,
            "components": {
                "schemas": dict(sorted({**schemas, "Error": ERROR_SCHEMA}.items())),
                "headers": {p.name: _header(p) for p in SHARED_HEADERS},
                "securitySchemes": {
                    name: {"type": "http", "scheme": "bearer", "description": d}
                    for name, d in AUTH_SCHEMES.items()
                },
                "responses": {
                    "MethodNotAllowed": _error_response(
                        405, [WebErrorCode.METHOD_NOT_ALLOWED], "A method this URL does not take"
                    )
                },
            },
        }


DESCRIPTION = (
    "The livecart HTTP API (docs/protocol.md explains it in prose). Every operation lists each "
    "status it can answer; an error's `code` is one of those listed for its status. A method a "
    "path does not list answers 405 `method_not_allowed` with `Allow` "
    "(`#/components/responses/MethodNotAllowed`). Every response carries `X-Request-ID`."
)


def _operation(op: Operation, schemas: dict[str, JsonSchema]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op, schemas),
    }
    params = [
        _path_param(op, name, kind) for name, kind in re.findall(r"\{(\w+)(?::(\w+))?", op.path)
    ]
    params += [_param(p, "query") for p in op.query]
    params += [_param(p, "header") for p in op.headers]
    if params:
        entry["parameters"] = params
    if op.body is not None:
        entry["requestBody"] = {"required": op.body_required, "content": _content(op.body, schemas)}
    if op.auth:
        entry["security"] = [{scheme: []} for scheme in op.auth]
    if op.duties:
        entry["x-roles"] = [role.value for role in Role if any(may(role, d) for d in op.duties)]
    return entry


def _content(body: type[BaseModel] | Raw, schemas: dict[str, JsonSchema]) -> dict[str, Any]:
    if isinstance(body, Raw):
        return {body.media_type: {"schema": dict(body.schema)}}
    return {"application/json": {"schema": _model_ref(body, "validation", schemas)}}


def _operation_id(op: Operation) -> str:
    """``post_api_deals_by_deal_id_reserve``: unique, since a path has one entry per method."""
    words = re.sub(r"\{(\w+)(?::\w+)?\}", r"by_\1", op.path).replace("-", "_").split("/")
    return "_".join([op.method.lower(), *filter(None, words)])


def _path_param(op: Operation, name: str, kind: str) -> dict[str, Any]:
    declared = op.path_params.get(name)
    schema = dict(declared.schema) if declared else ID_SCHEMA if kind == "id" else STRING
    param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if declared:
        param["description"] = declared.description
    return param


def _param(p: Param, where: str) -> dict[str, Any]:
    return {
        "name": p.name,
        "in": where,
        "required": p.required,
        "description": p.description,
        "schema": dict(p.schema),
    }


def _responses(op: Operation, schemas: dict[str, JsonSchema]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in sorted(op.ok.items()):
        if not isinstance(answer, Answer):
            answer = Answer(answer)
        responses[str(status)] = _success(answer, schemas)
    for status, codes in error_codes.by_status(op.all_errors()).items():
        responses[str(status)] = _error_response(status, codes, ", ".join(codes))
    return responses


def _success(answer: Answer, schemas: dict[str, JsonSchema]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": answer.description or "Done",
        "headers": _headers((REQUEST_ID, *answer.headers)),
    }
    if isinstance(answer.body, type):
        schema = _model_ref(answer.body, "serialization", schemas)
        response["content"] = {answer.media_type: {"schema": schema}}
    elif answer.body is not None:
        response["content"] = {answer.media_type: {"schema": dict(answer.body)}}
    return response


def _error_response(status: int, codes: list[ErrorCode], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _headers((REQUEST_ID, *ERROR_HEADERS.get(status, ()))),
        "content": {"application/json": {"schema": error_schema(codes)}},
    }


def _headers(params: tuple[Param, ...]) -> dict[str, Any]:
    return {
        p.name: {"$ref": f"#/components/headers/{p.name}"} if p in SHARED_HEADERS else _header(p)
        for p in params
    }


def _header(p: Param) -> dict[str, Any]:
    return {"description": p.description, "required": p.required, "schema": dict(p.schema)}


ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable, for programs"},
                "message": {"type": "string", "description": "For people"},
                "details": {"type": "object", "description": "Data about the refusal"},
                "request_id": {"type": "string", "description": "As in `X-Request-ID`"},
            },
            "required": ["code", "message", "details", "request_id"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}


def error_schema(codes: list[ErrorCode]) -> JsonSchema:
    """The error body, its ``code`` one of ``codes``."""
    return {
        "allOf": [{"$ref": "#/components/schemas/Error"}],
        "properties": {"error": {"properties": {"code": {"enum": codes}}}},
    }


def _model_ref(
    model: type[BaseModel], mode: JsonSchemaMode, schemas: dict[str, JsonSchema]
) -> JsonSchema:
    """Put the model (and the models it uses) in ``components/schemas``; answer a reference."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name}")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _guarded(op: Operation) -> Handler:
    """A seller route's handler behind its role check, made before anything else is read: a
    role that may not do it gets 403 whatever the body or the ids."""
    if not op.duties:
        return op.handler
    handler, duties = op.handler, op.duties

    async def guarded(request: Request) -> Response:
        if as_seller(request):
            await authorize(request, duties)
        return await handler(request)

    return guarded


def _dispatch(methods: dict[str, Handler]) -> Handler:
    if len(methods) == 1:
        return next(iter(methods.values()))

    async def dispatch(request: Request) -> Response:
        # Starlette lets HEAD through wherever GET is allowed: answer it as GET (the server
        # sends no body), unless the path registered its own HEAD.
        handler = methods.get(request.method) or methods["GET"]
        return await handler(request)

    return dispatch
