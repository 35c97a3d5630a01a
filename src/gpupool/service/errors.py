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
    """401: no API token, or one the control plane does not know."""

    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """403: the caller is known but may not do this (a queue's ACLs, someone else's workload)."""

    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """404: what the request names (a workload, a queue ...) does not exist."""

    status = 404
    code = "not-found"


class Conflict(ServiceError):
    """409: the request clashes with what exists (an idempotency key of another user's workload)."""

    status = 409
    code = "conflict"


class Invalid(ServiceError):
    """422: valid by the schema but refused: an unknown size or queue, an impossible ask, a bad config."""

    status = 422
    code = "invalid"


class Unsupported(ServiceError):
    """501: the request is valid but this control plane cannot do it (its executor lacks the
    capability), whatever the input: a deployment without a runner for Ray Serve."""

    status = 501
    code = "not-implemented"
