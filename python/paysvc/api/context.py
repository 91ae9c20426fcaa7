"""Per-request context: the request id, the ``X-Request-Id`` header, the request metrics, one log line
per request, and the body-size limit.

Two plain ASGI middlewares:

- :class:`RequestContextMiddleware` wraps the whole app, routing included (``install`` puts it around
  Litestar's ASGI handler), so that requests no route matches (404, 405) get an id, a log line and a
  metric too. After the app answered, Litestar's router has left the matched route's template in
  ``scope["path_template"]``; the metrics and the log use it as ``route`` (``unmatched`` when no route
  matched), never the raw path.
- :class:`BodyLimitMiddleware` is route middleware: it runs after routing but before authentication
  and body parsing (the brief orders the checks: body size, then authentication, then the body).

The log line (logger ``paysvc.request``, INFO) carries, as fields of the record (JSON keys): request_id,
tenant_id (null when unauthenticated), method, route, path (without the query string), status,
latency_ms and retries (transaction re-runs this request caused, counted by the retry helper through
the :data:`paysvc.db.retry.request_retries` context variable; payments applied by the group
committer run in its own task and are not counted here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from paysvc import ids, metrics
from paysvc.db.retry import RequestRetries, request_retries
from paysvc.errors import encode_error
from paysvc.ids import new_request_id

log = logging.getLogger("paysvc.request")

# Loose ASGI types: these middlewares only read a few well-known keys.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_KEY = "paysvc.request_id"
UNSENT_ID_KEY = "paysvc.request_id_unsent"
TENANT_ID_KEY = "paysvc.tenant_id"  # the authenticated tenant's UUID (api/auth.py sets it)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INFO = logging.INFO


def request_id_of(scope: Any) -> str:
    value = scope.get(REQUEST_ID_KEY)
    if isinstance(value, str):
        return value
    # Only when RequestContextMiddleware did not run (an app built without ``install``).
    value = scope[REQUEST_ID_KEY] = new_request_id()
    scope[UNSENT_ID_KEY] = True
    return value


def request_id_header_owed(scope: Any) -> bool:
    """True when the middleware did not run, so the response itself must carry X-Request-Id."""
    return bool(scope.get(UNSENT_ID_KEY))


class RequestContextMiddleware:
    """Request id, ``X-Request-Id``, request metrics and the request log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        method: str = scope["method"]
        path: str = scope["path"]  # before the router normalizes it
        header = (b"x-request-id", request_id.encode("ascii"))
        status_seen = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        retries = RequestRetries()
        token = request_retries.set(retries)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            request_retries.reset(token)
            status = status_seen or 500
            # The router sets path_template with route_handler, only when a route matched.
            route: str = scope.get("path_template") or metrics.UNMATCHED_ROUTE
            metrics.record_request(method, route, status, elapsed)
            if log.isEnabledFor(_INFO):
                _log(scope, request_id, method, route, path, status, elapsed, retries.count)


def _log(scope: Scope, request_id: str, method: str, route: str, path: str, status: int, elapsed: float,
         retries: int) -> None:
    tenant = scope.get(TENANT_ID_KEY)
    tenant_id = None if tenant is None else ids.encode(ids.TENANT, tenant)
    latency_ms = round(elapsed * 1000, 3)
    log.info(
        "%s %s %d %.2fms %s%s%s", method, path, status, latency_ms, request_id,
        "" if tenant_id is None else f" {tenant_id}", f" retries={retries}" if retries else "",
        extra={"request_id": request_id, "tenant_id": tenant_id, "method": method, "route": route,
               "path": path, "status": status, "latency_ms": latency_ms, "retries": retries},
    )


def install(app: Any) -> None:
    """Wrap a Litestar app's ASGI handler (routing and the app-level exception handler included) in
    :class:`RequestContextMiddleware`. Litestar's own ``middleware=`` list runs only after routing, so it
    never sees the requests that match no route."""
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)


class BodyLimitMiddleware:
    """413 for bodies over the limit, before authentication and body parsing (route middleware)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, larger_bodies: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_bodies = larger_bodies or {}  # path -> its own limit (the batch endpoint: 1 MiB)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            limit = self.larger_bodies.get(scope["path"], self.max_body_bytes)
            length = _content_length(scope)
            too_large = length is not None and length > limit
            if length is None:  # chunked: read it now, so the limit is checked before anything else
                body, too_large = await _read_limited(receive, limit)
                receive = _replay(body)
            if too_large:
                await _too_large(send, request_id_of(scope), limit)
                return
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_limited(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _too_large(send: Send, request_id: str, limit: int) -> None:
    body = encode_error("body_too_large", f"The request body is larger than {limit} bytes.", None, request_id)
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
