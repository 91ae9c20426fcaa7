"""Background upkeep run by every API process (and on demand by ``paysvc expire``):

- expiring holds whose ``expires_at`` has passed (the sweeper);
- numbering committed events for the feed (ledger/events.py);
- purging idempotency records past retention.

Every job is safe with many processes at once: each unit of work is one short transaction that
re-checks what it found under a row lock (a hold another process already released is skipped), and
each pass is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from paysvc.db.pool import Pool
from paysvc.errors import ApiError
from paysvc.ledger import events
from paysvc.ledger.engine import LedgerEngine
from paysvc.ledger.idempotency import PURGE

log = logging.getLogger(__name__)
_rng = random.Random()  # our own: jitter never touches (or is touched by) the global generator

PURGE_BATCH_ROWS = 1_000
PURGE_MAX_BATCHES_PER_PASS = 100
PURGE_INTERVAL_S = 60.0

EXPIRY_BATCH_ROWS = 200
EXPIRY_MAX_BATCHES_PER_PASS = 50

# Uses the (status, expires_at) index; oldest first, so a backlog drains in expiry order.
DUE_HOLDS = (
    "SELECT id FROM payments WHERE status = 'requires_capture' AND expires_at <= now() "
    "ORDER BY expires_at LIMIT %s"
)


async def purge_idempotency_records(pool: Pool, retention: timedelta) -> int:
    """Delete records older than ``retention``, a bounded batch at a time; return how many went."""
    purged = 0
    for _batch in range(PURGE_MAX_BATCHES_PER_PASS):
        async with pool.connection() as conn:
            cursor = await conn.execute(PURGE, (retention, PURGE_BATCH_ROWS))
        purged += max(cursor.rowcount, 0)
        if cursor.rowcount < PURGE_BATCH_ROWS:
            break
    return purged


async def expire_holds(
    engine: LedgerEngine,
    max_batches: int = EXPIRY_MAX_BATCHES_PER_PASS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Release the holds whose time is up, one transaction each; return how many this call released.

    Several processes may sweep at once: each shuffles its batch so they rarely meet, and a hold
    another process released first is found closed under its row lock and skipped.
    """
    expired = 0
    for _batch in range(max_batches):
        async with engine.pool.connection() as conn:
            rows: list[tuple[Any, ...]] = await (await conn.execute(DUE_HOLDS, (EXPIRY_BATCH_ROWS,))).fetchall()
        due: list[uuid.UUID] = [row[0] for row in rows]
        _rng.shuffle(due)
        for payment_id in due:
            if await engine.expire(payment_id):
                expired += 1
        if progress is not None:
            progress(expired)
        if len(due) < EXPIRY_BATCH_ROWS:
            break
    return expired


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[int]]


def jobs(engine: LedgerEngine, expiry_interval_s: float, events_interval_s: float) -> list[Job]:
    retention = engine.config.idempotency_retention
    return [
        Job("expire holds", expiry_interval_s, lambda: expire_holds(engine)),
        Job("number events", events_interval_s, lambda: events.sequence_all(engine.pool, engine.config.retry)),
        Job("purge idempotency records", PURGE_INTERVAL_S,
            lambda: purge_idempotency_records(engine.pool, retention)),
    ]


async def run_job_forever(job: Job) -> None:
    # Start at a random point of the interval, so several processes do not all run at once.
    await asyncio.sleep(_rng.uniform(0, job.interval_s))
    while True:
        try:
            done = await job.run()
            if done:
                log.info("%s: %d", job.name, done)
        except (psycopg.Error, OSError, ApiError) as exc:  # the database is down or busy: next time
            log.warning("%s skipped: %s", job.name, exc)
        except Exception:
            log.exception("%s failed", job.name)
        await asyncio.sleep(job.interval_s * _rng.uniform(0.8, 1.2))
