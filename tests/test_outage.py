"""The database goes away: the API answers 503 with Retry-After within a bounded time, /readyz says
so, and everything recovers by itself. A commit whose answer is lost is resolved through the
idempotency record, never by moving the money twice."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec

from conftest import Api, RunningServer, db_rows, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc import ids
from paysvc.db import retry
from pgproxy import pg_proxy

# Every request must be answered within this while the database is down (pool acquire timeout
# 500 ms, connect timeout 2 s, plus the retry helper's backoff).
OUTAGE_ANSWER_BOUND_S = 8.0


async def test_database_down_is_503_with_retry_after_then_recovers(app_server: RunningServer) -> None:
    async with pg_proxy(app_server.database_url) as proxy:
        settings = msgspec.structs.replace(
            app_server.settings, database_url=proxy.url, pool_size=4, pool_acquire_timeout_ms=500,
            connect_timeout_s=2, tx_max_attempts=4,
        )
        async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            api = await new_tenant(http, "outage")
            funding, alice = await api.funded_account(1_000)
            bob = await api.account()

            proxy.take_down()
            for attempt in (
                lambda: api.get("/v1/accounts"),
                lambda: api.pay(alice["id"], bob["id"], 10, key="during-outage"),
                lambda: api.get(f"/v1/accounts/{alice['id']}"),
                lambda: http.get("/readyz"),
            ):
                started = time.monotonic()
                r = await attempt()
                elapsed = time.monotonic() - started
                assert r.status_code == 503, r.text
                assert elapsed < OUTAGE_ANSWER_BOUND_S, elapsed
                error = r.json()["error"]
                assert (error["type"], error["code"]) == ("api_error", "service_unavailable")
                assert error["request_id"] == r.headers["x-request-id"]
                assert int(r.headers["retry-after"]) >= 1
            assert (await http.get("/healthz")).status_code == 200  # the process itself is alive

            proxy.bring_up()
            for _ in range(100):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await http.get("/readyz")).status_code == 200
            # The payment refused during the outage may be retried with its key: it happens once.
            r = await api.pay(alice["id"], bob["id"], 10, key="during-outage")
            assert r.status_code == 201, r.text
            assert await api.balance(alice["id"]) == {"posted": 990, "pending": 0, "available": 990}
            assert funding["id"]
    assert_books_balance(app_server.database_url)


async def test_a_lost_commit_answer_is_resolved_by_the_idempotency_record(app_server: RunningServer) -> None:
    async with pg_proxy(app_server.database_url) as proxy:
        settings = msgspec.structs.replace(app_server.settings, database_url=proxy.url)
        async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            api: Api = await new_tenant(http, "ambiguous")
            _, alice = await api.funded_account(1_000)
            bob = await api.account()
            ambiguous_before = retry.retry_counts["ambiguous"]

            proxy.cut_after_payment_commit = True
            r = await api.pay(alice["id"], bob["id"], 250, key="lost-commit")
            assert proxy.cuts == 1, "the proxy did not cut the commit's answer"
            assert retry.retry_counts["ambiguous"] == ambiguous_before + 1
            # The client is told the truth: the payment was made, once.
            assert r.status_code == 201, r.text
            payment = r.json()
            assert await api.balance(alice["id"]) == {"posted": 750, "pending": 0, "available": 750}
            assert await api.balance(bob["id"]) == {"posted": 250, "pending": 0, "available": 250}
            rows = db_rows(app_server.database_url,
                           "SELECT id FROM payments WHERE tenant_id = %s AND amount = 250",
                           (ids.decode(ids.TENANT, api.tenant_id),))
            assert rows == [(ids.decode(ids.PAYMENT, payment["id"]),)]
            again = await api.pay(alice["id"], bob["id"], 250, key="lost-commit")
            assert again.content == r.content and again.headers["Idempotent-Replayed"] == "true"
    assert_books_balance(app_server.database_url)
