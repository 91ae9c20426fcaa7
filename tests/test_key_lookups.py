"""admin.KeyLookups: concurrent authentications share queries, and a revocation still applies to
the very next request (each lookup is answered by a query that started after it arrived)."""

from __future__ import annotations

import asyncio

from conftest import Api, RunningServer, db_rows
from paysvc import admin, ids
from paysvc.db.pool import make_pool


async def test_concurrent_lookups_share_queries_and_answer_each(api: Api, other_api: Api,
                                                                app_server: RunningServer) -> None:
    pool = make_pool(app_server.settings, app_server.database_url)
    await pool.open(wait=True)
    try:
        lookups = admin.KeyLookups(pool)
        keys = [api.key, other_api.key, "sk_" + "x" * 43, "not a key"] * 25
        tenants = await asyncio.gather(*(lookups.authenticate(key) for key in keys))
        for key, tenant in zip(keys, tenants, strict=True):
            if key == api.key:
                assert tenant is not None and tenant.id == ids.decode(ids.TENANT, api.tenant_id)
            elif key == other_api.key:
                assert tenant is not None and tenant.id == ids.decode(ids.TENANT, other_api.tenant_id)
            else:
                assert tenant is None
        assert lookups.lookups == 75  # the malformed key never reaches the database
        assert 1 <= lookups.queries < 10, lookups.queries  # 75 lookups, a handful of queries

        # Revoked between two lookups: the next one is refused.
        assert await lookups.authenticate(api.key) is not None
        db_rows(app_server.database_url, "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s RETURNING 1",
                (ids.decode(ids.TENANT, api.tenant_id),))
        assert await lookups.authenticate(api.key) is None
        assert await lookups.authenticate(other_api.key) is not None
    finally:
        await pool.close()


async def test_a_cancelled_request_does_not_cancel_the_others(api: Api, app_server: RunningServer) -> None:
    pool = make_pool(app_server.settings, app_server.database_url)
    await pool.open(wait=True)
    try:
        lookups = admin.KeyLookups(pool)
        first = asyncio.create_task(lookups.authenticate(api.key))
        second = asyncio.create_task(lookups.authenticate(api.key))  # shares first's query
        await asyncio.sleep(0)
        first.cancel()
        tenant = await second
        assert tenant is not None and tenant.id == ids.decode(ids.TENANT, api.tenant_id)
        assert first.cancelled()
    finally:
        await pool.close()


async def test_a_database_error_reaches_every_waiter(api: Api, app_server: RunningServer) -> None:
    pool = make_pool(app_server.settings, app_server.database_url)
    lookups = admin.KeyLookups(pool)  # never opened: every query fails
    results = await asyncio.gather(*(lookups.authenticate(api.key) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), results
    assert not lookups._waiting and not lookups._running
