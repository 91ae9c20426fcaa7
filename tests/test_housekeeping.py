from __future__ import annotations

from datetime import timedelta

import httpx
import psycopg

from conftest import ADMIN_TOKEN, Api, RunningServer, extra_server, new_tenant
from paysvc import ids
from paysvc.config import Settings
from paysvc.db.pool import make_pool
from paysvc.ledger.housekeeping import purge_idempotency_records


async def _age_key(database_url: str, tenant_id: str, key: str, hours: int) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = created_at - %s WHERE tenant_id = %s AND idem_key = %s",
            (timedelta(hours=hours), ids.decode(ids.TENANT, tenant_id), key),
        )


async def test_records_past_retention_are_purged_and_the_key_is_free_again(
    api: Api, app_server: RunningServer
) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    first = await api.pay(alice["id"], bob["id"], 10, key="old-key")
    assert first.status_code == 201
    await _age_key(app_server.database_url, api.tenant_id, "old-key", 25)
    # Past retention but not yet purged: the key counts as unused.
    again = await api.pay(alice["id"], bob["id"], 10, key="old-key")
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    await _age_key(app_server.database_url, api.tenant_id, "old-key", 25)
    pool = make_pool(Settings(database_url=app_server.database_url, pool_size=1), app_server.database_url)
    await pool.open(wait=True)
    try:
        assert await purge_idempotency_records(pool, timedelta(hours=24)) >= 1
        assert await purge_idempotency_records(pool, timedelta(hours=24)) == 0
    finally:
        await pool.close()
    async with await psycopg.AsyncConnection.connect(app_server.database_url, autocommit=True) as conn:
        left = await (await conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE tenant_id = %s AND idem_key = 'old-key'",
            (ids.decode(ids.TENANT, api.tenant_id),))).fetchone()
    assert left == (0,)


async def test_rate_limit_answers_429_with_retry_after(app_server: RunningServer) -> None:
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=2,
                        rate_limit_per_s=3)
    async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        limited = await new_tenant(http, "limited")
        answers = [await limited.get("/v1/accounts") for _ in range(6)]
        statuses = [r.status_code for r in answers]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses
        r = next(r for r in answers if r.status_code == 429)
        assert r.json()["error"]["type"] == "rate_limit_error" and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        other = await new_tenant(http, "unlimited")  # the limit is per key
        assert (await other.get("/v1/accounts")).status_code == 200
