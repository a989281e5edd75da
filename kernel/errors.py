"""Domain errors: each carries a machine-readable code, a human message and data.

Only ``web/`` turns them into HTTP. The hierarchy, by what the caller did wrong::

    DomainError
    ├── NotFound       the thing does not exist, or is not yours to see
    ├── Invalid        the request breaks a rule about its own content
    ├── Conflict       the request is fine but the current state refuses it
    ├── Unauthorized   no identity, or a bad one
    ├── Forbidden      a good identity that may not do this
    ├── PaymentFailed  the payment provider said no
    ├── Unavailable    this node is full or stopping; details say when to retry
    └── Throttled      too many requests from one client address; details say when to retry

A code is a member of an ``ErrorCode`` enum: ``CommonErrorCode`` here for the codes of more than
one package, and one enum per package for the rest (``catalog/error_codes.py`` and its siblings,
decision 0021). docs/protocol.md documents every member; tests/test_error_codes.py holds the
two together.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Base of every package's error codes; the value is what the wire carries."""


class CommonErrorCode(ErrorCode):
    """Each kind of error's general code (the defaults below), and the codes raised by more
    than one package: a request's shape and its identity."""

    ERROR = "error"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    PAYMENT_FAILED = "payment_failed"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"


class DomainError(Exception):
    code: ErrorCode = CommonErrorCode.ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotFound(DomainError):
    code: ErrorCode = CommonErrorCode.NOT_FOUND


class Invalid(DomainError):
    code: ErrorCode = CommonErrorCode.INVALID_REQUEST


class Conflict(DomainError):
    code: ErrorCode = CommonErrorCode.CONFLICT


class Unauthorized(DomainError):
    code: ErrorCode = CommonErrorCode.UNAUTHORIZED


class Forbidden(DomainError):
    code: ErrorCode = CommonErrorCode.FORBIDDEN


class PaymentFailed(DomainError):
    code: ErrorCode = CommonErrorCode.PAYMENT_FAILED


class Unavailable(DomainError):
    code: ErrorCode = CommonErrorCode.UNAVAILABLE


class Throttled(DomainError):
    code: ErrorCode = CommonErrorCode.RATE_LIMITED
