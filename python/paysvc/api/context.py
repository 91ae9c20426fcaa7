"""Per-request context: the request id, the ``X-Request-Id`` header, the request metrics, one log line
per request.

Two plain ASGI middlewares:

- :class:`RequestContextMiddleware` wraps the whole app, routing included (``install`` puts it around
  Litestar's ASGI handler), so that requests no route matches (404, 405) get an id, a log line and a
  metric too. After the app answered, Litestar's router has left the matched route's template in
  ``scope["path_template"]``; the metrics and the log use it as ``route`` (``unmatched`` when no route
  matched), never the raw path.
- :class:`paysvc.api.edge.WholeBodyMiddleware` is route middleware: after routing, before
  authentication and body parsing, it runs the handler only on a request received whole, and
  enforces the body-size limit first (the brief orders the checks: body size, then authentication,
  then the body). A request whose client left
  before its body ended sets ``CLIENT_GONE_KEY`` and gets no answer: it is counted and logged with
  status 499 (nginx's "client closed request"), apart from the 5xx.

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
CLIENT_GONE_KEY = "paysvc.client_gone"  # the client left before its request was received whole
CLIENT_CLOSED_REQUEST = 499
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
            status = status_seen or (CLIENT_CLOSED_REQUEST if scope.get(CLIENT_GONE_KEY) else 500)
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
