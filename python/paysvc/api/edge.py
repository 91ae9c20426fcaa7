"""The HTTP edge: what a request must be before any of it reaches the app.

Two layers, both generic (no route is named here; new routes get every rule):

- :class:`EdgeProtocol`, uvicorn's httptools protocol with the limits of :class:`EdgeLimits`: the
  request head (request line and headers) over ``max_head_bytes`` is 431 and the connection closed,
  counted while the head arrives so an unfinished huge header never grows the process; the head
  must arrive within ``head_timeout_ms`` (from the connection's first byte, or from the first byte of a
  keep-alive request) and the body within ``body_timeout_ms`` of the head, or the connection is
  closed; an idle keep-alive connection is closed after ``keepalive_timeout_s`` (uvicorn's own
  timer); beyond ``max_connections`` open connections a new one is answered 503 and closed. Framing
  RFC 9112 calls faulty is refused before the app runs: a transfer coding on HTTP/1.0 (400, 6.1), a
  transfer coding other than a lone ``chunked`` (501, 6.1: gzip and the like are not supported),
  and whatever the parser refuses (400). Those answers are written here, in the API's error shape,
  each with a request id, counted in the request metrics (route ``unmatched``) and logged.
- :class:`WholeBodyMiddleware`, route middleware (after routing, before anything of the route runs;
  api/context.py's request context around it): a request runs only once its body was received
  whole (the full Content-Length, or the last chunk of a chunked body). A client that goes away
  before that gets no answer and nothing runs: the request is logged at INFO and counted with
  status 499 (api/context.py), never as a 5xx. Bodies over the route's limit are 413 (the first
  check of the brief's order) before anything else runs. Header fields that may appear once
  (``SINGLE_HEADERS``) are folded into one comma-joined field when repeated, as RFC 9110 5.3
  defines, so the field's own rule refuses the list (two Idempotency-Key lines are
  ``idempotency_key_invalid``, at that rule's place in the check order). The query string is read
  strictly against what the handler declares (api/decode.py ``check_query``): here for routes
  without authentication, after authentication for the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from paysvc import ids, metrics
from paysvc.api.context import CLIENT_GONE_KEY, ASGIApp, Message, Receive, Scope, Send, request_id_of
from paysvc.api.decode import check_query, query_spec
from paysvc.config import Settings
from paysvc.errors import CODES, encode_error

log = logging.getLogger("paysvc.edge")

# Fields a request may carry once: repeated, they are joined as RFC 9110 5.3 says, and the joined
# value then fails that field's own check (Idempotency-Key refuses ", "; the joined Authorization is no bearer token).
SINGLE_HEADERS = frozenset({b"idempotency-key", b"authorization", b"paysvc-read-consistency", b"content-type"})


@dataclass(frozen=True)
class EdgeLimits:
    max_head_bytes: int
    head_timeout_ms: int
    body_timeout_ms: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.max_head_bytes, settings.head_timeout_ms, settings.body_timeout_ms,
                   settings.max_connections)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing: the answer was written, the connection closes."""


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the edge's limits (see the module docstring).

    Built per connection by uvicorn as ``functools.partial(EdgeProtocol, limits=...)`` (see
    :func:`uvicorn_options`), which pickles for ``--workers N``."""

    def __init__(self, *args: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # between requests (a request's body received whole) or reading a head
        self._head_bytes = 0  # bytes received for the current head
        self._head_size = 0  # its request target and fields, as parsed
        self._started = time.perf_counter()

    # Connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d open (PAYSVC_MAX_CONNECTIONS)", len(self.connections) - 1)
            self._answer(503, "service_unavailable", "Too many open connections; retry shortly.", None,
                         retry_after_s=1)
            return
        self._arm(self.limits.head_timeout_ms, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._timer is None:  # the first byte of a keep-alive request: its head's clock starts
                self._arm(self.limits.head_timeout_ms, "head")
            self._head_bytes += len(data)
        super().data_received(data)  # a callback's _Refused reaches uvicorn as a parser error: send_400_response
        if self._in_head and self._head_bytes > self.limits.max_head_bytes and not self.transport.is_closing():
            self._head_too_large()

    def send_400_response(self, msg: str) -> None:
        """The parser refused the bytes, or a callback refused the request (then already answered)."""
        self._answer(400, "parameter_invalid", f"Malformed HTTP request: {msg}", None)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = 0
        self._started = time.perf_counter()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        self._head_bytes = 0
        self._check_framing()
        self._arm(self.limits.body_timeout_ms, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True  # the next byte starts the next request's head
        super().on_message_complete()

    # The limits

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_head_bytes:
            self._head_too_large()
            raise _Refused

    def _head_too_large(self) -> None:
        self._answer(431, "header_too_large",
                     f"The request line and headers are larger than {self.limits.max_head_bytes} bytes.", None)

    def _check_framing(self) -> None:
        codings = [value for name, value in self.headers if name == b"transfer-encoding"]
        if not codings:
            return
        if self.parser.get_http_version() == "1.0":
            self._answer(400, "parameter_invalid", "Transfer-Encoding is not allowed on HTTP/1.0.",
                         "Transfer-Encoding")
            raise _Refused
        tokens = [token.strip().lower() for value in codings for token in value.split(b",")]
        if tokens != [b"chunked"]:
            self._answer(501, "transfer_encoding_unsupported",
                         "Only Transfer-Encoding: chunked is supported.", "Transfer-Encoding")
            raise _Refused

    def _method(self) -> str:
        """The request's method, once the parser read it (it reads the method before the target)."""
        if self.scope is not None and "method" in self.scope:
            return self.scope["method"]
        if getattr(self, "url", b""):
            try:
                return str(self.parser.get_method().decode("ascii"))
            except Exception:  # the parser has given up on these bytes: no method to name
                return metrics.OTHER
        return metrics.OTHER

    def _arm(self, timeout_ms: int, phase: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(timeout_ms / 1000, self._timed_out, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, phase: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if phase == "head":  # a request waiting for its body sees the disconnect and is logged as a 499
            log.info("closed a connection: a request head did not arrive in time (PAYSVC_HEAD_TIMEOUT_MS)")
        self.transport.close()

    def _answer(self, status: int, code: str, message: str, param: str | None,
                retry_after_s: int | None = None) -> None:
        """Writes an error answer in the API's shape, then closes the connection (once: a connection
        already closing was answered, or its client left)."""
        assert CODES[code][0] == status
        if self.transport.is_closing():
            return
        request_id = ids.new_request_id()
        body = encode_error(code, message, param, request_id)
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            f"x-request-id: {request_id}",
            "connection: close",
        ]
        if retry_after_s is not None:
            head.append(f"retry-after: {retry_after_s}")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body)
        self.transport.close()
        self._disarm()
        method = self._method()
        elapsed = time.perf_counter() - self._started
        metrics.record_request(method, metrics.UNMATCHED_ROUTE, status, elapsed)
        log.info("%s %d %s: %s", method, status, request_id, message,
                 extra={"request_id": request_id, "method": method, "route": metrics.UNMATCHED_ROUTE,
                        "status": status, "latency_ms": round(elapsed * 1000, 3)})


_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented",
            503: "Service Unavailable"}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The edge's part of a ``uvicorn.Config``: the protocol and the keep-alive timeout."""
    import functools

    return {
        "http": functools.partial(EdgeProtocol, limits=EdgeLimits.from_settings(settings)),
        "timeout_keep_alive": settings.keepalive_timeout_s,
    }


class WholeBodyMiddleware:
    """Runs the app only on a request whose body was received whole (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, larger_bodies: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_bodies = larger_bodies or {}  # path -> its own limit (the batch endpoint: 1 MiB)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        length: bytes | None = None
        framed = False  # a body is announced: Content-Length above 0, or chunked
        seen: set[bytes] = set()
        repeated = False
        for name, value in headers:
            if name == b"content-length":
                length = value
                framed = framed or value != b"0"
            elif name == b"transfer-encoding":
                framed = True
            if name in SINGLE_HEADERS:
                repeated = repeated or name in seen
                seen.add(name)
        if repeated:
            scope["headers"] = _fold(headers)
        if not framed:
            await self._run(scope, receive, send)
            return
        limit = self.larger_bodies.get(scope["path"], self.max_body_bytes)
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(send, request_id_of(scope), limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client left mid-body
                scope[CLIENT_GONE_KEY] = True
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, request_id_of(scope), limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self._run(scope, _replay(b"".join(chunks), receive), send)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS" and _generated_options(scope):
            await _options(scope, send)
            return
        spec = query_spec(scope)
        if spec is not None and not spec.authenticated:
            check_query(scope)  # authenticated routes check it after authentication (api/auth.py)
        await self.app(scope, receive, send)


def _generated_options(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    return handler is not None and handler.handler_name == "options_handler" and not handler.include_in_schema


_route_methods: dict[int, tuple[object, dict[str, str]]] = {}  # id(app) -> (app, path template -> Allow)


async def _options(scope: Scope, send: Send) -> None:
    """204 with every method of the path. Litestar's own OPTIONS handler answers the methods of the
    first handler registered for a path when a controller adds more methods to it later."""
    app = scope["app"]
    known = _route_methods.get(id(app))
    if known is None or known[0] is not app:
        methods: dict[str, set[str]] = {}
        for route in app.routes:
            methods.setdefault(route.path_format, set()).update(getattr(route, "methods", ()))
        known = _route_methods[id(app)] = (app, {path: ", ".join(sorted(m)) for path, m in methods.items()})
    allow = known[1].get(scope.get("path_template", ""), "OPTIONS")
    await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode("ascii"))]})
    await send({"type": "http.response.body", "body": b""})


def _fold(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    folded: list[tuple[bytes, bytes]] = []
    where: dict[bytes, int] = {}
    for name, value in headers:
        if name in SINGLE_HEADERS and name in where:
            index = where[name]
            folded[index] = (name, folded[index][1] + b", " + value)
        else:
            if name in SINGLE_HEADERS:
                where[name] = len(folded)
            folded.append((name, value))
    return folded


def _replay(body: bytes, receive: Receive) -> Receive:
    """The whole body as one message, then the connection's own events (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send, request_id: str, limit: int) -> None:
    body = encode_error("body_too_large", f"The request body is larger than {limit} bytes.", None, request_id)
    await send({
        "type": "http.response.start",
        "status": 413,
        # The connection stays open: the parser discards the rest of the body (within the body timeout),
        # so a client still sending reads this answer rather than a reset.
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
