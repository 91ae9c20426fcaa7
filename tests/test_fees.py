from __future__ import annotations

import pytest

from conftest import Api, RunningServer
from invariants import assert_books_balance


async def test_schedule_is_empty_before_any_put(api: Api) -> None:
    r = await api.get("/v1/fee-schedule")
    assert r.status_code == 200 and r.json() == {"rules": []}


async def test_put_replaces_the_schedule_and_creates_the_fee_account(api: Api) -> None:
    r = await api.put("/v1/fee-schedule", {"rules": [{"currency": "usd", "percent_bps": 290, "fixed": 30}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"rules": [{"currency": "USD", "percent_bps": 290, "fixed": 30, "min": None, "max": None}]}
    assert (await api.get("/v1/fee-schedule")).json() == r.json()
    accounts = (await api.get("/v1/accounts")).json()["data"]
    fee_accounts = [a for a in accounts if a["purpose"] == "fees"]
    assert len(fee_accounts) == 1 and fee_accounts[0]["currency"] == "USD"
    # Replacing keeps the fee account and does not create a second one.
    r = await api.put("/v1/fee-schedule", {"rules": [{"currency": "EUR", "percent_bps": 100},
                                                     {"currency": "USD", "percent_bps": 0, "fixed": 1}]})
    assert [rule["currency"] for rule in r.json()["rules"]] == ["EUR", "USD"]
    r = await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 5}]})
    assert r.json()["rules"] == [{"currency": "USD", "percent_bps": 5, "fixed": 0, "min": None, "max": None}]
    purposes = [(a["currency"], a["purpose"]) for a in (await api.get("/v1/accounts")).json()["data"]]
    assert sorted(purposes) == [("EUR", "fees"), ("USD", "fees")]


async def test_payment_with_fee_posts_three_entries(api: Api, app_server: RunningServer) -> None:
    await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 290, "fixed": 30}]})
    fee_account = next(a for a in (await api.get("/v1/accounts")).json()["data"] if a["purpose"] == "fees")
    _, alice = await api.funded_account(10_000)
    bob = await api.account()
    r = await api.pay(alice["id"], bob["id"], 1_000)
    assert r.status_code == 201
    payment = r.json()
    assert (payment["fee"], payment["net"]) == (59, 941)  # 1000 * 2.9% = 29, + 30
    # The deposit paid its fee too: 10000 * 2.9% + 30 = 320, so alice got 9680.
    assert (await api.balance(alice["id"]))["posted"] == 9_680 - 1_000
    assert (await api.balance(bob["id"]))["posted"] == 941
    fee_entries = (await api.get(f"/v1/accounts/{fee_account['id']}/entries")).json()["data"]
    assert (fee_entries[0]["kind"], fee_entries[0]["payment"]) == ("fee", payment["id"])
    assert_books_balance(app_server.database_url)


@pytest.mark.parametrize(
    ("rule", "amount", "fee"),
    [
        ({"percent_bps": 1000}, 25, 2),    # 2.5 -> 2 (half to even)
        ({"percent_bps": 1000}, 35, 4),    # 3.5 -> 4
        ({"percent_bps": 1000}, 36, 4),    # 3.6 -> 4
        ({"percent_bps": 1000, "min": 50}, 100, 50),
        ({"percent_bps": 5000, "max": 20}, 100, 20),
        ({"percent_bps": 0, "fixed": 0}, 100, 0),
        ({"percent_bps": 10000}, 77, 77),  # fee == amount is allowed: net 0
    ],
)
async def test_fee_rounding_and_clamps(api: Api, rule: dict[str, int], amount: int, fee: int) -> None:
    assert (await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", **rule}]})).status_code == 200
    funding = await api.account(allow_negative=True)
    bob = await api.account()
    r = await api.pay(funding["id"], bob["id"], amount)
    assert r.status_code == 201, r.text
    assert (r.json()["fee"], r.json()["net"]) == (fee, amount - fee)
    assert (await api.balance(bob["id"]))["posted"] == amount - fee


async def test_fee_greater_than_amount_is_400_for_payments_and_holds(api: Api) -> None:
    await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 0, "fixed": 30}]})
    funding = await api.account(allow_negative=True)
    bob = await api.account()
    for capture in (True, False):
        r = await api.pay(funding["id"], bob["id"], 29, capture=capture)
        assert r.status_code == 400
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("amount_too_small", "amount")
    assert (await api.balance(funding["id"]))["posted"] == 0


async def test_fees_are_per_currency(api: Api) -> None:
    await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 1000}]})
    funding = await api.account("EUR", allow_negative=True)
    bob = await api.account("EUR")
    r = await api.pay(funding["id"], bob["id"], 1_000, currency="EUR")
    assert (r.json()["fee"], r.json()["net"]) == (0, 1_000)


@pytest.mark.parametrize(
    ("rules", "code", "param"),
    [
        ([{"currency": "USD", "percent_bps": 10001}], "parameter_invalid", "rules[0].percent_bps"),
        ([{"currency": "USD", "percent_bps": -1}], "parameter_invalid", "rules[0].percent_bps"),
        ([{"currency": "USD", "percent_bps": 1, "fixed": -1}], "parameter_invalid", "rules[0].fixed"),
        ([{"currency": "USD", "percent_bps": 1, "min": 9, "max": 8}], "parameter_invalid", "rules[0].min"),
        ([{"currency": "USD", "percent_bps": 1}, {"currency": "usd", "percent_bps": 2}],
         "parameter_invalid", "rules[1].currency"),
        ([{"currency": "XYZ", "percent_bps": 1}], "currency_invalid", "rules[0].currency"),
        ([{"currency": "USD"}], "parameter_missing", "rules[0].percent_bps"),
        ([{"currency": "USD", "percent_bps": 1.5}], "parameter_invalid", "rules[0].percent_bps"),
    ],
)
async def test_invalid_schedules_are_400_and_change_nothing(api: Api, rules: object, code: str, param: str) -> None:
    r = await api.put("/v1/fee-schedule", {"rules": rules})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)
    assert (await api.get("/v1/fee-schedule")).json() == {"rules": []}
