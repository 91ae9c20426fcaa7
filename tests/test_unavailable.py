from __future__ import annotations

import asyncio

import httpx
import psycopg

from conftest import ADMIN_TOKEN, RunningServer, new_tenant, start_server
from paysvc import ids
from paysvc.config import Settings


async def test_no_database_connection_in_time_is_503_with_retry_after(app_server: RunningServer) -> None:
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=1,
                        pool_acquire_timeout_ms=200, rate_limit_per_s=0)
    server, thread, base_url = await asyncio.to_thread(start_server, settings)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            api = await new_tenant(http, "starved")
            _, alice = await api.funded_account(100)
            bob = await api.account()
            async with await psycopg.AsyncConnection.connect(app_server.database_url) as blocker:
                await blocker.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE",
                                      (ids.decode(ids.ACCOUNT, alice["id"]),))
                # This payment takes the only pooled connection and waits on the row lock.
                stuck = asyncio.create_task(api.pay(alice["id"], bob["id"], 10, key="stuck"))
                await asyncio.sleep(0.5)
                r = await api.get("/v1/accounts")
                assert r.status_code == 503
                error = r.json()["error"]
                assert (error["type"], error["code"]) == ("api_error", "service_unavailable")
                assert error["request_id"] == r.headers["x-request-id"]
                assert int(r.headers["retry-after"]) >= 1
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["error"]["code"] == "service_unavailable"
                await blocker.rollback()
            assert (await stuck).status_code == 201
            # It recovers by itself once a connection is free again.
            assert (await api.get("/v1/accounts")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
