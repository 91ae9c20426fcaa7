"""Exception handlers: every error leaves as ``{"error": {...}}`` with the request id; unknown
failures are 500 ``internal_error`` with the request id in the body and the log, never a trace."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import MethodNotAllowedException
from psycopg_pool import PoolTimeout

from paysvc.api.context import request_id_header_owed, request_id_of
from paysvc.errors import ApiError, service_unavailable

log = logging.getLogger("paysvc.errors")

JSON = "application/json"


# RFC 6750 3: a 401 names the scheme it wants; a key that was sent but refused is invalid_token.
_CHALLENGES = {"api_key_missing": 'Bearer realm="paysvc"',
               "api_key_invalid": 'Bearer realm="paysvc", error="invalid_token"'}


def error_response(error: ApiError, request: Request[Any, Any, Any],
                   headers: dict[str, str] | None = None) -> Response[bytes]:
    request_id = request_id_of(request.scope)
    headers = dict(headers or {})
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    challenge = _CHALLENGES.get(error.code)
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    if request_id_header_owed(request.scope):
        headers["X-Request-Id"] = request_id
    return Response(content=error.body(request_id), status_code=error.status, media_type=JSON, headers=headers)


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return error_response(exc, request)


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    # Litestar validates path and query parameters (limit, starting_after, status, ids).
    param = None
    message = "Invalid request parameters."
    if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict):
        param = _wire_name(request, exc.extra[0].get("key"))
        message = f"Invalid parameter {param}: {exc.extra[0].get('message', 'invalid value')}."
    return error_response(ApiError("parameter_invalid", message, param=param), request)


def _wire_name(request: Request[Any, Any, Any], key: object) -> str | None:
    """The name the client sent a parameter under (``type``), not the handler's (``event_type``)."""
    if not isinstance(key, str):
        return None
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no route, or a Litestar without these internals: the handler's name will do
        return key
    name = getattr(getattr(parameter, "kwarg_definition", None), "name", None)
    return name if isinstance(name, str) and name else key


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, NotFoundException):
        error = ApiError("resource_missing", f"Unrecognized request URL ({request.method} {request.url.path}).")
    elif isinstance(exc, MethodNotAllowedException):
        error = ApiError(
            "method_not_allowed", f"{request.method} is not allowed on {request.url.path}."
        )
        allow = (exc.headers or {}).get("allow")  # the router names the path's methods (RFC 9110 15.5.6)
        return error_response(error, request, {"Allow": allow} if allow else None)
    elif exc.status_code == 413:
        error = ApiError("body_too_large", "The request body is too large.")
    elif exc.status_code < 500:
        error = ApiError("parameter_invalid", str(exc.detail))
    else:
        return on_unexpected(request, exc)
    return error_response(error, request)


def on_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("database unavailable: %s", exc, extra={"request_id": request_id_of(request.scope)})
    return error_response(service_unavailable("The database is unavailable; retry shortly."), request)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    request_id = request_id_of(request.scope)
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        return on_database_unavailable(request, exc)
    log.error("unhandled error on %s %s (%s)", request.method, request.url.path, request_id,
              exc_info=exc, extra={"request_id": request_id})
    error = ApiError("internal_error", f"An internal error occurred; quote {request_id} when reporting it.")
    return error_response(error, request)


HANDLERS: dict[type[Exception] | int, Any] = {
    ApiError: on_api_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    PoolTimeout: on_database_unavailable,
    psycopg.OperationalError: on_database_unavailable,
    Exception: on_unexpected,
}
