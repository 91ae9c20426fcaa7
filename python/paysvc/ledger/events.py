"""The events feed's ordering: number committed events, per tenant, in commit order.

Every state change writes its event row (seq NULL) in the transaction that makes the change (the
outbox). A consumer pages through ``seq``. Numbers are handed out here, by a short transaction that
sees only COMMITTED events, locks the tenant's oldest unnumbered ones, and gives them the next
numbers from the tenant's counter. So:

- an event becomes visible to consumers only with its number, and every number handed out later is
  larger: a consumer paging with ``starting_after`` never misses an event and never sees one twice,
  however payments commit around it (a transaction that commits late is simply numbered late);
- within one batch, events are numbered by (created_at, id); one payment's events carry strictly
  increasing created_at (lifecycle.LockedPayment.event_time), so they are numbered in the order
  they happened.

Webhook deliveries (brief, section 7) are created here too, in the transaction that numbers their
events: one per (event, endpoint of the tenant that is enabled now, was created no later than the
event, and lists its type or "*"). Numbering is the durable scan that cannot skip an event, and it
keeps webhooks off the payment path entirely. An endpoint disabled or deleted between an event's
commit and its numbering (about a second at most, PAYSVC_EVENTS_SEQUENCE_INTERVAL_MS) misses it.

The payment path never reads or writes the counter: numbering costs it nothing and cannot make it
retry. GET /v1/events numbers the tenant's backlog before it reads, so the feed is current; every
API process also numbers all backlogs in the background (housekeeping).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from paysvc.db.pool import Pool
from paysvc.db.retry import Conn, RetryPolicy, run_transaction

SEQUENCE_BATCH_ROWS = 200  # > the largest page (100), so a page after the numbered part is full
MAX_BATCHES_PER_CALL = 100

UNNUMBERED = (
    "SELECT id FROM events WHERE tenant_id = %s AND seq IS NULL "
    "ORDER BY created_at, id LIMIT %s FOR UPDATE"
)
# Numbers the batch and, in the same statement (one round trip, as numbering alone took), makes the
# webhook deliveries of the numbered events (see the module docstring).
NUMBER = """
WITH counter AS (
    INSERT INTO event_sequences (tenant_id, last_seq) VALUES (%(tenant)s, %(count)s)
    ON CONFLICT (tenant_id) DO UPDATE SET last_seq = event_sequences.last_seq + excluded.last_seq
    RETURNING last_seq
), numbered AS (
    UPDATE events SET seq = counter.last_seq - %(count)s + u.n
    FROM counter, unnest(%(ids)s::UUID[]) WITH ORDINALITY AS u(id, n)
    WHERE events.id = u.id
    RETURNING events.id, events.tenant_id, events.type, events.created_at
)
INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, status, attempts, attempts_base,
                                next_attempt_at, created_at, updated_at)
SELECT gen_random_uuid(), e.tenant_id, w.id, e.id, e.type, 'pending', 0, 0, now(), now(), now()
FROM numbered e JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id
WHERE w.tenant_id = %(tenant)s AND w.status = 'enabled' AND w.deleted_at IS NULL AND w.created_at <= e.created_at
  AND ('*' = ANY(w.enabled_events) OR e.type = ANY(w.enabled_events))
ON CONFLICT (endpoint_id, event_id) DO NOTHING
"""
TENANTS_WITH_BACKLOG = "SELECT DISTINCT tenant_id FROM events WHERE seq IS NULL LIMIT %s"


async def _number_batch(tenant_id: uuid.UUID, conn: Conn) -> int:
    rows = await (await conn.execute(UNNUMBERED, (tenant_id, SEQUENCE_BATCH_ROWS))).fetchall()
    if rows:
        ids = [row[0] for row in rows]
        await conn.execute(NUMBER, {"tenant": tenant_id, "count": len(ids), "ids": ids})
    return len(rows)


async def sequence_tenant(pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, max_batches: int) -> int:
    """Number the tenant's committed, unnumbered events (oldest first); return how many."""
    numbered = 0
    for _batch in range(max_batches):
        count = await run_transaction(pool, partial(_number_batch, tenant_id), policy=policy, idempotent=True)
        numbered += count
        if count < SEQUENCE_BATCH_ROWS:
            break
    return numbered


async def sequence_all(pool: Pool, policy: RetryPolicy, max_tenants: int = 1_000) -> int:
    """Number the backlog of every tenant that has one (the background pass)."""
    async with pool.connection() as conn:
        rows: list[tuple[Any, ...]] = await (await conn.execute(TENANTS_WITH_BACKLOG, (max_tenants,))).fetchall()
    tenants: list[uuid.UUID] = [row[0] for row in rows]
    numbered = 0
    for tenant_id in tenants:
        numbered += await sequence_tenant(pool, policy, tenant_id, MAX_BATCHES_PER_CALL)
    return numbered
