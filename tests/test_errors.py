from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from conftest import ADMIN_TOKEN, Api

ERROR_KEYS = {"type", "code", "message", "param", "request_id"}


def assert_error(r: httpx.Response, status: int, code: str, type_: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert ERROR_KEYS <= set(error)
    assert error["code"] == code
    if type_ is not None:
        assert error["type"] == type_
    assert error["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    return error


async def test_every_response_carries_a_request_id(http: httpx.AsyncClient, api: Api) -> None:
    for r in [await http.get("/healthz"), await api.get("/v1/accounts"), await http.get("/v1/accounts")]:
        assert r.headers["x-request-id"].startswith("req_")
    a, b = await http.get("/healthz"), await http.get("/healthz")
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


async def test_authentication_errors(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v1/accounts"), 401, "api_key_missing", "authentication_error")
    assert_error(await http.get("/v1/accounts", headers={"Authorization": "Bearer sk_nope"}),
                 401, "api_key_invalid", "authentication_error")
    assert_error(await http.get("/v1/accounts", headers={"Authorization": "Basic abc"}), 401, "api_key_missing")
    assert_error(await http.post("/v1/payments", json={}), 401, "api_key_missing")


async def test_admin_needs_the_admin_token(http: httpx.AsyncClient, api: Api) -> None:
    assert_error(await http.post("/admin/v1/tenants", json={"name": "x"}), 401, "api_key_missing")
    assert_error(await http.post("/admin/v1/tenants", json={"name": "x"},
                                 headers={"Authorization": "Bearer wrong-token-0000000"}), 401, "api_key_invalid")
    assert_error(await http.post("/admin/v1/tenants", json={"name": "x"}, headers=api.headers), 401, "api_key_invalid")
    r = await http.post("/admin/v1/tenants", json={"name": ""}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert_error(r, 400, "parameter_invalid")
    r = await http.post("/admin/v1/tenants", json={"name": "Initech"},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 201
    assert list(r.json()) == ["id", "name", "api_key"] and r.json()["name"] == "Initech"


async def test_body_too_large_is_413_before_authentication(http: httpx.AsyncClient, api: Api) -> None:
    big = b'{"currency": "USD", "metadata": {"k": "' + b"x" * (64 * 1024) + b'"}}'
    assert_error(await http.post("/v1/accounts", content=big), 413, "body_too_large", "invalid_request_error")
    assert_error(await api.post("/v1/accounts", content=big), 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    r = await http.post("/v1/accounts", content=chunks(), headers=api.headers)
    assert_error(r, 413, "body_too_large")
    exactly = b'{"currency":"USD"}'.ljust(64 * 1024)
    assert (await api.post("/v1/accounts", content=exactly)).status_code == 201


async def test_authentication_comes_before_body_checks(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/v1/payments", content=b"{not json"), 401, "api_key_missing")
    assert_error(await http.get("/v1/accounts", params={"limit": "0"}), 401, "api_key_missing")


async def test_body_checks_come_before_the_idempotency_key(api: Api) -> None:
    assert_error(await api.post("/v1/payments", {"amount": 1}), 400, "parameter_missing")


async def test_malformed_json(api: Api) -> None:
    for raw in [b"{bad", b"[]", b'"text"', b"", b'{"currency": "USD",}']:
        assert_error(await api.post("/v1/accounts", content=raw), 400, "json_invalid", "invalid_request_error")


async def test_unknown_route_and_method(http: httpx.AsyncClient, api: Api) -> None:
    assert_error(await api.get("/v1/nothing-here"), 404, "resource_missing")
    r = await http.delete("/v1/accounts", headers=api.headers)
    assert r.status_code == 405 and r.json()["error"]["request_id"] == r.headers["x-request-id"]
