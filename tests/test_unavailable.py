from __future__ import annotations

import asyncio

import httpx

from conftest import ADMIN_TOKEN, RunningServer, account_row_locked, extra_server, new_tenant
from paysvc.config import Settings


async def test_no_database_connection_in_time_is_503_with_retry_after(app_server: RunningServer) -> None:
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=1,
                        pool_acquire_timeout_ms=200, rate_limit_per_s=0)
    async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        api = await new_tenant(http, "starved")
        _, alice = await api.funded_account(100)
        bob = await api.account()
        async with account_row_locked(app_server.database_url, alice["id"]):
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
        assert (await stuck).status_code == 201
        # It recovers by itself once a connection is free again.
        assert (await api.get("/v1/accounts")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
