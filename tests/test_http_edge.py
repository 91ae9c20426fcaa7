"""The HTTP edge over raw sockets (issue 14): a request runs only when received whole, and the server
holds against slow, huge and ambiguous requests. Each test checks the answer and that nothing was
stored or moved (no payment or idempotency record under the key, balances unchanged)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import ADMIN_TOKEN, Api, RunningServer, db_rows, extra_server
from paysvc import ids
from paysvc.config import Settings

ERROR_KEYS = {"type", "code", "message", "param", "request_id"}


# Raw HTTP/1.1


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def _open(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*_address(base_url))


async def _read_until_closed(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server kept the connection open"
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except ConnectionError:  # reset, or a write of ours the closed connection refused
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def _exchange(base_url: str, data: bytes, timeout_s: float = 10.0) -> bytes:
    """Sends ``data`` (``Connection: close`` requests), returns all the server wrote until it closed."""
    reader, writer = await _open(base_url)
    try:
        writer.write(data)
        await writer.drain()
        return await _read_until_closed(reader, timeout_s)
    finally:
        writer.close()


def _parse(raw: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


def _assert_error(raw: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = _parse(raw)
    assert got == status, raw
    error: dict[str, Any] = json.loads(body)["error"]
    assert ERROR_KEYS <= set(error) and error["code"] == code, raw
    assert headers["x-request-id"] == [error["request_id"]]
    return error


def _request(method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes = b"",
             version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", "Host: test", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# What must not have happened


def _stored_under(app_server: RunningServer, api: Api, key: str) -> int:
    rows = db_rows(app_server.database_url, "SELECT count(*) FROM idempotency_keys WHERE tenant_id = %s "
                   "AND idem_key = %s", (ids.decode(ids.TENANT, api.tenant_id), key))
    return int(rows[0][0])


def _payments_of(app_server: RunningServer, api: Api) -> int:
    rows = db_rows(app_server.database_url, "SELECT count(*) FROM payments WHERE tenant_id = %s",
                   (ids.decode(ids.TENANT, api.tenant_id),))
    return int(rows[0][0])


async def _funded(api: Api) -> tuple[str, str, dict[str, int], dict[str, int]]:
    funding, customer = await api.funded_account(10_000)
    return funding["id"], customer["id"], await api.balance(funding["id"]), await api.balance(customer["id"])


async def _unchanged(api: Api, app_server: RunningServer, payments: int, *accounts: tuple[str, dict[str, int]]) -> None:
    await asyncio.sleep(0.3)  # anything wrongly executed would have committed by now
    assert _payments_of(app_server, api) == payments
    for account_id, balance in accounts:
        assert await api.balance(account_id) == balance


def _payment_body(source: str, destination: str, amount: int = 100) -> bytes:
    return json.dumps({"amount": amount, "currency": "USD", "source": source, "destination": destination}).encode()


async def _requests_total(http: httpx.AsyncClient, method: str, route: str, status: int) -> float:
    text = (await http.get("/metrics")).text
    pattern = (rf'^paysvc_http_requests_total\{{method="{method}",route="{re.escape(route)}",'
               rf'status="{status}"\}} (\S+)$')
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# 1 and 2: a request runs only when its body arrived whole; a client that leaves is a 499


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_an_abandoned_body_never_reaches_the_ledger(
    framing: str, api: Api, http: httpx.AsyncClient, app_server: RunningServer, caplog: pytest.LogCaptureFixture,
) -> None:
    source, destination, source_balance, destination_balance = await _funded(api)
    payments = _payments_of(app_server, api)
    key = f"abandon-{uuid.uuid4().hex}"
    body = _payment_body(source, destination)
    headers = [("Authorization", f"Bearer {api.key}"), ("Idempotency-Key", key), ("Content-Type", "application/json")]
    if framing == "chunked":  # the whole JSON, but never the closing 0-length chunk
        data = _request("POST", "/v1/payments", [*headers, ("Transfer-Encoding", "chunked")], _chunk(body))
    else:  # one byte short of the promised length
        data = _request("POST", "/v1/payments", [*headers, ("Content-Length", str(len(body) + 1))], body)
    gone_before = await _requests_total(http, "POST", "/v1/payments", 499)
    failed_before = await _requests_total(http, "POST", "/v1/payments", 500)
    caplog.set_level(logging.INFO)
    reader, writer = await _open(app_server.base_url)
    writer.write(data)
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()  # the client gives up
    assert await reader.read() == b""  # and got no answer

    await _unchanged(api, app_server, payments, (source, source_balance), (destination, destination_balance))
    assert _stored_under(app_server, api, key) == 0
    assert await _requests_total(http, "POST", "/v1/payments", 499) == gone_before + 1
    assert await _requests_total(http, "POST", "/v1/payments", 500) == failed_before
    gone = [r for r in caplog.records if getattr(r, "status", None) == 499]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]

    # The same request, finished, executes once.
    r = await api.post("/v1/payments", content=body, key=key)
    assert r.status_code == 201, r.text
    assert _payments_of(app_server, api) == payments + 1


async def test_a_chunked_body_received_whole_executes(api: Api, app_server: RunningServer) -> None:
    source, destination, _, _ = await _funded(api)
    key = f"chunked-{uuid.uuid4().hex}"
    body = _payment_body(source, destination, 250)
    data = _request("POST", "/v1/payments", [
        ("Authorization", f"Bearer {api.key}"), ("Idempotency-Key", key), ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"), ("Connection", "close"),
    ], _chunk(body[:10]) + _chunk(body[10:]) + b"0\r\n\r\n")
    status, _, answer = _parse(await _exchange(app_server.base_url, data))
    assert status == 201, answer
    assert json.loads(answer)["amount"] == 250
    assert _stored_under(app_server, api, key) == 1


# 3: the request head's size


async def test_a_head_over_the_limit_is_431_and_closed(api: Api, http: httpx.AsyncClient,
                                                      app_server: RunningServer) -> None:
    limit = app_server.settings.max_head_bytes
    payments = _payments_of(app_server, api)
    # A whole request with a huge header: refused, not executed.
    source, destination, source_balance, destination_balance = await _funded(api)
    body = _payment_body(source, destination)
    data = _request("POST", "/v1/payments", [
        ("Authorization", f"Bearer {api.key}"), ("Idempotency-Key", "big-head"), ("X-Padding", "p" * limit),
        ("Content-Length", str(len(body))),
    ], body)
    _assert_error(await _exchange(app_server.base_url, data), 431, "header_too_large")
    await _unchanged(api, app_server, payments + 1, (source, source_balance), (destination, destination_balance))
    assert _stored_under(app_server, api, "big-head") == 0
    # A header that never ends: refused as soon as it passes the limit, in pieces or in one piece.
    for piece in (1024, 4 * limit):
        reader, writer = await _open(app_server.base_url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Padding: ")
        answer = b""
        for _ in range(0, 8 * limit, piece):
            try:
                writer.write(b"p" * piece)
                await writer.drain()
            except ConnectionError:
                break
            answer += await _read_available(reader)
            if answer:
                break
        answer += await _read_until_closed(reader)
        writer.close()
        _assert_error(answer, 431, "header_too_large")
    # Many headers, each small: the sum counts. The answer is counted in the request metrics.
    counted = await _requests_total(http, "GET", "unmatched", 431)
    many = [(f"X-H{i}", "v" * 60) for i in range(limit // 60)]
    _assert_error(await _exchange(app_server.base_url, _request("GET", "/healthz", many)), 431, "header_too_large")
    assert await _requests_total(http, "GET", "unmatched", 431) == counted + 1
    # Just under the limit is served.
    ok = await _exchange(app_server.base_url, _request("GET", "/healthz", [("X-Padding", "p" * (limit - 200)),
                                                                           ("Connection", "close")]))
    assert _parse(ok)[0] == 200


async def _read_available(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), 0.05)
    except (TimeoutError, ConnectionError):
        return b""


# 4: timeouts and the connection cap


async def test_slow_and_idle_connections_are_closed(database_url: str, api: Api, app_server: RunningServer) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, pool_size=2, rate_limit_per_s=0,
                        expiry_sweep_interval_s=3_600, head_timeout_ms=400, body_timeout_ms=400,
                        keepalive_timeout_s=1)
    source, destination, source_balance, destination_balance = await _funded(api)
    payments = _payments_of(app_server, api)
    async with extra_server(settings) as base_url:
        # A connection that sends nothing.
        reader, _ = await _open(base_url)
        started = time.monotonic()
        assert await _read_until_closed(reader, 5) == b""
        assert time.monotonic() - started < 3
        # A head that trickles in.
        reader, writer = await _open(base_url)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        for _ in range(20):
            await asyncio.sleep(0.1)
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            except ConnectionError:
                break
        assert await _read_until_closed(reader, 5) == b""
        assert time.monotonic() - started < 3
        writer.close()
        # A body promised by Content-Length and never sent: closed, nothing executed.
        key = f"slow-body-{uuid.uuid4().hex}"
        body = _payment_body(source, destination)
        reader, writer = await _open(base_url)
        writer.write(_request("POST", "/v1/payments", [
            ("Authorization", f"Bearer {api.key}"), ("Idempotency-Key", key), ("Content-Length", str(len(body))),
        ], body[:20]))
        started = time.monotonic()
        assert await _read_until_closed(reader, 5) == b""
        assert time.monotonic() - started < 3
        writer.close()
        await _unchanged(api, app_server, payments, (source, source_balance), (destination, destination_balance))
        assert _stored_under(app_server, api, key) == 0
        # An idle keep-alive connection, after an answered request.
        reader, writer = await _open(base_url)
        writer.write(_request("GET", "/healthz", []))
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        await _read_until_closed(reader, 5)
        assert 0.5 < time.monotonic() - started < 3
        writer.close()


async def test_connections_over_the_cap_are_refused(database_url: str) -> None:
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, pool_size=2, rate_limit_per_s=0,
                        expiry_sweep_interval_s=3_600, max_connections=3)
    async with extra_server(settings) as base_url:
        held = [await _open(base_url) for _ in range(3)]
        for reader, writer in held:  # each is served
            writer.write(_request("GET", "/healthz", []))
            await writer.drain()
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
        reader, writer = await _open(base_url)
        error = _assert_error(await _read_until_closed(reader), 503, "service_unavailable")
        assert error["type"] == "api_error"
        writer.close()
        for _, w in held:
            w.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=base_url) as client:  # room again
            assert (await client.get("/healthz")).status_code == 200


# 5: ambiguous keys


async def test_two_idempotency_keys_are_refused(api: Api, app_server: RunningServer) -> None:
    source, destination, source_balance, destination_balance = await _funded(api)
    payments = _payments_of(app_server, api)
    body = _payment_body(source, destination)
    auth = ("Authorization", f"Bearer {api.key}")
    for keys in ([("Idempotency-Key", "first"), ("Idempotency-Key", "second")], [("Idempotency-Key", "first, second")]):
        data = _request("POST", "/v1/payments", [auth, *keys, ("Content-Length", str(len(body))),
                                                 ("Connection", "close")], body)
        error = _assert_error(await _exchange(app_server.base_url, data), 400, "idempotency_key_invalid")
        assert error["param"] == "Idempotency-Key"
    await _unchanged(api, app_server, payments, (source, source_balance), (destination, destination_balance))
    for key in ("first", "second", "first, second"):
        assert _stored_under(app_server, api, key) == 0
    # The check keeps its place in the order: authentication first.
    data = _request("POST", "/v1/payments", [("Idempotency-Key", "a"), ("Idempotency-Key", "b"),
                                             ("Content-Length", str(len(body))), ("Connection", "close")], body)
    _assert_error(await _exchange(app_server.base_url, data), 401, "api_key_missing")


@pytest.mark.parametrize(("raw", "param"), [
    ('{{"amount": 100, "currency": "USD", "source": "{s}", "destination": "{d}", "amount": 200}}', "amount"),
    ('{{"amount": 100, "currency": "USD", "source": "{s}", "destination": "{d}", "metadata": {{"k": "1", "k": "2"}}}}',
     "metadata.k"),
    ('{{"amount": 100, "currency": "USD", "source": "{s}", "destination": "{d}", "\\u0061mount": 100}}', "amount"),
    ('{{"amount": 100, "currency": "USD", "source": "{s}", "destination": "{d}", "amount": "x"}}', "amount"),
])
async def test_repeated_json_keys_are_json_invalid(raw: str, param: str, api: Api, app_server: RunningServer) -> None:
    source, destination, source_balance, destination_balance = await _funded(api)
    payments = _payments_of(app_server, api)
    key = f"dup-{uuid.uuid4().hex}"
    r = await api.post("/v1/payments", content=raw.format(s=source, d=destination).encode(), key=key)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "json_invalid" and r.json()["error"]["param"] == param
    await _unchanged(api, app_server, payments, (source, source_balance), (destination, destination_balance))
    assert _stored_under(app_server, api, key) == 0


async def test_repeated_keys_in_other_bodies(api: Api) -> None:
    r = await api.post("/v1/accounts", content=b'{"currency": "USD", "currency": "EUR"}')
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_invalid", r.text
    r = await api.http.put("/v1/fee-schedule", headers={**api.headers, "Content-Type": "application/json"},
                           content=b'{"rules": [{"currency": "USD", "percent_bps": 1, "percent_bps": 2}]}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "rules[0].percent_bps", r.text
    assert (await api.get("/v1/fee-schedule")).json() == {"rules": []}


# 6: query parameters


async def test_query_parameters_are_strict(api: Api, http: httpx.AsyncClient) -> None:
    await api.account()
    for query, code, param in [
        ("limit=1e2", "parameter_invalid", "limit"), ("limit=5.0", "parameter_invalid", "limit"),
        ("limit=%2B5", "parameter_invalid", "limit"), ("limit=010", "parameter_invalid", "limit"),
        ("limit=", "parameter_invalid", "limit"), ("limit=%EF%BC%95", "parameter_invalid", "limit"),
        ("limit=5&limit=6", "parameter_invalid", "limit"), ("limitt=5", "parameter_unknown", "limitt"),
        ("limit=5&expand=x", "parameter_unknown", "expand"), ("starting_after=a&starting_after=b", "parameter_invalid",
                                                              "starting_after"),
    ]:
        r = await http.get(f"/v1/accounts?{query}", headers=api.headers)
        assert r.status_code == 400, (query, r.text)
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param), query
    # Authentication comes first; a well-formed query is served.
    r = await http.get("/v1/accounts?limit=1e2&bogus=1")
    assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_missing"
    r = await http.get("/v1/accounts?limit=1", headers=api.headers)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = await http.get("/v1/events?type=payment.succeeded&limit=2", headers=api.headers)
    assert r.status_code == 200, r.text
    r = await http.get("/v1/events?type=payment.succeeded&type=refund.succeeded", headers=api.headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "type"
    # Routes without a key read their query the same way.
    r = await http.get("/healthz?verbose=1")
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_unknown"


# 7: methods, authentication challenge, transfer codings


async def test_405_names_the_allowed_methods_and_options_lists_them(http: httpx.AsyncClient, api: Api) -> None:
    r = await http.delete("/v1/payments", headers=api.headers)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert _methods(r.headers["allow"]) == {"GET", "POST", "OPTIONS"}
    r = await http.patch("/v1/fee-schedule")
    assert r.status_code == 405 and _methods(r.headers["allow"]) == {"GET", "PUT", "OPTIONS"}
    for path, methods in [("/v1/payments", {"GET", "POST", "OPTIONS"}),
                          ("/v1/payments/pay_x/refunds", {"GET", "POST", "OPTIONS"}),
                          ("/v1/fee-schedule", {"GET", "PUT", "OPTIONS"}), ("/healthz", {"GET", "OPTIONS"})]:
        r = await http.options(path)
        assert r.status_code in (200, 204), r.text
        assert _methods(r.headers["allow"]) == methods, path


def _methods(allow: str) -> set[str]:
    return {m.strip() for m in allow.split(",")}


async def test_401_challenges_with_bearer(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": "Basic dXNlcg=="}):
        r = await http.get("/v1/accounts", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await http.post("/admin/v1/tenants", json={"name": "x"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("version", "coding", "status", "code"), [
    ("HTTP/1.1", "gzip, chunked", 501, "transfer_encoding_unsupported"),
    ("HTTP/1.1", "chunked, chunked", 400, "parameter_invalid"),  # the parser's own refusal
    ("HTTP/1.0", "chunked", 400, "parameter_invalid"),
])
async def test_faulty_transfer_codings_are_refused_and_closed(
    version: str, coding: str, status: int, code: str, api: Api, app_server: RunningServer,
) -> None:
    source, destination, source_balance, destination_balance = await _funded(api)
    payments = _payments_of(app_server, api)
    key = f"te-{uuid.uuid4().hex}"
    body = _payment_body(source, destination)
    data = _request("POST", "/v1/payments", [
        ("Authorization", f"Bearer {api.key}"), ("Idempotency-Key", key), ("Content-Type", "application/json"),
        ("Transfer-Encoding", coding),
    ], _chunk(body) + b"0\r\n\r\n", version=version)
    error = _assert_error(await _exchange(app_server.base_url, data), status, code)  # and closed
    assert error["param"] in ("Transfer-Encoding", None)
    await _unchanged(api, app_server, payments, (source, source_balance), (destination, destination_balance))
    assert _stored_under(app_server, api, key) == 0


async def test_unparseable_requests_get_the_error_shape(app_server: RunningServer) -> None:
    _assert_error(await _exchange(app_server.base_url, b"NOT HTTP\r\n\r\n"), 400, "parameter_invalid")
    both = _request("POST", "/v1/payments", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n")
    status, _, _ = _parse(await _exchange(app_server.base_url, both))
    assert status in (400, 501)
