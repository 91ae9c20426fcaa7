from __future__ import annotations

import re

import pytest

from conftest import Api

ID = re.compile(r"^acct_[0-9a-f]{32}$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


async def test_create_account_answers_the_documented_shape(api: Api) -> None:
    r = await api.post("/v1/accounts", {"currency": "usd", "metadata": {"owner": "ann"}})
    assert r.status_code == 201
    body = r.json()
    assert list(body) == ["id", "object", "currency", "allow_negative", "purpose", "balance", "metadata",
                          "created_at"]
    assert ID.match(body["id"])
    assert body["object"] == "account"
    assert body["currency"] == "USD"
    assert body["allow_negative"] is False
    assert body["purpose"] == "general"
    assert body["balance"] == {"posted": 0, "pending": 0, "available": 0}
    assert body["metadata"] == {"owner": "ann"}
    assert TS.match(body["created_at"])
    assert r.headers["x-request-id"].startswith("req_")


async def test_get_account_returns_what_was_created(api: Api) -> None:
    created = await api.account("JPY", allow_negative=True)
    r = await api.get(f"/v1/accounts/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created


@pytest.mark.parametrize("account_id", ["acct_" + "0" * 32, "acct_nothex", "pay_" + "1" * 32, "x"])
async def test_unknown_account_is_404(api: Api, account_id: str) -> None:
    r = await api.get(f"/v1/accounts/{account_id}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "resource_missing"
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"currency": "ZZZ"}, "currency_invalid", "currency"),
        ({"currency": "US"}, "currency_invalid", "currency"),
        ({"currency": 840}, "currency_invalid", "currency"),
        ({}, "parameter_missing", "currency"),
        ({"currency": "USD", "colour": "red"}, "parameter_unknown", "colour"),
        ({"currency": "USD", "allow_negative": "yes"}, "parameter_invalid", "allow_negative"),
        ({"currency": "USD", "metadata": {"k": 1}}, "metadata_invalid", "metadata"),
        ({"currency": "USD", "metadata": {"k" * 41: "v"}}, "metadata_invalid", "metadata"),
        ({"currency": "USD", "metadata": {"k": "v" * 501}}, "metadata_invalid", "metadata"),
        ({"currency": "USD", "metadata": {f"k{i}": "v" for i in range(51)}}, "metadata_invalid", "metadata"),
    ],
)
async def test_invalid_account_bodies_are_400(api: Api, body: object, code: str, param: str) -> None:
    r = await api.post("/v1/accounts", body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    listed = await api.get("/v1/accounts")
    assert listed.json()["data"] == []  # nothing was created


async def test_metadata_limits_count_code_points(api: Api) -> None:
    r = await api.post("/v1/accounts", {"currency": "USD", "metadata": {"é" * 40: "€" * 500}})
    assert r.status_code == 201, r.text


async def test_list_accounts_pages_newest_first(api: Api) -> None:
    made = [await api.account() for _ in range(5)]
    r = await api.get("/v1/accounts", limit=2)
    assert r.status_code == 200
    page = r.json()
    assert page["object"] == "list"
    assert [a["id"] for a in page["data"]] == [made[4]["id"], made[3]["id"]]
    assert page["has_more"] is True
    r = await api.get("/v1/accounts", limit=2, starting_after=made[3]["id"])
    assert [a["id"] for a in r.json()["data"]] == [made[2]["id"], made[1]["id"]]
    r = await api.get("/v1/accounts", limit=2, starting_after=made[1]["id"])
    assert [a["id"] for a in r.json()["data"]] == [made[0]["id"]]
    assert r.json()["has_more"] is False
    everything = (await api.get("/v1/accounts")).json()
    assert len(everything["data"]) == 5 and everything["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5"])
async def test_list_limit_outside_range_is_400(api: Api, limit: str) -> None:
    r = await api.get("/v1/accounts", limit=limit)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "parameter_invalid"
    assert r.json()["error"]["param"] == "limit"


async def test_unknown_cursor_is_400(api: Api, other_api: Api) -> None:
    foreign = await other_api.account()
    for cursor in ["acct_" + "f" * 32, "garbage", foreign["id"]]:
        r = await api.get("/v1/accounts", starting_after=cursor)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_cursor"
        assert r.json()["error"]["param"] == "starting_after"


async def test_account_creation_with_idempotency_key_replays(api: Api) -> None:
    first = await api.post("/v1/accounts", {"currency": "EUR"}, key="acct-once")
    again = await api.post("/v1/accounts", {"currency": "EUR"}, key="acct-once")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert len((await api.get("/v1/accounts")).json()["data"]) == 1
    other = await api.post("/v1/accounts", {"currency": "GBP"}, key="acct-once")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
