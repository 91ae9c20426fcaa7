"""Captures of holds on a hot merchant while payments to that merchant stream through group commit.

A capture is a SERIALIZABLE transaction outside the committer. If it waited for the merchant's row
while a batch held it, it would fail with 40001 when the batch committed. The engine keeps batches
off a transition's accounts (GroupCommitter.reserve), so in one process no capture fails that way:
here the server gets a single attempt per transaction (no retries), and every capture must still
succeed, alongside every payment."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from conftest import RunningServer, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc.db import retry

HOLDS = 30
PAYMENTS = 150


async def test_captures_on_a_hot_merchant_do_not_fail_against_batches(app_server: RunningServer) -> None:
    settings = msgspec.structs.replace(
        app_server.settings, tx_max_attempts=1, events_sequence_interval_ms=60_000, expiry_sweep_interval_s=3600,
    )
    async with extra_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        api = await new_tenant(http, "hot-transitions")
        _, customer = await api.funded_account(1_000_000)
        merchant = await api.account()
        holds = [await api.hold(customer["id"], merchant["id"], 10) for _ in range(HOLDS)]
        before = retry.retry_counts["40001"]

        payments = [api.pay(customer["id"], merchant["id"], 1) for _ in range(PAYMENTS)]
        captures = [api.capture(hold["id"]) for hold in holds]
        answers = await asyncio.gather(*payments, *captures)

        paid, captured = answers[:PAYMENTS], answers[PAYMENTS:]
        assert [r.status_code for r in paid] == [201] * PAYMENTS, {r.status_code for r in paid}
        assert [r.status_code for r in captured] == [200] * HOLDS, [r.text for r in captured if r.status_code != 200]
        assert retry.retry_counts["40001"] == before  # not one transaction lost a race in this process
        assert await api.balance(merchant["id"]) == {
            "posted": PAYMENTS + 10 * HOLDS, "pending": 0, "available": PAYMENTS + 10 * HOLDS}
    assert_books_balance(app_server.database_url)
