from __future__ import annotations

import re

import pytest

from conftest import Api, RunningServer
from invariants import assert_books_balance

PAY_ID = re.compile(r"^pay_[0-9a-f]{32}$")
PAYMENT_FIELDS = ["id", "object", "amount", "amount_captured", "amount_refunded", "fee", "net", "currency",
                  "source", "destination", "status", "failure_code", "cancellation_reason", "description",
                  "metadata", "created_at", "expires_at", "outcome", "review", "fraud_details"]


async def test_deposit_then_payment_moves_money_and_writes_entries(api: Api, app_server: RunningServer) -> None:
    funding, alice = await api.funded_account(10_000)
    bob = await api.account()
    r = await api.pay(alice["id"], bob["id"], 2_500, description="rent", metadata={"invoice": "7"})
    assert r.status_code == 201, r.text
    payment = r.json()
    assert list(payment) == PAYMENT_FIELDS
    assert PAY_ID.match(payment["id"])
    assert payment["object"] == "payment"
    assert payment["status"] == "succeeded"
    assert (payment["amount"], payment["amount_captured"], payment["amount_refunded"]) == (2_500, 2_500, 0)
    assert (payment["fee"], payment["net"]) == (0, 2_500)
    assert payment["failure_code"] is None and payment["cancellation_reason"] is None
    assert payment["description"] == "rent" and payment["metadata"] == {"invoice": "7"}
    assert payment["expires_at"] is None
    assert await api.balance(funding["id"]) == {"posted": -10_000, "pending": 0, "available": -10_000}
    assert await api.balance(alice["id"]) == {"posted": 7_500, "pending": 0, "available": 7_500}
    assert await api.balance(bob["id"]) == {"posted": 2_500, "pending": 0, "available": 2_500}

    entries = (await api.get(f"/v1/accounts/{alice['id']}/entries")).json()
    assert entries["object"] == "list" and entries["has_more"] is False
    newest, oldest = entries["data"]
    assert list(newest) == ["id", "object", "account", "payment", "refund", "kind", "amount", "balance_after",
                            "seq", "created_at"]
    assert newest["id"].startswith("ent_") and newest["object"] == "entry"
    assert (newest["kind"], newest["amount"], newest["balance_after"], newest["seq"]) == ("payment", -2_500, 7_500, 2)
    assert (oldest["amount"], oldest["balance_after"], oldest["seq"]) == (10_000, 10_000, 1)
    assert newest["payment"] == payment["id"] and newest["refund"] is None and newest["account"] == alice["id"]
    assert_books_balance(app_server.database_url)

    got = await api.get(f"/v1/payments/{payment['id']}")
    assert got.status_code == 200 and got.json() == payment


async def test_entries_paginate_by_seq(api: Api) -> None:
    funding, alice = await api.funded_account(0)
    for amount in (1, 2, 3, 4, 5):
        assert (await api.pay(funding["id"], alice["id"], amount)).status_code == 201
    page = (await api.get(f"/v1/accounts/{alice['id']}/entries", limit=2)).json()
    assert [e["seq"] for e in page["data"]] == [5, 4] and page["has_more"]
    page = (await api.get(f"/v1/accounts/{alice['id']}/entries", limit=2,
                          starting_after=page["data"][-1]["id"])).json()
    assert [e["seq"] for e in page["data"]] == [3, 2] and page["has_more"]
    page = (await api.get(f"/v1/accounts/{alice['id']}/entries", limit=2,
                          starting_after=page["data"][-1]["id"])).json()
    assert [(e["seq"], e["balance_after"]) for e in page["data"]] == [(1, 1)] and not page["has_more"]
    bad = await api.get(f"/v1/accounts/{alice['id']}/entries", starting_after="ent_" + "0" * 32)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_insufficient_funds_is_402_recorded_as_failed_and_moves_nothing(api: Api) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    r = await api.pay(alice["id"], bob["id"], 101)
    assert r.status_code == 402
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("payment_error", "insufficient_funds")
    assert error["request_id"] == r.headers["x-request-id"]
    failed = (await api.get(f"/v1/payments/{error['payment']}")).json()
    assert failed["status"] == "failed" and failed["failure_code"] == "insufficient_funds"
    assert failed["fee"] is None and failed["net"] is None and failed["amount_captured"] == 0
    assert await api.balance(alice["id"]) == {"posted": 100, "pending": 0, "available": 100}
    assert await api.balance(bob["id"]) == {"posted": 0, "pending": 0, "available": 0}
    listed = (await api.get("/v1/payments", status="failed")).json()["data"]
    assert [p["id"] for p in listed] == [failed["id"]]


async def test_exact_balance_can_be_spent_to_zero(api: Api) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    assert (await api.pay(alice["id"], bob["id"], 100)).status_code == 201
    assert (await api.balance(alice["id"]))["available"] == 0


async def test_hold_reserves_funds_without_posting(api: Api, app_server: RunningServer) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    r = await api.pay(alice["id"], bob["id"], 600, capture=False)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["status"] == "requires_capture"
    assert hold["amount_captured"] == 0 and hold["fee"] is None and hold["net"] is None
    assert hold["expires_at"] is not None and hold["expires_at"] > hold["created_at"]
    assert await api.balance(alice["id"]) == {"posted": 1_000, "pending": 600, "available": 400}
    assert await api.balance(bob["id"]) == {"posted": 0, "pending": 0, "available": 0}
    # The held funds cannot be spent twice.
    r = await api.pay(alice["id"], bob["id"], 401)
    assert r.status_code == 402
    r = await api.pay(alice["id"], bob["id"], 401, capture=False)
    assert r.status_code == 402
    assert await api.balance(alice["id"]) == {"posted": 1_000, "pending": 600, "available": 400}
    assert_books_balance(app_server.database_url)


async def test_hold_expiry_window_is_validated(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    for bad in (59, 30 * 86_400 + 1):
        r = await api.pay(alice["id"], bob["id"], 10, capture=False, expires_in_s=bad)
        assert r.status_code == 400 and r.json()["error"]["param"] == "expires_in_s"
    r = await api.pay(alice["id"], bob["id"], 10, expires_in_s=3600)  # only for holds
    assert r.status_code == 400 and r.json()["error"]["param"] == "expires_in_s"
    r = await api.pay(alice["id"], bob["id"], 10, capture=False, expires_in_s=60)
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("amount", "code"),
    [(0, "amount_invalid"), (-5, "amount_invalid"), (10**15 + 1, "amount_invalid"), (100.0, "amount_invalid"),
     ("100", "amount_invalid"), (True, "amount_invalid"), (None, "amount_invalid")],
)
async def test_invalid_amounts_are_400(api: Api, amount: object, code: str) -> None:
    _, alice = await api.funded_account(0)
    bob = await api.account()
    r = await api.post("/v1/payments", {"amount": amount, "currency": "USD", "source": alice["id"],
                                        "destination": bob["id"]}, key="k1")
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, "amount")


async def test_amount_in_exponent_notation_is_400(api: Api) -> None:
    _, alice = await api.funded_account(0)
    bob = await api.account()
    raw = f'{{"amount": 1e2, "currency": "USD", "source": "{alice["id"]}", "destination": "{bob["id"]}"}}'.encode()
    r = await api.post("/v1/payments", content=raw, key="k-exp")
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_invalid"


async def test_the_maximum_amount_is_accepted(api: Api) -> None:
    funding = await api.account(allow_negative=True)
    bob = await api.account()
    r = await api.pay(funding["id"], bob["id"], 10**15)
    assert r.status_code == 201, r.text
    assert (await api.balance(bob["id"]))["posted"] == 10**15


async def test_same_account_and_currency_mismatch_are_400(api: Api) -> None:
    _, alice = await api.funded_account(500)
    euro = await api.account("EUR")
    r = await api.pay(alice["id"], alice["id"], 10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "same_account"
    assert r.json()["error"]["param"] == "destination"
    r = await api.pay(alice["id"], euro["id"], 10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "currency_mismatch"
    r = await api.pay(alice["id"], euro["id"], 10, currency="EUR")
    assert r.status_code == 400 and r.json()["error"]["code"] == "currency_mismatch"
    assert (await api.balance(alice["id"]))["posted"] == 500


async def test_unknown_accounts_are_404_naming_the_field(api: Api) -> None:
    _, alice = await api.funded_account(500)
    ghost = "acct_" + "a" * 32
    r = await api.pay(ghost, alice["id"], 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "source"
    r = await api.pay(alice["id"], ghost, 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "destination"
    r = await api.pay(alice["id"], "not-an-id", 10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"


async def test_missing_and_unknown_fields(api: Api) -> None:
    r = await api.post("/v1/payments", {"amount": 5, "currency": "USD", "source": "acct_x"}, key="k")
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("parameter_missing", "destination")
    r = await api.post("/v1/payments", {"amount": 5, "currency": "USD", "source": "a", "destination": "b",
                                        "tip": 1}, key="k")
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("parameter_unknown", "tip")


async def test_description_limit_counts_code_points(api: Api) -> None:
    _, alice = await api.funded_account(500)
    bob = await api.account()
    assert (await api.pay(alice["id"], bob["id"], 1, description="ü" * 1000)).status_code == 201
    r = await api.pay(alice["id"], bob["id"], 1, description="ü" * 1001)
    assert r.status_code == 400 and r.json()["error"]["param"] == "description"


async def test_list_payments_newest_first_with_status_filter(api: Api) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    made = [(await api.pay(alice["id"], bob["id"], 1)).json()["id"] for _ in range(3)]
    hold = (await api.pay(alice["id"], bob["id"], 1, capture=False)).json()["id"]
    everything = (await api.get("/v1/payments", limit=100)).json()["data"]
    ids = [p["id"] for p in everything]
    assert ids[:4] == [hold, *reversed(made)]
    held = (await api.get("/v1/payments", status="requires_capture")).json()
    assert [p["id"] for p in held["data"]] == [hold]
    page = (await api.get("/v1/payments", limit=1, starting_after=made[2])).json()
    assert [p["id"] for p in page["data"]] == [made[1]] and page["has_more"] is True
    bad = await api.get("/v1/payments", status="pending")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


async def test_other_currency_exponents(api: Api) -> None:
    for currency in ("JPY", "KWD", "CLF"):
        funding = await api.account(currency, allow_negative=True)
        dest = await api.account(currency.lower())
        r = await api.pay(funding["id"], dest["id"], 1234, currency=currency.lower())
        assert r.status_code == 201, r.text
        assert r.json()["currency"] == currency
