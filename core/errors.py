"""Domain errors. `web.errors` maps each class to one HTTP status and one JSON shape."""

from __future__ import annotations

from typing import Any


class JobcastError(Exception):
    """Base of every error a service raises on purpose.

    `code` is a stable machine-readable string that clients switch on; `message` is for people.
    """

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}
        self.retry_after = retry_after
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.retry_after is not None:
            body["retry_after"] = round(self.retry_after, 3)
        body.update(self.extra)
        return body


class Invalid(JobcastError):
    """Input failed validation; `fields` names each bad field."""

    code = "invalid"


class NotFound(JobcastError):
    code = "not_found"


class Unauthorized(JobcastError):
    """No credentials, or wrong ones."""

    code = "unauthorized"


class Forbidden(JobcastError):
    """Credentials are fine but do not allow this."""

    code = "forbidden"


class Conflict(JobcastError):
    code = "conflict"


class RateLimited(JobcastError):
    code = "rate_limited"


class TooLarge(JobcastError):
    code = "too_large"


class Unavailable(JobcastError):
    """A dependency (Redis) is down; the client should retry."""

    code = "unavailable"


class UnsupportedMediaType(JobcastError):
    """The body is not in a format this endpoint reads."""

    code = "unsupported_media_type"
