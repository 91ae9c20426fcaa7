"""POST /v1/payments/batch: up to 1000 payments, each answered exactly as POST /v1/payments would."""

from __future__ import annotations

import json
from typing import Any

from conftest import Api, RunningServer
from invariants import assert_books_balance


def _item(source: str, destination: str, amount: int, key: str | None, **extra: Any) -> dict[str, Any]:
    item = {"amount": amount, "currency": "USD", "source": source, "destination": destination, **extra}
    if key is not None:
        item["idempotency_key"] = key
    return item


async def test_each_item_gets_what_the_single_endpoint_would_answer(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    single = await api.pay(payer["id"], payee["id"], 5, key="b-single")
    items = [
        _item(payer["id"], payee["id"], 100, "b-1"),
        _item(payer["id"], payee["id"], 100, "b-2", capture=False),
        _item(payer["id"], payee["id"], 10_000, "b-3"),                    # declined
        _item(payer["id"], "acct_" + "0" * 32, 1, "b-4"),                  # no such destination
        _item(payer["id"], payee["id"], 0, "b-5"),                         # invalid amount
        _item(payer["id"], payee["id"], 1, None),                          # no key
        _item(payer["id"], payee["id"], 5, "b-single"),                    # replay of the single request
        _item(payer["id"], payee["id"], 6, "b-single"),                    # same key, other request
        {"amount": "7", "currency": "USD"},                                # wrong type
        _item(payer["id"], payee["id"], 1, "b-1"),                         # key used earlier in this batch
    ]
    r = await api.post("/v1/payments/batch", {"payments": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == len(items)
    results = [(x["status"], x["body"]) for x in body["data"]]
    assert results[0][0] == 201 and results[0][1]["status"] == "succeeded" and results[0][1]["amount"] == 100
    assert results[1][0] == 201 and results[1][1]["status"] == "requires_capture"
    assert results[2][0] == 402 and results[2][1]["error"]["code"] == "insufficient_funds"
    assert results[3][0] == 404 and results[3][1]["error"]["param"] == "destination"
    assert results[4][0] == 400 and results[4][1]["error"]["code"] == "amount_invalid"
    assert results[5][0] == 400 and results[5][1]["error"]["code"] == "idempotency_key_missing"
    assert results[6] == (201, single.json())
    assert results[7][0] == 422 and results[7][1]["error"]["code"] == "idempotency_key_reused"
    assert results[8][0] == 400 and results[8][1]["error"]["code"] == "amount_invalid"
    # A key used twice in one batch is answered as if sent twice in order: here a different request.
    assert results[9][0] == 422
    for status, item_body in results:
        if status >= 400:
            assert item_body["error"]["request_id"] == r.headers["x-request-id"]
    assert await api.balance(payer["id"]) == {"posted": 1_000 - 5 - 100, "pending": 100, "available": 795}
    # Each created payment is the single endpoint's: replaying it there gives the same bytes.
    again = await api.pay(payer["id"], payee["id"], 100, key="b-1")
    assert again.status_code == 201 and again.json() == results[0][1]
    assert_books_balance(app_server.database_url)


async def test_batch_limits(api: Api) -> None:
    _, payer = await api.funded_account(10_000)
    payee = await api.account()
    for payments in ([], [_item(payer["id"], payee["id"], 1, f"l-{i}") for i in range(1_001)]):
        r = await api.post("/v1/payments/batch", {"payments": payments})
        assert r.status_code == 400 and r.json()["error"]["param"] == "payments", r.text
    assert (await api.post("/v1/payments/batch", {"payments": "x"})).status_code == 400
    assert (await api.post("/v1/payments/batch", {"payments": [], "extra": 1})).status_code == 400
    # 1000 items (about 190 KiB: over the 64 KiB of other bodies, under the batch's 1 MiB) are fine.
    items = [_item(payer["id"], payee["id"], 1, f"m-{i}") for i in range(1_000)]
    r = await api.post("/v1/payments/batch", {"payments": items})
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["data"]] == [201] * 1_000
    assert await api.balance(payee["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    too_big = json.dumps({"payments": [_item(payer["id"], payee["id"], 1, "x" * 255, description="d" * 1000)] * 1_000})
    assert len(too_big) > 1024 * 1024
    r = await api.post("/v1/payments/batch", content=too_big.encode())
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert (await api.post("/v1/payments", content=b" " * (65 * 1024))).status_code == 413
