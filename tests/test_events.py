"""The events feed: one event per state change, written with it; paged oldest first, in commit order;
a consumer tailing with starting_after never misses an event and never sees one twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import pytest

from conftest import Api, RunningServer, db_rows, expire_hold, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc import ids


async def _of(api: Api, object_id: str, **params: Any) -> list[dict[str, Any]]:
    return [e for e in await api.events(**params) if e["data"]["object"]["id"] == object_id]


async def test_each_state_change_writes_one_event_with_the_object_as_it_was(
    api: Api, other_api: Api
) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 600)
    captured = (await api.capture(hold["id"], 500)).json()
    refund = (await api.refund(hold["id"], 200)).json()
    canceled = (await api.cancel((await api.hold(payer["id"], payee["id"], 10))["id"], "duplicate")).json()
    declined = await api.pay(payee["id"], payer["id"], 10_000)

    events = await _of(api, hold["id"])
    assert [e["type"] for e in events] == ["payment.authorized", "payment.succeeded"]
    authorized, succeeded = events
    assert set(authorized) == {"id", "object", "type", "created_at", "data"}
    assert authorized["id"].startswith("evt_") and authorized["object"] == "event"
    assert authorized["data"] == {"object": hold}
    assert succeeded["data"]["object"] == captured
    assert authorized["created_at"] == hold["created_at"] < succeeded["created_at"]
    (refunded,) = await _of(api, refund["id"])
    assert (refunded["type"], refunded["data"]["object"]) == ("refund.succeeded", refund)
    assert [e["type"] for e in await _of(api, canceled["id"])] == ["payment.authorized", "payment.canceled"]
    (failed,) = await _of(api, declined.json()["error"]["payment"])
    assert failed["type"] == "payment.failed"
    assert (failed["data"]["object"]["status"], failed["data"]["object"]["failure_code"]) == (
        "failed", "insufficient_funds")

    everything = await api.events()
    assert Counter(e["type"] for e in everything) == {
        "payment.succeeded": 2, "payment.authorized": 2, "refund.succeeded": 1, "payment.canceled": 1,
        "payment.failed": 1,
    }
    positions = {e["id"]: i for i, e in enumerate(everything)}
    assert positions[authorized["id"]] < positions[succeeded["id"]] < positions[refunded["id"]]
    assert await other_api.events() == []


async def test_filter_by_type_and_page_with_cursors(api: Api) -> None:
    _, payer = await api.funded_account(1_000)
    payee = await api.account()
    holds = [await api.hold(payer["id"], payee["id"], 10) for _ in range(5)]
    authorized = await api.events(type="payment.authorized")
    assert [e["data"]["object"]["id"] for e in authorized] == [h["id"] for h in holds]
    first = await api.get("/v1/events", limit=2, type="payment.authorized")
    assert first.json()["has_more"] is True and len(first.json()["data"]) == 2
    rest = await api.events(starting_after=first.json()["data"][-1]["id"], type="payment.authorized")
    assert [e["id"] for e in first.json()["data"] + rest] == [e["id"] for e in authorized]
    # A cursor of another type still marks a place in the feed.
    (deposit,) = await api.events(type="payment.succeeded")
    after_deposit = await api.events(starting_after=deposit["id"])
    assert [e["id"] for e in after_deposit] == [e["id"] for e in authorized]


@pytest.mark.parametrize(("params", "code"), [
    ({"type": "payment.refunded"}, "parameter_invalid"),
    ({"limit": 0}, "parameter_invalid"),
    ({"limit": 101}, "parameter_invalid"),
    ({"starting_after": "evt_" + "0" * 32}, "invalid_cursor"),
    ({"starting_after": "pay_" + "0" * 32}, "invalid_cursor"),
])
async def test_bad_queries_are_400(api: Api, params: dict[str, Any], code: str) -> None:
    r = await api.get("/v1/events", **params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


async def test_another_tenants_event_is_not_a_cursor(api: Api, other_api: Api) -> None:
    await other_api.funded_account(10)
    (theirs,) = await other_api.events()
    r = await api.get("/v1/events", starting_after=theirs["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


async def test_a_tailing_consumer_sees_every_event_exactly_once_while_payments_commit(
    app_server: RunningServer,
) -> None:
    """Writers on two API processes (so transactions really race in the database) create, capture,
    cancel, refund and decline payments, while a consumer tails the feed with starting_after and
    the background numbering of both processes runs. Afterwards the consumer has seen exactly the
    events in the database, each once, and each payment's events in the order they happened."""
    async with extra_server(app_server.settings) as second_url, \
            httpx.AsyncClient(base_url=app_server.base_url, timeout=30) as c1, \
            httpx.AsyncClient(base_url=second_url, timeout=30) as c2:
        api = await new_tenant(c1, "feed")
        api2 = Api(c2, api.key, api.tenant_id)
        funding = await api.account(allow_negative=True)
        customers = [await api.account() for _ in range(6)]
        for c in customers:
            assert (await api.pay(funding["id"], c["id"], 5_000)).status_code == 201

        stop = asyncio.Event()
        seen: list[dict[str, Any]] = []

        async def consumer() -> None:
            cursor: str | None = None
            while True:
                finished = stop.is_set()
                page = await api.events(starting_after=cursor)
                seen.extend(page)
                if page:
                    cursor = page[-1]["id"]
                if finished:
                    return
                await asyncio.sleep(random.uniform(0, 0.02))

        async def writer(n: int) -> None:
            client = api if n % 2 else api2
            rng = random.Random(n)
            for _ in range(25):
                a, b = rng.sample(customers, 2)
                kind = rng.random()
                if kind < 0.15:  # a decline
                    await client.pay(a["id"], b["id"], 10**9)
                    continue
                r = await client.pay(a["id"], b["id"], rng.randint(1, 40), capture=kind < 0.5)
                if r.status_code != 201:
                    continue
                payment = r.json()
                if payment["status"] == "requires_capture":
                    if rng.random() < 0.5:
                        await client.capture(payment["id"])
                    else:
                        await client.cancel(payment["id"])
                if rng.random() < 0.3:
                    await client.refund(payment["id"], 1)

        tail = asyncio.create_task(consumer())
        await asyncio.gather(*[writer(n) for n in range(8)])
        stop.set()
        await tail

    seen_ids = [e["id"] for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was delivered twice"
    stored = db_rows(app_server.database_url,
                     "SELECT count(*) FROM events WHERE tenant_id = %s", (ids.decode(ids.TENANT, api.tenant_id),))[0][0]
    assert len(seen_ids) == stored, f"consumer saw {len(seen_ids)} of {stored} events"
    assert len(seen_ids) > 150
    # Each payment's events come in lifecycle order.
    rank = {"payment.authorized": 0, "payment.failed": 0, "payment.succeeded": 1, "payment.canceled": 1,
            "refund.succeeded": 2}
    last: dict[str, int] = {}
    for event in seen:
        obj = event["data"]["object"]
        payment_id = obj["payment"] if obj["object"] == "refund" else obj["id"]
        step = rank[event["type"]]
        assert step >= last.get(payment_id, 0), f"out of order for {payment_id}: {event['type']}"
        last[payment_id] = step
    assert_books_balance(app_server.database_url)


async def test_expiry_writes_payment_expired(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(100)
    payee = await api.account()
    hold = await api.hold(payer["id"], payee["id"], 100)
    expire_hold(app_server.database_url, hold["id"])
    assert (await api.cancel(hold["id"])).status_code == 409
    (expired,) = await api.events(type="payment.expired")
    assert expired["data"]["object"]["cancellation_reason"] == "expired"
    assert expired["data"]["object"]["status"] == "canceled"
