"""Errors that cross the API boundary.

Each error knows its HTTP status and its Orbit error code, so handlers translate
it once, at the edge, into the error envelope::

    {"error": {"code", "message", "status", "details"}, "meta": {...}}
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException


class ApiError(HTTPException):
    """An error answered to an API client with the Orbit error envelope.

    An `HTTPException` so that one raised while the framework reads the request body
    (size limit, strict JSON) reaches the envelope's handler unchanged.
    """

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        super().__init__(self.status, message, headers or {})
        self.message = message
        self.details = details
        self.headers: dict[str, str] = headers or {}

    def __str__(self) -> str:
        return self.message


class BadRequest(ApiError):
    status = 400
    code = "VALIDATION_ERROR"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        # The rest of the body is not read: the connection cannot be reused.
        super().__init__(
            f"The request body is larger than {limit} bytes",
            details={"limit": limit},
            headers={"Connection": "close"},
        )


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class ValidationFailed(ApiError):
    """422: the request is well formed but a field is not acceptable."""

    status = 422
    code = "VALIDATION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: str,
        code: str | None = None,
        value: Any = None,
        expected: str | None = None,
    ) -> None:
        details: dict[str, Any] = {"field": field}
        if value is not None:
            details["value"] = value
        if expected is not None:
            details["expected"] = expected
        super().__init__(message, code=code, details=details)


class RateLimited(ApiError):
    status = 429
    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, *, retry_after: int, limit: int, window: str) -> None:
        super().__init__(
            message,
            details={"retry_after": retry_after, "limit": limit, "window": window},
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(ApiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(
            message, details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )
