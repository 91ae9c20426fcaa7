from __future__ import annotations

import asyncio
import json

from conftest import Api, RunningServer, account_row_locked


async def test_replay_is_byte_for_byte_with_the_original_request_id(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    first = await api.pay(alice["id"], bob["id"], 100, key="order-1")
    again = await api.pay(alice["id"], bob["id"], 100, key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert (await api.balance(alice["id"]))["posted"] == 900  # moved once
    assert len((await api.get("/v1/payments")).json()["data"]) == 2  # the deposit and this payment


async def test_fingerprint_ignores_key_order_whitespace_defaults_and_currency_case(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    body = {"amount": 7, "currency": "USD", "source": alice["id"], "destination": bob["id"],
            "metadata": {"a": "1", "b": "2"}}
    first = await api.post("/v1/payments", body, key="fp")
    assert first.status_code == 201
    reordered = json.dumps({"metadata": {"b": "2", "a": "1"}, "destination": bob["id"], "source": alice["id"],
                            "currency": "usd", "amount": 7, "capture": True}, indent=3).encode()
    again = await api.post("/v1/payments", content=reordered, key="fp")
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_different_request_is_422_and_changes_nothing(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    assert (await api.pay(alice["id"], bob["id"], 100, key="k")).status_code == 201
    r = await api.pay(alice["id"], bob["id"], 101, key="k")
    assert r.status_code == 422
    assert (r.json()["error"]["type"], r.json()["error"]["code"]) == ("idempotency_error", "idempotency_key_reused")
    assert (await api.balance(alice["id"]))["posted"] == 900


async def test_400_is_not_stored_so_the_key_can_be_reused(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    bad = await api.pay(alice["id"], bob["id"], 0, key="retry-me")
    assert bad.status_code == 400
    good = await api.pay(alice["id"], bob["id"], 5, key="retry-me")
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers
    # An invalid body under a used key is still a 400 (body checks come before idempotency).
    invalid = await api.post("/v1/payments", {"amount": "5"}, key="retry-me")
    assert invalid.status_code == 400


async def test_currency_mismatch_400_is_not_stored(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    euro = await api.account("EUR")
    usd = await api.account("USD")
    assert (await api.pay(alice["id"], euro["id"], 5, key="mm")).status_code == 400
    assert (await api.pay(alice["id"], usd["id"], 5, key="mm")).status_code == 201


async def test_402_is_stored_and_replayed(api: Api) -> None:
    funding, alice = await api.funded_account(10)
    bob = await api.account()
    declined = await api.pay(alice["id"], bob["id"], 50, key="big")
    assert declined.status_code == 402
    assert (await api.pay(funding["id"], alice["id"], 100)).status_code == 201  # now it would pass
    replay = await api.pay(alice["id"], bob["id"], 50, key="big")
    assert replay.status_code == 402 and replay.content == declined.content
    assert replay.headers["idempotent-replayed"] == "true"
    failed = (await api.get("/v1/payments", status="failed")).json()["data"]
    assert len(failed) == 1  # one failed payment, not two


async def test_404_for_an_id_in_the_body_is_stored_and_replayed(api: Api) -> None:
    _, alice = await api.funded_account(10)
    ghost = "acct_" + "b" * 32
    first = await api.pay(alice["id"], ghost, 5, key="ghost")
    assert first.status_code == 404
    again = await api.pay(alice["id"], ghost, 5, key="ghost")
    assert again.status_code == 404 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


async def test_key_is_required_and_validated(api: Api) -> None:
    _, alice = await api.funded_account(10)
    bob = await api.account()
    body = {"amount": 1, "currency": "USD", "source": alice["id"], "destination": bob["id"]}
    r = await api.post("/v1/payments", body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "idempotency_key_missing"
    for bad in ["", "x" * 256]:
        r = await api.post("/v1/payments", body, key=bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "idempotency_key_invalid", bad
    r = await api.http.post("/v1/payments", json=body,
                            headers={**api.headers, "Idempotency-Key": "caf\xe9".encode("latin-1")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "idempotency_key_invalid"
    assert (await api.post("/v1/payments", body, key="x" * 255)).status_code == 201
    assert (await api.post("/v1/payments", body, key="with spaces ~!")).status_code == 201


async def test_keys_are_scoped_to_the_tenant(api: Api, other_api: Api) -> None:
    for tenant in (api, other_api):
        _, alice = await tenant.funded_account(10)
        bob = await tenant.account()
        r = await tenant.pay(alice["id"], bob["id"], 3, key="shared-key")
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers


async def test_same_key_while_the_first_request_runs_is_409(api: Api, app_server: RunningServer) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    async with account_row_locked(app_server.database_url, alice["id"]):
        first = asyncio.create_task(api.pay(alice["id"], bob["id"], 10, key="slow"))
        await asyncio.sleep(0.5)
        assert not first.done()
        second = await api.pay(alice["id"], bob["id"], 10, key="slow")
        assert second.status_code == 409
        assert (second.json()["error"]["type"], second.json()["error"]["code"]) == (
            "idempotency_error", "idempotency_key_in_use")
    assert (await first).status_code == 201
    third = await api.pay(alice["id"], bob["id"], 10, key="slow")
    assert third.status_code == 201 and third.headers["idempotent-replayed"] == "true"
    assert (await api.balance(alice["id"]))["posted"] == 90


async def test_concurrent_duplicates_create_one_payment(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    answers = await asyncio.gather(*[api.pay(alice["id"], bob["id"], 10, key="dup") for _ in range(20)])
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {201, 409}
    created = {r.json()["id"] for r in answers if r.status_code == 201}
    assert len(created) == 1
    assert (await api.balance(alice["id"]))["posted"] == 990
