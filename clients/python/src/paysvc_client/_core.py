"""What the sync and async clients share: requests, retry decisions, error mapping, decoding.

The clients only send and sleep; every rule (which answers are retried and after how long, which
error an answer becomes, how a body is decoded) lives here once.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from paysvc_client import types as t
from paysvc_client.errors import APIConnectionError, APIError, PaysvcError, error_class

T = TypeVar("T")

VERSION = "0.1.0"
USER_AGENT = f"paysvc-client-python/{VERSION}"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

# Transport failures after which the request certainly did not reach the server: safe to send again
# even when the server could not tell a repeat from a new request.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Answers that say "nothing was done, try again": the server stores no idempotency record for them.
_RETRY_STATUSES = frozenset({429, 503})
_IN_USE = "idempotency_key_in_use"


def segment(value: str) -> str:
    """An id as one path segment (a ``/`` or ``?`` in it cannot reach another route)."""
    return quote(value, safe="")


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Request:
    """One logical call: sent once, and again as it is (same idempotency key) on each retry."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    idempotency_key: str | None = None
    admin: bool = False  # authenticated with the admin token instead of the API key
    # Whether sending it twice does no more than sending it once (reads, replacing writes, writes
    # under an idempotency key). Other requests are only sent again when the first never left.
    repeatable: bool = True


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and how to read its answer."""

    request: Request
    decode: Callable[[bytes], T]


class _ListWire(msgspec.Struct, kw_only=True):
    data: list[msgspec.Raw]
    has_more: bool = False


@dataclass(frozen=True)
class ListCall(Generic[T]):
    """A request for one page of a list; ``after`` gives the request for the page after an id."""

    request: Request
    item: Callable[[bytes], T]

    def decode(self, content: bytes) -> tuple[list[T], bool]:
        wire = msgspec.json.decode(content, type=_ListWire)
        return [self.item(bytes(raw)) for raw in wire.data], wire.has_more

    def after(self, starting_after: str) -> ListCall[T]:
        params = {**self.request.params, "starting_after": starting_after}
        return ListCall(replace(self.request, params=params), self.item)


def item_id(item: object) -> str:
    """The cursor of a list item (every listed object has an ``id``)."""
    value = getattr(item, "id", None)
    if not isinstance(value, str):
        raise APIError("a list item has no id to page from")
    return value


def decoder(kind: type[T]) -> Callable[[bytes], T]:
    dec = msgspec.json.Decoder(kind)

    def decode(content: bytes) -> T:
        return dec.decode(content)

    return decode


def read(decode: Callable[[bytes], T], content: bytes) -> T:
    """A 2xx answer decoded; an answer of another shape is an :class:`APIError`, not a msgspec error."""
    try:
        return decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise APIError(f"the answer does not have the documented shape: {error}", body=content) from error


def body(fields: Mapping[str, Any]) -> bytes:
    """A JSON body of the fields that are set: an unset optional field is left out, so the server
    applies its default (and the idempotency fingerprint is the one of the defaulted request)."""
    return msgspec.json.encode({k: v for k, v in fields.items() if v is not None})


def query(fields: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in fields.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


# ---- events and batch items: bodies whose shape depends on a field ---------------------------------

class _Kind(msgspec.Struct):
    object: str = ""


class _EventDataWire(msgspec.Struct):
    object: msgspec.Raw


class _EventWire(msgspec.Struct, kw_only=True):
    id: str
    object: str = "event"
    type: str
    created_at: datetime
    data: _EventDataWire


_OBJECT_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "payment": decoder(t.Payment), "refund": decoder(t.Refund), "review": decoder(t.Review),
}


def decode_event(content: bytes | str) -> t.Event:
    """An event, with ``data.object`` typed by its ``object`` field (a dict for a kind this client
    does not know)."""
    wire = msgspec.json.decode(content, type=_EventWire)
    raw = bytes(wire.data.object)
    kind = msgspec.json.decode(raw, type=_Kind).object
    obj = _OBJECT_DECODERS[kind](raw) if kind in _OBJECT_DECODERS else msgspec.json.decode(raw)
    return t.Event(id=wire.id, object=wire.object, type=wire.type, created_at=wire.created_at,
                   data=t.EventData(object=obj))


class _ErrorEnvelope(msgspec.Struct):
    error: t.ErrorInfo


class _BatchItemWire(msgspec.Struct):
    status: int
    body: msgspec.Raw


class _BatchWire(msgspec.Struct):
    data: list[_BatchItemWire]


_decode_payment = decoder(t.Payment)


def decode_batch(content: bytes) -> list[t.BatchItem]:
    items = []
    for wire in msgspec.json.decode(content, type=_BatchWire).data:
        raw = bytes(wire.body)
        if 200 <= wire.status < 300:
            items.append(t.BatchItem(status=wire.status, payment=_decode_payment(raw)))
        else:
            items.append(t.BatchItem(status=wire.status, error=msgspec.json.decode(raw, type=_ErrorEnvelope).error))
    return items


# ---- the shared core ------------------------------------------------------------------------------

class Core:
    """Configuration and decisions shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        admin_token: str | None,
        max_retries: int,
        timeout_s: float,
        initial_backoff_s: float,
        max_backoff_s: float,
        max_retry_after_s: float,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout_s <= 0 or initial_backoff_s < 0 or max_backoff_s < initial_backoff_s or max_retry_after_s < 0:
            raise ValueError("timeouts and backoffs must be positive, with max_backoff_s >= initial_backoff_s")
        self.api_key = api_key if api_key is not None else os.environ.get("PAYSVC_API_KEY")
        self.admin_token = admin_token if admin_token is not None else os.environ.get("PAYSVC_ADMIN_TOKEN")
        self.base_url = (base_url or os.environ.get("PAYSVC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s

    def headers(self, request: Request) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        token = self.admin_token if request.admin else self.api_key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        return headers

    def backoff_s(self, attempt: int) -> float:
        """Capped exponential backoff with jitter: the ``attempt``-th retry (0-based) waits between
        half and all of ``initial * 2**attempt`` (at most ``max_backoff_s``), so clients that failed
        together do not come back together."""
        ceiling: float = min(self.max_backoff_s, self.initial_backoff_s * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)

    def retry_after_response(self, request: Request, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending ``request`` again after ``response``; None: do not."""
        if attempt >= self.max_retries or not _retryable_answer(response):
            return None
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after_s is None:
            return self.backoff_s(attempt)
        if retry_after_s > self.max_retry_after_s:
            return None  # the server asks for longer than this client is willing to wait
        return retry_after_s

    def retry_after_exception(self, request: Request, error: httpx.TransportError, attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        if not request.repeatable and not isinstance(error, _UNSENT):
            return None
        return self.backoff_s(attempt)

    def connection_error(self, request: Request, error: httpx.TransportError) -> APIConnectionError:
        return APIConnectionError(
            f"could not reach {self.base_url} for {request.method} {request.path}: "
            f"{type(error).__name__}: {error}"
        )

    def result(self, response: httpx.Response) -> bytes:
        """The body of a 2xx answer; else raises the error it describes."""
        if 200 <= response.status_code < 300:
            return response.content
        raise self.error(response)

    def error(self, response: httpx.Response) -> PaysvcError:
        status = response.status_code
        request_id = response.headers.get("X-Request-Id")
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
        try:
            info: t.ErrorInfo | None = msgspec.json.decode(response.content, type=_ErrorEnvelope).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            info = None
        if info is None:
            kind = error_class(None, status)
            return kind(f"HTTP {status} with a body that is not an API error", http_status=status,
                        request_id=request_id, retry_after_s=retry_after_s, body=response.content)
        return error_class(info.type, status)(
            info.message, http_status=status, type=info.type, code=info.code, param=info.param,
            request_id=info.request_id or request_id, payment=info.payment, retry_after_s=retry_after_s,
            body=response.content,
        )


def _retryable_answer(response: httpx.Response) -> bool:
    if response.status_code in _RETRY_STATUSES:
        return True
    if response.status_code == 409:
        try:
            return msgspec.json.decode(response.content, type=_ErrorEnvelope).error.code == _IN_USE
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
    return False


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    seconds: float
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
