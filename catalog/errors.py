"""Domain errors: each carries a machine-readable code, a human message and data.

Only ``web/`` turns them into HTTP. The hierarchy, by what the caller did wrong::

    DomainError
    ├── NotFound       the thing does not exist, or is not yours to see
    ├── Invalid        the request breaks a rule about its own content
    ├── Conflict       the request is fine but the current state refuses it
    ├── Unauthorized   no identity, or a bad one
    ├── PaymentFailed  the payment provider said no
    ├── Unavailable    this node is full or stopping; details say when to retry
    └── Throttled      too many requests from one client address; details say when to retry
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Invalid(DomainError):
    code = "invalid_request"


class Conflict(DomainError):
    code = "conflict"


class Unauthorized(DomainError):
    code = "unauthorized"


class PaymentFailed(DomainError):
    code = "payment_failed"


class Unavailable(DomainError):
    code = "unavailable"


class Throttled(DomainError):
    code = "rate_limited"
