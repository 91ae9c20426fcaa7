"""The payment lifecycle over HTTP: authorize, capture (full and partial), cancel, expiry, and every
forbidden transition (design brief, sections 2 and 2b)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from conftest import Api, RunningServer, expire_hold
from invariants import assert_books_balance

USD_FEE = {"currency": "USD", "percent_bps": 290, "fixed": 30}  # 2.9 % + 30


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _fee_account(api: Api, currency: str = "USD") -> str:
    r = await api.get("/v1/accounts", limit=100)
    (fees,) = [a["id"] for a in r.json()["data"] if a["purpose"] == "fees" and a["currency"] == currency]
    return str(fees)


async def _entries(api: Api, account_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/accounts/{account_id}/entries", limit=100)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def test_authorize_holds_the_amount_and_posts_nothing(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 400)
    assert hold["amount_captured"] == 0 and hold["fee"] is None and hold["net"] is None
    assert hold["failure_code"] is None and hold["cancellation_reason"] is None
    assert _time(hold["expires_at"]) - _time(hold["created_at"]) == timedelta(days=7)
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 400, "available": 600}
    assert await api.balance(payee["id"]) == {"posted": 0, "pending": 0, "available": 0}
    assert len(await _entries(api, payer["id"])) == 1  # only the deposit

    short = await api.hold(payer["id"], payee["id"], 100, expires_in_s=60)
    assert _time(short["expires_at"]) - _time(short["created_at"]) == timedelta(seconds=60)
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 500, "available": 500}
    assert_books_balance(app_server.database_url)


async def test_a_hold_beyond_available_is_declined_and_holds_nothing(api: Api) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    await api.hold(payer["id"], payee["id"], 700)
    r = await api.pay(payer["id"], payee["id"], 301, capture=False)
    assert r.status_code == 402, r.text
    declined = await api.payment(r.json()["error"]["payment"])
    assert declined["status"] == "failed" and declined["failure_code"] == "insufficient_funds"
    assert (declined["expires_at"], declined["fee"], declined["net"]) == (None, None, None)
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 700, "available": 300}


async def test_full_capture_posts_amount_and_fee_and_releases_the_hold(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(5_000)  # before the fee schedule: the deposit pays no fee
    assert (await api.put("/v1/fee-schedule", {"rules": [USD_FEE]})).status_code == 200
    fees = await _fee_account(api)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 2_500)
    r = await api.capture(hold["id"])
    assert r.status_code == 200, r.text
    captured = r.json()
    assert captured["status"] == "succeeded"
    assert (captured["amount"], captured["amount_captured"], captured["fee"], captured["net"]) == (2_500, 2_500, 102,
                                                                                                   2_398)
    assert captured["id"] == hold["id"] and captured["created_at"] == hold["created_at"]
    assert await api.payment(hold["id"]) == captured
    assert await api.balance(payer["id"]) == {"posted": 2_500, "pending": 0, "available": 2_500}
    assert await api.balance(payee["id"]) == {"posted": 2_398, "pending": 0, "available": 2_398}
    assert (await api.balance(fees))["posted"] == 102
    (debit, _deposit) = await _entries(api, payer["id"])
    assert (debit["kind"], debit["amount"], debit["balance_after"], debit["payment"]) == ("payment", -2_500, 2_500,
                                                                                          hold["id"])
    (credit,) = await _entries(api, payee["id"])
    assert (credit["kind"], credit["amount"], credit["balance_after"]) == ("payment", 2_398, 2_398)
    fee_entry = (await _entries(api, fees))[0]
    assert (fee_entry["kind"], fee_entry["amount"], fee_entry["payment"]) == ("fee", 102, hold["id"])
    assert_books_balance(app_server.database_url)


async def test_partial_capture_takes_the_fee_on_the_captured_amount_and_releases_the_rest(
    api: Api, app_server: RunningServer
) -> None:
    _, payer = await api.funded_account(5_000)
    assert (await api.put("/v1/fee-schedule", {"rules": [USD_FEE]})).status_code == 200
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 2_500)
    r = await api.capture(hold["id"], 1_000)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["amount"], body["amount_captured"], body["fee"], body["net"]) == (2_500, 1_000, 59, 941)
    assert await api.balance(payer["id"]) == {"posted": 4_000, "pending": 0, "available": 4_000}
    assert await api.balance(payee["id"]) == {"posted": 941, "pending": 0, "available": 941}
    assert_books_balance(app_server.database_url)


async def test_capture_checks_amounts_and_moves_nothing_when_refused(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(5_000)
    assert (await api.put("/v1/fee-schedule", {"rules": [USD_FEE]})).status_code == 200
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 2_500)
    cases: list[tuple[Any, str, str | None]] = [
        ({"amount": 2_501}, "amount_too_large", "amount"),
        ({"amount": 0}, "amount_invalid", "amount"),
        ({"amount": 10.0}, "amount_invalid", "amount"),
        ({"amount": "100"}, "amount_invalid", "amount"),
        ({"amount": 30}, "amount_too_small", "amount"),  # fee: round(0.87) + 30 = 31 > 30
        ({"amount": 100, "currency": "USD"}, "parameter_unknown", "currency"),
        ([100], "json_invalid", None),
    ]
    for body, code, param in cases:
        r = await api.post(f"/v1/payments/{hold['id']}/capture", body)
        assert r.status_code == 400, (body, r.text)
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param), body
    r = await api.post(f"/v1/payments/{hold['id']}/capture", content=b"{")
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_invalid"
    assert await api.payment(hold["id"]) == hold
    assert await api.balance(payer["id"]) == {"posted": 5_000, "pending": 2_500, "available": 2_500}
    # The smallest amount whose fee fits: 31 (fee 31, net 0).
    r = await api.capture(hold["id"], 31)
    assert r.status_code == 200, r.text
    assert (r.json()["fee"], r.json()["net"]) == (31, 0)
    assert await api.balance(payee["id"]) == {"posted": 0, "pending": 0, "available": 0}
    assert_books_balance(app_server.database_url)


async def _invalid_state(r: Any) -> str:
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_state", None)
    message: str = error["message"]
    return message


async def test_forbidden_transitions_are_409_invalid_state_and_move_nothing(
    api: Api, app_server: RunningServer
) -> None:
    _, payer = await api.funded_account(10_000)
    payee = await api.account()
    await api.pay(payer["id"], payee["id"], 1)  # payee can pay refunds back

    captured = await api.hold(payer["id"], payee["id"], 100)
    assert (await api.capture(captured["id"])).status_code == 200
    assert "already been captured" in await _invalid_state(await api.capture(captured["id"]))
    assert "refund it instead" in await _invalid_state(await api.cancel(captured["id"]))

    canceled = await api.hold(payer["id"], payee["id"], 100)
    assert (await api.cancel(canceled["id"])).status_code == 200
    assert "canceled" in await _invalid_state(await api.capture(canceled["id"]))
    assert "canceled" in await _invalid_state(await api.cancel(canceled["id"]))
    assert "canceled" in await _invalid_state(await api.refund(canceled["id"]))

    direct = await api.pay(payer["id"], payee["id"], 100)  # capture: true
    await _invalid_state(await api.capture(direct.json()["id"]))
    await _invalid_state(await api.cancel(direct.json()["id"]))

    poor = await api.account()
    declined = await api.pay(poor["id"], payee["id"], 100)
    assert declined.status_code == 402
    failed_id = declined.json()["error"]["payment"]
    for attempt in (api.capture(failed_id), api.cancel(failed_id), api.refund(failed_id)):
        assert "failed" in await _invalid_state(await attempt)

    open_hold = await api.hold(payer["id"], payee["id"], 100)
    assert "not been captured" in await _invalid_state(await api.refund(open_hold["id"]))

    before = await api.balance(payer["id"])
    assert before == {"posted": 10_000 - 1 - 100 - 100, "pending": 100, "available": 10_000 - 301}
    assert (await api.payment(open_hold["id"]))["status"] == "requires_capture"
    assert_books_balance(app_server.database_url)


async def test_cancel_releases_the_hold_with_a_reason(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    first = await api.hold(payer["id"], payee["id"], 300)
    second = await api.hold(payer["id"], payee["id"], 200)
    r = await api.cancel(first["id"])
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancellation_reason"]) == ("canceled", "requested_by_customer")
    assert (r.json()["fee"], r.json()["net"], r.json()["amount_captured"]) == (None, None, 0)
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 200, "available": 800}
    r = await api.cancel(second["id"], "fraudulent")
    assert r.json()["cancellation_reason"] == "fraudulent"
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    assert len(await _entries(api, payer["id"])) == 1
    assert_books_balance(app_server.database_url)


@pytest.mark.parametrize("reason", ["expired", "other", "", 1, None])
async def test_cancel_reasons_are_checked(api: Api, reason: object) -> None:
    _, payer = await api.funded_account(100)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 100)
    r = await api.post(f"/v1/payments/{hold['id']}/cancel", {"reason": reason})
    if reason is None:  # null means the default
        assert r.status_code == 200 and r.json()["cancellation_reason"] == "requested_by_customer"
        return
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("parameter_invalid", "reason")
    assert (await api.payment(hold["id"]))["status"] == "requires_capture"


@pytest.mark.parametrize("action", ["capture", "cancel", "refunds"])
async def test_unknown_and_foreign_payments_are_404(api: Api, other_api: Api, action: str) -> None:
    _, payer = await other_api.funded_account(100)
    payee = await other_api.account()
    theirs = await other_api.hold(payer["id"], payee["id"], 100)
    for payment_id in (theirs["id"], "pay_" + "0" * 32, "pay_nope", "acct_" + "0" * 32):
        r = await api.post(f"/v1/payments/{payment_id}/{action}", {}, key="k-404")
        assert r.status_code == 404, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("resource_missing", "id")
    assert (await other_api.payment(theirs["id"]))["status"] == "requires_capture"
    assert (await api.get(f"/v1/payments/{theirs['id']}/refunds")).status_code == 404


async def test_capture_and_cancel_are_idempotent_with_a_key(api: Api) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 500)
    first = await api.capture(hold["id"], 200, key="cap-1")
    again = await api.capture(hold["id"], 200, key="cap-1")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # The same key for another request: 422; a new key: the real state (409).
    assert (await api.capture(hold["id"], 300, key="cap-1")).status_code == 422
    refused = await api.capture(hold["id"], 200, key="cap-2")
    assert refused.status_code == 409
    replayed = await api.capture(hold["id"], 200, key="cap-2")  # 409 invalid_state is stored and replayed
    assert replayed.content == refused.content and replayed.headers["Idempotent-Replayed"] == "true"
    # Omitting the body and sending {} is the same request; the key is scoped to the path.
    other = await api.hold(payer["id"], payee["id"], 100)
    c1 = await api.post(f"/v1/payments/{other['id']}/cancel", None, key="can-1")
    c2 = await api.post(f"/v1/payments/{other['id']}/cancel", {"reason": "requested_by_customer"}, key="can-1")
    assert c1.status_code == 200 and c2.content == c1.content
    assert (await api.capture(other["id"], key="can-1")).status_code == 422
    assert await api.balance(payer["id"]) == {"posted": 800, "pending": 0, "available": 800}


async def test_an_expired_hold_cannot_be_captured_or_canceled_before_the_sweeper_runs(
    api: Api, app_server: RunningServer
) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 400)
    expire_hold(app_server.database_url, hold["id"])
    message = await _invalid_state(await api.capture(hold["id"], key="late-capture"))
    assert "expired" in message
    expired = await api.payment(hold["id"])
    assert (expired["status"], expired["cancellation_reason"]) == ("canceled", "expired")
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    replay = await api.capture(hold["id"], key="late-capture")
    assert replay.status_code == 409 and replay.headers["Idempotent-Replayed"] == "true"
    assert "canceled (expired)" in await _invalid_state(await api.cancel(hold["id"]))
    types = [e["type"] for e in await api.events() if e["data"]["object"]["id"] == hold["id"]]
    assert types == ["payment.authorized", "payment.expired"]

    other = await api.hold(payer["id"], payee["id"], 100)
    expire_hold(app_server.database_url, other["id"])
    assert "expired" in await _invalid_state(await api.cancel(other["id"]))
    assert (await api.payment(other["id"]))["cancellation_reason"] == "expired"
    assert_books_balance(app_server.database_url)


async def test_a_hold_just_before_its_expiry_can_still_be_captured(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 400)
    expire_hold(app_server.database_url, hold["id"], seconds_from_now=30)
    assert (await api.capture(hold["id"])).status_code == 200
