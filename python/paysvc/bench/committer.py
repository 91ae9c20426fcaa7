"""The group committer alone, without HTTP: how fast one process's committer can go at a given batch size.

Part of ``paysvc bench`` (``committer`` in the report). It runs in the bench process against the
scratch database, after the HTTP scenarios: the same tenant and accounts, the same engine settings,
the real ``GroupCommitter`` and SQL. Each round submits ``batch_size`` payments between random
pairs of accounts at once and waits for all of them, so every batch holds exactly
``batch_size`` payments. The HTTP scenarios cannot do better than this at the batch sizes their
connections allow (16 connections: at most 16 payments in a batch), which is what bounds them.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from paysvc import _native, admin
from paysvc.config import Settings
from paysvc.db.pool import make_pool
from paysvc.ledger.batching import GroupCommitter
from paysvc.ledger.engine import EngineConfig

MAX_BATCH_SIZE = 1_000


def api_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop an API process runs on: uvicorn's ``loop="auto"`` picks uvloop when it is
    installed (``uvicorn[standard]`` installs it on Linux), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_on_api_loop(
    settings: Settings, url: str, api_key: str, accounts: list[str], batch_sizes: list[int], duration_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """:func:`run` on a fresh event loop of the kind the API uses (call it from a worker thread). The
    bench's own loop is asyncio's; on it the committer measured 10-30% slower per batch than on
    uvloop, which would understate what an API process's committer does."""
    factory = api_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        report = runner.run(run(settings, url, api_key, accounts, batch_sizes, duration_s, progress))
    report["event_loop"] = "asyncio" if factory is None else "uvloop"
    return report


async def run(
    settings: Settings, url: str, api_key: str, accounts: list[str], batch_sizes: list[int], duration_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    assert accounts and all(1 <= size <= MAX_BATCH_SIZE for size in batch_sizes) and duration_s > 0
    config = EngineConfig.from_settings(settings)
    pool = make_pool(msgspec.structs.replace(settings, pool_size=4), url)
    await pool.open(wait=True)
    try:
        tenant = await admin.KeyLookups(pool).authenticate(api_key)
        assert tenant is not None, "the bench tenant's API key"
        committer = GroupCommitter(pool, config.retry, config.idempotency_retention, MAX_BATCH_SIZE,
                                   max(config.queue_max, MAX_BATCH_SIZE), writers=1)
        rng = random.Random(7)
        nonce = secrets.token_hex(4)
        results: dict[str, Any] = {}
        try:
            for size in batch_sizes:
                progress(f"committer alone: batches of {size} for {duration_s:.0f} s")
                statuses: Counter[int] = Counter()
                rounds = 0
                started, cpu_started = time.perf_counter(), time.process_time()
                while time.perf_counter() - started < duration_s:
                    plans = []
                    for i in range(size):
                        source, destination = rng.sample(accounts, 2)
                        plans.append(_native.prepare_payment(
                            path="/v1/payments", amount=1, currency="USD", source=source, destination=destination,
                            idempotency_key=f"committer-{nonce}-{size}-{rounds}-{i}",
                        ))
                    outcomes = await asyncio.gather(*(
                        committer.submit(tenant, plan, f"committer-{nonce}-{size}-{rounds}-{i}", "bench")
                        for i, plan in enumerate(plans)
                    ))
                    statuses.update(outcome.status for outcome in outcomes)
                    rounds += 1
                wall_s = time.perf_counter() - started
                cpu_s = time.process_time() - cpu_started
                payments = rounds * size
                results[str(size)] = {
                    "batch_size": size,
                    "batches": rounds,
                    "payments_per_s": round(payments / wall_s, 1),
                    "ms_per_batch": round(1000 * wall_s / rounds, 3),
                    "process_cpu_ms_per_payment": round(1000 * cpu_s / payments, 3),
                    "errors": payments - statuses[201],
                }
        finally:
            await committer.stop()
        return {
            "method": "the real GroupCommitter in the bench process, no HTTP: rounds of batch_size concurrent "
                      "payments between random pairs of accounts, each round one batch; the CPU figure includes "
                      "building the plans",
            "by_batch_size": results,
        }
    finally:
        await pool.close()
