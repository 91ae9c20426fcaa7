"""Background upkeep run by every API process: purging idempotency records past retention.

Safe with many processes at once (each batch is one bounded DELETE; a conflict just ends the pass).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import psycopg

from paysvc.db.pool import Pool
from paysvc.ledger.idempotency import PURGE

log = logging.getLogger(__name__)

PURGE_BATCH_ROWS = 1_000
PURGE_MAX_BATCHES_PER_PASS = 100
PURGE_INTERVAL_S = 60.0


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


async def run_forever(pool: Pool, retention: timedelta, interval_s: float = PURGE_INTERVAL_S) -> None:
    while True:
        try:
            purged = await purge_idempotency_records(pool, retention)
            if purged:
                log.info("purged %d idempotency records older than %s", purged, retention)
        except (psycopg.Error, OSError) as exc:  # the database is down or busy: try again next time
            log.warning("idempotency purge skipped: %s", exc)
        except Exception:
            log.exception("idempotency purge failed")
        await asyncio.sleep(interval_s)
