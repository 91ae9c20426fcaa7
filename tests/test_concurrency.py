from __future__ import annotations

import asyncio
from collections import Counter

from conftest import Api, RunningServer
from invariants import assert_books_balance


async def test_100_concurrent_payments_from_500_exactly_50_succeed(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(500)
    payees = [await api.account() for _ in range(5)]
    answers = await asyncio.gather(*[
        api.pay(payer["id"], payees[i % 5]["id"], 10, key=f"c-{i}") for i in range(100)
    ])
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 50, 402: 50}, statuses
    assert await api.balance(payer["id"]) == {"posted": 0, "pending": 0, "available": 0}
    received = [await api.balance(p["id"]) for p in payees]
    assert sum(b["posted"] for b in received) == 500
    assert_books_balance(app_server.database_url)


async def test_concurrent_transfers_in_both_directions_keep_the_books(api: Api, app_server: RunningServer) -> None:
    _, a = await api.funded_account(1_000)
    _, b = await api.funded_account(1_000)
    answers = await asyncio.gather(*[
        api.pay(a["id"], b["id"], 7) if i % 2 else api.pay(b["id"], a["id"], 5) for i in range(60)
    ])
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers if r.status_code != 201]
    assert (await api.balance(a["id"]))["posted"] == 1_000 - 30 * 7 + 30 * 5
    assert_books_balance(app_server.database_url)
