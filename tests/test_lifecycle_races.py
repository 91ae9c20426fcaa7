"""Races between transitions of the same payment, on two API processes (so the database, not an
in-process lock, decides): capture vs cancel, refunds that together exceed the capture, expiry vs
capture. Plus the sweeper as a background job and as the `paysvc expire` command."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import msgspec

from conftest import Api, RunningServer, db_rows, expire_hold, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc import ids


@asynccontextmanager
async def two_processes(app_server: RunningServer, **settings: object) -> AsyncIterator[tuple[Api, Api]]:
    """One tenant seen through the shared test server and through a second server process."""
    second = msgspec.structs.replace(app_server.settings, **settings)
    async with extra_server(second) as url, \
            httpx.AsyncClient(base_url=app_server.base_url, timeout=60) as c1, \
            httpx.AsyncClient(base_url=url, timeout=60) as c2:
        api = await new_tenant(c1, "races")
        yield api, Api(c2, api.key, api.tenant_id)


async def test_capture_racing_cancel_exactly_one_wins(app_server: RunningServer) -> None:
    async with two_processes(app_server) as (a, b):
        _, payer = await a.funded_account(10_000)
        payee = await a.account()
        holds = [await a.hold(payer["id"], payee["id"], 100) for _ in range(20)]

        async def race(i: int, payment_id: str) -> tuple[int, int]:
            first, second = (a, b) if i % 2 else (b, a)
            capture, cancel = await asyncio.gather(first.capture(payment_id), second.cancel(payment_id))
            return capture.status_code, cancel.status_code

        outcomes = await asyncio.gather(*[race(i, h["id"]) for i, h in enumerate(holds)])
        assert all(sorted(o) == [200, 409] for o in outcomes), outcomes
        captured = sum(1 for capture, _ in outcomes if capture == 200)
        for hold, (capture, _) in zip(holds, outcomes, strict=True):
            assert (await a.payment(hold["id"]))["status"] == ("succeeded" if capture == 200 else "canceled")
        assert await a.balance(payer["id"]) == {
            "posted": 10_000 - 100 * captured, "pending": 0, "available": 10_000 - 100 * captured}
        finals = Counter(e["type"] for e in await a.events() if e["type"] in {"payment.succeeded",
                                                                               "payment.canceled"})
        assert finals == {"payment.succeeded": captured + 1, "payment.canceled": 20 - captured}  # + the deposit
    assert_books_balance(app_server.database_url)


async def test_concurrent_refunds_never_exceed_the_captured_amount(app_server: RunningServer) -> None:
    async with two_processes(app_server) as (a, b):
        _, payer = await a.funded_account(1_000)
        payee = await a.account()
        payment = (await a.pay(payer["id"], payee["id"], 1_000)).json()
        answers = await asyncio.gather(*[
            (a if i % 2 else b).refund(payment["id"], 300) for i in range(10)
        ])
        statuses = Counter(r.status_code for r in answers)
        assert statuses == {201: 3, 400: 7}, [r.text for r in answers]
        assert {r.json()["error"]["code"] for r in answers if r.status_code == 400} == {"amount_too_large"}
        after = await a.payment(payment["id"])
        assert after["amount_refunded"] == 900
        refunds = (await a.get(f"/v1/payments/{payment['id']}/refunds")).json()["data"]
        assert sorted(r["id"] for r in refunds) == sorted(r.json()["id"] for r in answers if r.status_code == 201)
        assert await a.balance(payee["id"]) == {"posted": 100, "pending": 0, "available": 100}
    assert_books_balance(app_server.database_url)


async def test_expiry_racing_capture_never_both(app_server: RunningServer) -> None:
    """Holds expire one second from now while captures arrive over two seconds and a background
    sweeper runs every second: each hold is either captured before its expiry or expired, never both,
    and the money follows."""
    async with two_processes(app_server, expiry_sweep_interval_s=1) as (a, b):
        _, payer = await a.funded_account(10_000)
        payee = await a.account()
        holds = [await a.hold(payer["id"], payee["id"], 100) for _ in range(24)]
        for hold in holds:
            expire_hold(app_server.database_url, hold["id"], seconds_from_now=1.0)

        async def late_capture(i: int, payment_id: str) -> int:
            await asyncio.sleep(random.uniform(0, 2.0))
            return (await (a if i % 2 else b).capture(payment_id)).status_code

        statuses = await asyncio.gather(*[late_capture(i, h["id"]) for i, h in enumerate(holds)])
        assert set(statuses) <= {200, 409}, statuses
        events = await a.events()
        for hold, status in zip(holds, statuses, strict=True):
            payment = await a.payment(hold["id"])
            mine = [e for e in events if e["data"]["object"]["id"] == hold["id"]]
            if status == 200:
                assert payment["status"] == "succeeded"
                assert [e["type"] for e in mine] == ["payment.authorized", "payment.succeeded"]
                assert mine[1]["created_at"] < payment["expires_at"]
            else:
                assert (payment["status"], payment["cancellation_reason"]) == ("canceled", "expired")
                assert [e["type"] for e in mine] == ["payment.authorized", "payment.expired"]
                assert mine[1]["created_at"] >= payment["expires_at"]
        captured = statuses.count(200)
        assert await a.balance(payer["id"]) == {
            "posted": 10_000 - 100 * captured, "pending": 0, "available": 10_000 - 100 * captured}
    assert_books_balance(app_server.database_url)


async def test_the_background_sweeper_expires_holds(app_server: RunningServer) -> None:
    async with two_processes(app_server, expiry_sweep_interval_s=1) as (a, _):
        _, payer = await a.funded_account(500)
        payee = await a.account()
        hold = await a.hold(payer["id"], payee["id"], 500)
        expire_hold(app_server.database_url, hold["id"])
        for _attempt in range(100):
            if (await a.payment(hold["id"]))["status"] != "requires_capture":
                break
            await asyncio.sleep(0.1)
        payment = await a.payment(hold["id"])
        assert (payment["status"], payment["cancellation_reason"]) == ("canceled", "expired")
        assert await a.balance(payer["id"]) == {"posted": 500, "pending": 0, "available": 500}


async def test_paysvc_expire_command(api: Api, app_server: RunningServer) -> None:
    _, payer = await api.funded_account(500)
    payee = await api.account()
    due = [await api.hold(payer["id"], payee["id"], 100) for _ in range(3)]
    later = await api.hold(payer["id"], payee["id"], 100)
    for hold in due:
        expire_hold(app_server.database_url, hold["id"])
    env = {**os.environ, "PAYSVC_DATABASE_URL": app_server.database_url}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "paysvc.cli", "expire"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["expired"] >= 3
    assert "expired" in done.stderr  # progress
    for hold in due:
        assert (await api.payment(hold["id"]))["cancellation_reason"] == "expired"
    assert (await api.payment(later["id"]))["status"] == "requires_capture"
    assert await api.balance(payer["id"]) == {"posted": 500, "pending": 100, "available": 400}
    left = db_rows(app_server.database_url,
                   "SELECT count(*) FROM payments WHERE status = 'requires_capture' AND expires_at <= now() "
                   "AND tenant_id = %s", (ids.decode(ids.TENANT, api.tenant_id),))
    assert left == [(0,)]
