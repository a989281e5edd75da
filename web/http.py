"""The HTTP edge: JSON responses, request bodies validated by pydantic, and the one place where
domain errors become status codes and ``{"error": {"code", "message", "details", "request_id"}}``
bodies (the request id is the one in the response's ``X-Request-ID`` and the access log)."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kernel.errors import (
    CommonErrorCode,
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    Invalid,
    NotFound,
    PaymentFailed,
    Throttled,
    Unauthorized,
    Unavailable,
)
from web.access import current_request_id
from web.error_codes import WebErrorCode

log = logging.getLogger("livecart.http")

MAX_BODY_BYTES = 64 * 1024
Body = TypeVar("Body", bound=BaseModel)

STATUS_OF: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (Invalid, 422),
    (Conflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
    (PaymentFailed, 402),
    (Unavailable, 503),
    (Throttled, 429),
]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class BadRequest(DomainError):
    """Malformed at the HTTP level: not JSON, wrong content type, too large."""

    def __init__(self, message: str, *, code: ErrorCode, status: int, **details: Any) -> None:
        super().__init__(message, code=code, **details)
        self.status = status


def error_response(status: int, code: ErrorCode, message: str, details: Any = None) -> JSONResponse:
    error = {
        "code": code,
        "message": message,
        "details": details or {},
        "request_id": current_request_id.get(),
    }
    return JSONResponse({"error": error}, status_code=status)


def status_of(err: DomainError) -> int:
    if isinstance(err, BadRequest):
        return err.status
    for cls, status in STATUS_OF:
        if isinstance(err, cls):
            return status
    return 400


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    response = error_response(status_of(exc), exc.code, exc.message, exc.details)
    if "retry_after_s" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after_s"])
    return response


_HTTP_CODES: dict[int, ErrorCode] = {
    404: CommonErrorCode.NOT_FOUND,
    405: WebErrorCode.METHOD_NOT_ALLOWED,
}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, WebErrorCode.HTTP_ERROR)
    message = "No such endpoint." if exc.status_code == 404 else str(exc.detail)
    response = error_response(exc.status_code, code, message)
    response.headers.update(exc.headers or {})  # a 405's Allow
    return response


async def unavailable_handler(request: Request, exc: Exception) -> Response:
    rid = current_request_id.get()
    log.warning(
        "dependency unavailable on %s (request %s): %r",
        request.url.path,
        rid,
        exc,
        extra={"request_id": rid},
    )
    response = error_response(
        503,
        WebErrorCode.SERVICE_UNAVAILABLE,
        "A backing service is unreachable; retry shortly.",
    )
    response.headers["Retry-After"] = "1"
    return response


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    rid = current_request_id.get()
    log.exception(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.url.path,
        rid,
        exc_info=exc,
        extra={"request_id": rid},
    )
    return error_response(500, WebErrorCode.INTERNAL_ERROR, "Something went wrong on our side.")


async def read_body(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(
            "Send the body as application/json.",
            code=WebErrorCode.UNSUPPORTED_MEDIA_TYPE,
            status=415,
        )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    # Straight from the ASGI receive channel (cheaper than Request.stream()'s generator on the
    # hot path), chunk by chunk so a chunked body never makes us buffer more than the limit.
    message = await request.receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body", False):
        message = await request.receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    return body


async def read_limited(request: Request, what: str) -> bytes:
    """A body of any type, refused (413) once it grows past ``MAX_BODY_BYTES``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(
                f"The {what} is too large.", code=WebErrorCode.BODY_TOO_LARGE, status=413
            )
    return body


def _too_large() -> BadRequest:
    return BadRequest(
        "The body is too large.",
        code=WebErrorCode.BODY_TOO_LARGE,
        status=413,
        limit=MAX_BODY_BYTES,
    )


def parse(model: type[Body], body: bytes) -> Body:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
            for e in err.errors(include_url=False, include_input=False)
        ]
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise BadRequest(
                "The body is not valid JSON.", code=CommonErrorCode.MALFORMED_JSON, status=400
            ) from None
        if any(e["type"] == "extra_forbidden" for e in err.errors()):
            raise Invalid(
                "The body has fields this endpoint does not take.",
                code=CommonErrorCode.UNKNOWN_FIELD,
                problems=problems,
            ) from None
        raise Invalid(
            "The body does not match what this endpoint takes.",
            code=CommonErrorCode.INVALID_REQUEST,
            problems=problems,
        ) from None


async def json_body(request: Request, model: type[Body]) -> Body:
    return parse(model, await read_body(request))
