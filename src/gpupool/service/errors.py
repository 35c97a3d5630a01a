"""The control plane's errors: each an HTTP status and a stable code the API puts in its ``ErrorBody``."""

from __future__ import annotations

from collections.abc import Iterable


class ServiceError(Exception):
    """An error the API turns into an ``ErrorBody`` with this status."""

    status = 400
    code = "bad-request"

    def __init__(self, message: str, *, fields: Iterable[tuple[str, str]] = (), hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        self.hint = hint


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Invalid(ServiceError):
    status = 422
    code = "invalid"
