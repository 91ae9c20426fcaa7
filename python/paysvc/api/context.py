"""Per-request context: the request id, the body-size limit, the ``X-Request-Id`` header and one
log line per request. A plain ASGI middleware, so it runs before routing, authentication and body
parsing (the brief orders the checks: body size, then authentication, then the body)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from paysvc.errors import encode_error
from paysvc.ids import new_request_id

log = logging.getLogger("paysvc.request")

# Loose ASGI types: this middleware only reads a few well-known keys.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_KEY = "paysvc.request_id"
UNSENT_ID_KEY = "paysvc.request_id_unsent"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_id_of(scope: Any) -> str:
    value = scope.get(REQUEST_ID_KEY)
    if isinstance(value, str):
        return value
    # Requests that match no route never reach route middleware: give them an id here.
    value = scope[REQUEST_ID_KEY] = new_request_id()
    scope[UNSENT_ID_KEY] = True
    return value


def request_id_header_owed(scope: Any) -> bool:
    """True when the middleware did not run, so the response itself must carry X-Request-Id."""
    return bool(scope.get(UNSENT_ID_KEY))


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, larger_bodies: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_bodies = larger_bodies or {}  # path -> its own limit (the batch endpoint: 1 MiB)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        header = (b"x-request-id", request_id.encode("ascii"))
        status_seen = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        limit = self.larger_bodies.get(scope["path"], self.max_body_bytes)
        if scope["method"] in _BODY_METHODS:
            length = _content_length(scope)
            too_large = length is not None and length > limit
            if length is None:  # chunked: read it now, so the limit is checked before anything else
                body, too_large = await _read_limited(receive, limit)
                receive = _replay(body)
            if too_large:
                await _too_large(send_with_id, request_id, limit)
                self._log(scope, request_id, 413, started)
                return
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, request_id, status_seen or 500, started)

    @staticmethod
    def _log(scope: Scope, request_id: str, status: int, started: float) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %d %.2fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                extra={"request_id": request_id, "status": status},
            )


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
