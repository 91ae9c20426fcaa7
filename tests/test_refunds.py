"""Refunds: partial and full, the limits, the destination's funds, idempotency, the list."""

from __future__ import annotations

from typing import Any

from conftest import Api, RunningServer
from invariants import assert_books_balance


async def _captured(api: Api, amount: int, fee: dict[str, Any] | None = None,
                    extra_for_destination: int = 0) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A captured payment of ``amount`` from a funded payer; the payee also holds ``extra_for_destination``."""
    funding, payer = await api.funded_account(amount)
    payee = await api.account()
    if extra_for_destination:
        assert (await api.pay(funding["id"], payee["id"], extra_for_destination)).status_code == 201
    if fee is not None:  # only the payment itself pays it
        assert (await api.put("/v1/fee-schedule", {"rules": [fee]})).status_code == 200
    r = await api.pay(payer["id"], payee["id"], amount)
    assert r.status_code == 201, r.text
    return r.json(), payer, payee


async def test_partial_refunds_up_to_the_captured_amount(api: Api, app_server: RunningServer) -> None:
    payment, payer, payee = await _captured(api, 1_000)
    r = await api.refund(payment["id"], 300, metadata={"reason": "damaged"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert set(first) == {"id", "object", "payment", "amount", "status", "metadata", "created_at"}
    assert first["id"].startswith("re_") and first["object"] == "refund"
    assert (first["payment"], first["amount"], first["status"], first["metadata"]) == (
        payment["id"], 300, "succeeded", {"reason": "damaged"})
    assert (await api.payment(payment["id"]))["amount_refunded"] == 300
    assert await api.balance(payer["id"]) == {"posted": 300, "pending": 0, "available": 300}
    assert await api.balance(payee["id"]) == {"posted": 700, "pending": 0, "available": 700}

    too_much = await api.refund(payment["id"], 701)
    assert too_much.status_code == 400
    assert (too_much.json()["error"]["code"], too_much.json()["error"]["param"]) == ("amount_too_large", "amount")
    rest = await api.refund(payment["id"])  # default: what is left
    assert rest.status_code == 201 and rest.json()["amount"] == 700 and rest.json()["metadata"] == {}
    after = await api.payment(payment["id"])
    assert (after["status"], after["amount_refunded"], after["net"]) == ("succeeded", 1_000, payment["net"])
    nothing_left = await api.refund(payment["id"])
    assert nothing_left.status_code == 400 and nothing_left.json()["error"]["code"] == "amount_too_large"
    assert (await api.refund(payment["id"], 1)).json()["error"]["code"] == "amount_too_large"
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}

    listed = await api.get(f"/v1/payments/{payment['id']}/refunds")
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json()["data"]] == [rest.json()["id"], first["id"]]  # newest first
    assert listed.json()["has_more"] is False
    page = await api.get(f"/v1/payments/{payment['id']}/refunds", limit=1)
    assert page.json()["has_more"] is True and page.json()["data"][0]["id"] == rest.json()["id"]
    page2 = await api.get(f"/v1/payments/{payment['id']}/refunds", limit=1, starting_after=rest.json()["id"])
    assert [x["id"] for x in page2.json()["data"]] == [first["id"]] and page2.json()["has_more"] is False
    bad_cursor = await api.get(f"/v1/payments/{payment['id']}/refunds", starting_after="re_" + "0" * 32)
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["code"] == "invalid_cursor"

    entries = (await api.get(f"/v1/accounts/{payee['id']}/entries")).json()["data"]
    assert [(e["kind"], e["amount"], e["refund"]) for e in entries[:2]] == [
        ("refund", -700, rest.json()["id"]), ("refund", -300, first["id"])]
    assert all(e["payment"] == payment["id"] for e in entries)
    assert_books_balance(app_server.database_url)


async def test_the_fee_is_kept_and_the_destination_pays_the_whole_refund(
    api: Api, app_server: RunningServer
) -> None:
    payment, payer, payee = await _captured(
        api, 2_500, fee={"currency": "USD", "percent_bps": 290, "fixed": 30}, extra_for_destination=102)
    assert (payment["fee"], payment["net"]) == (102, 2_398)
    assert await api.balance(payee["id"]) == {"posted": 2_500, "pending": 0, "available": 2_500}
    r = await api.refund(payment["id"])
    assert r.status_code == 201 and r.json()["amount"] == 2_500
    assert await api.balance(payee["id"]) == {"posted": 0, "pending": 0, "available": 0}
    assert await api.balance(payer["id"]) == {"posted": 2_500, "pending": 0, "available": 2_500}
    after = await api.payment(payment["id"])
    assert (after["fee"], after["net"], after["amount_refunded"]) == (102, 2_398, 2_500)
    assert_books_balance(app_server.database_url)


async def test_a_refund_the_destination_cannot_pay_is_402_and_stored(api: Api, app_server: RunningServer) -> None:
    payment, _, payee = await _captured(api, 1_000)
    # The payee spends 800 of it.
    elsewhere = await api.account()
    assert (await api.pay(payee["id"], elsewhere["id"], 800)).status_code == 201
    r = await api.refund(payment["id"], 500, key="refund-1")
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["payment"]) == ("payment_error", "insufficient_funds", payment["id"])
    replay = await api.refund(payment["id"], 500, key="refund-1")
    assert replay.status_code == 402 and replay.content == r.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (await api.get(f"/v1/payments/{payment['id']}/refunds")).json()["data"] == []
    assert (await api.payment(payment["id"]))["amount_refunded"] == 0
    assert await api.balance(payee["id"]) == {"posted": 200, "pending": 0, "available": 200}
    ok = await api.refund(payment["id"], 200, key="refund-2")
    assert ok.status_code == 201
    assert_books_balance(app_server.database_url)


async def test_refunds_require_a_key_and_replay_by_it(api: Api) -> None:
    payment, _, _ = await _captured(api, 1_000)
    path = f"/v1/payments/{payment['id']}/refunds"
    missing = await api.http.post(path, json={"amount": 1}, headers=api.headers)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "idempotency_key_missing"
    bad = await api.post(path, {"amount": 1}, key="")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "idempotency_key_invalid"
    bad_meta = await api.post(path, {"metadata": {"k": 1}}, key="m")
    assert bad_meta.status_code == 400 and bad_meta.json()["error"]["code"] == "metadata_invalid"
    first = await api.refund(payment["id"], 100, key="same")
    again = await api.refund(payment["id"], 100, key="same")
    assert first.status_code == 201 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.refund(payment["id"], 101, key="same")).status_code == 422
    listed = (await api.get(path)).json()["data"]
    assert [x["amount"] for x in listed] == [100]
    assert (await api.payment(payment["id"]))["amount_refunded"] == 100


async def test_a_partially_captured_payment_refunds_only_what_was_captured(api: Api) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 1_000)
    assert (await api.capture(hold["id"], 400)).status_code == 200
    r = await api.refund(hold["id"], 401)
    assert r.status_code == 400 and r.json()["error"]["code"] == "amount_too_large"
    r = await api.refund(hold["id"])
    assert r.status_code == 201 and r.json()["amount"] == 400
    assert await api.balance(payer["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
