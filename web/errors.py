"""The one place where errors become HTTP responses: `{"error": {"code", "message", ...}}`."""

from __future__ import annotations

import logging

from aiohttp import web
from jobcast.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    JobcastError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from jobcast.web.appkeys import METRICS
from jobcast.web.jsonutil import json_response
from jobcast.web.redis_errors import Refusal, message, refusal_kind, retry_after

log = logging.getLogger("jobcast.http")

STATUS: dict[type[JobcastError], int] = {
    Invalid: 422,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    Conflict: 409,
    RateLimited: 429,
    TooLarge: 413,
    Unavailable: 503,
    UnsupportedMediaType: 415,
}


def status_of(err: JobcastError) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: object
) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return json_response(body, status=status, headers=headers)


def from_error(err: JobcastError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(err.retry_after + 0.999)))
    status = status_of(err)
    if status == 503 and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    return json_response({"error": err.to_dict()}, status=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def refusal_response(kind: Refusal) -> web.Response:
    """503 `unavailable` for a Redis refusal, with `Retry-After` and the kind under `redis`."""
    wait = retry_after(kind)
    return error_response(
        503, "unavailable", message(kind), headers={"Retry-After": str(wait)}, redis=kind
    )


@web.middleware
async def error_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    try:
        return await handler(request)
    except JobcastError as e:
        resp = from_error(e)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        message = e.reason if e.text is None or e.text.startswith(f"{e.status}:") else e.text
        resp = error_response(e.status, code, message, headers=_keep_headers(e))
    except Exception as e:
        kind = refusal_kind(e)
        if kind is None:
            log.exception("unhandled error", extra={"path": request.path})
            resp = error_response(500, "internal", "internal error")
        else:
            log.warning(
                "redis refused", extra={"path": request.path, "redis": kind, "error": str(e)}
            )
            metrics.redis_refusals.labels(kind).inc()
            resp = refusal_response(kind)
    metrics.http_errors.labels(str(resp.status)).inc()
    return resp


def _keep_headers(e: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After", "Location")}
