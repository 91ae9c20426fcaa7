"""Process-level tuning of the API (api/app.py's lifespan), checked on a real server."""

from __future__ import annotations

import gc

import httpx

from conftest import RunningServer, extra_server


async def test_objects_alive_after_start_up_are_frozen_out_of_full_collections(app_server: RunningServer) -> None:
    """A full collection used to scan everything start-up created (modules, the app, the pool): 20-36 ms
    every 1.5-2.5 s under load, the spikes of the closed-loop p99. Frozen, they are skipped (0.6 ms)."""
    gc.unfreeze()  # whatever an earlier server of this test process froze
    assert gc.get_freeze_count() == 0
    async with extra_server(app_server.settings) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0  # given back at shutdown
