"""Read queries for the GET endpoints: single statements in autocommit, tenant-scoped (another
tenant's id answers exactly like a missing one).

Lists are cursor-paginated like Stripe: ``limit`` + 1 rows are read to learn ``has_more``; the
cursor (``starting_after``) must name an object of the same list, else 400 ``invalid_cursor``.

Reads are current by default (brief, section 2b). The one exception is opt-in twice over: a
single-object GET (``get_account``, ``get_payment``: the statements in ``FOLLOWER_READ_OBJECTS``)
reads ``AS OF SYSTEM TIME follower_read_timestamp()`` (db/dialect.py) only when

1. the operator enabled it (``PAYSVC_FOLLOWER_READS=true``) and the database is CockroachDB, and
2. the request asked for it (``consistency="stale"``: the ``Paysvc-Read-Consistency: stale``
   header, api/common.py).

Such a read is a few seconds stale (about 4.2 s in CockroachDB v25 docs, 4.8 s in older ones) and
served by the nearest replica: the object as it was then, e.g. a balance without the last payments.
A stale read that finds nothing is read again current (``_found_object``), so an object created in
the last seconds is never a 404 because of staleness; the caller learns which consistency served
the answer. Otherwise, and always for everything else, reads are current:

- every list (accounts, payments, an account's entries, a payment's refunds), with its cursor and
  parent lookups, and the events feed (GET /v1/events numbers the backlog first, then reads it);
- the fee schedule and API keys.
Money is never decided on these reads: overdraft and idempotency checks read inside the write
transaction (ledger/).
"""

from __future__ import annotations

import uuid
from typing import Any, Final, Literal

from paysvc import ids
from paysvc.db import dialect
from paysvc.db.pool import Pool
from paysvc.db.retry import read_all, read_one
from paysvc.errors import invalid_cursor, not_found
from paysvc.resources import (
    Account,
    AccountList,
    EntryList,
    EventList,
    FeeRuleOut,
    FeeScheduleOut,
    Payment,
    PaymentList,
    RefundList,
    Review,
    ReviewList,
    account_from_row,
    entry_from_row,
    event_from_row,
    payment_from_row,
    refund_from_row,
    review_from_row,
)

GET_ACCOUNT = """
SELECT id, currency, allow_negative, purpose, posted, pending, metadata, created_at
FROM accounts WHERE tenant_id = %s AND id = %s"""
ACCOUNT_CURSOR = "SELECT created_at, id FROM accounts WHERE tenant_id = %s AND id = %s"
LIST_ACCOUNTS = """
SELECT id, currency, allow_negative, purpose, posted, pending, metadata, created_at
FROM accounts WHERE tenant_id = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_ACCOUNTS_AFTER = """
SELECT id, currency, allow_negative, purpose, posted, pending, metadata, created_at
FROM accounts WHERE tenant_id = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""

GET_PAYMENT = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report
FROM payments WHERE tenant_id = %s AND id = %s"""
PAYMENT_CURSOR = "SELECT created_at, id FROM payments WHERE tenant_id = %s AND id = %s"
LIST_PAYMENTS = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report
FROM payments WHERE tenant_id = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_AFTER = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report
FROM payments WHERE tenant_id = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_BY_STATUS = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report
FROM payments WHERE tenant_id = %s AND status = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_BY_STATUS_AFTER = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report
FROM payments WHERE tenant_id = %s AND status = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""

ACCOUNT_KEY = "SELECT id FROM accounts WHERE tenant_id = %s AND id = %s"
ENTRY_CURSOR = "SELECT seq FROM entries WHERE tenant_id = %s AND account_id = %s AND id = %s"
LIST_ENTRIES = """
SELECT id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at
FROM entries WHERE tenant_id = %s AND account_id = %s
ORDER BY seq DESC LIMIT %s"""
LIST_ENTRIES_AFTER = """
SELECT id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at
FROM entries WHERE tenant_id = %s AND account_id = %s AND seq < %s
ORDER BY seq DESC LIMIT %s"""

PAYMENT_KEY = "SELECT id FROM payments WHERE tenant_id = %s AND id = %s"
# One payment's refunds carry strictly increasing created_at (written under the payment's row lock).
REFUND_CURSOR = "SELECT created_at, id FROM refunds WHERE tenant_id = %s AND payment_id = %s AND id = %s"
LIST_REFUNDS = """
SELECT id, payment_id, amount, metadata, created_at FROM refunds WHERE tenant_id = %s AND payment_id = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_REFUNDS_AFTER = """
SELECT id, payment_id, amount, metadata, created_at FROM refunds
WHERE tenant_id = %s AND payment_id = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""

# Only numbered events are visible (ledger/events.py); the feed is oldest first, by seq.
EVENT_CURSOR = "SELECT seq FROM events WHERE tenant_id = %s AND seq IS NOT NULL AND id = %s"
LIST_EVENTS = """
SELECT id, type, data, created_at FROM events WHERE tenant_id = %s AND seq > %s ORDER BY seq LIMIT %s"""
LIST_EVENTS_OF_TYPE = """
SELECT id, type, data, created_at FROM events WHERE tenant_id = %s AND type = %s AND seq > %s
ORDER BY seq LIMIT %s"""

# Reviews, newest first; ``open`` filters when not NULL.
GET_REVIEW = (
    "SELECT id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at "
    "FROM reviews WHERE tenant_id = %s AND id = %s"
)
REVIEW_CURSOR = "SELECT created_at, id FROM reviews WHERE tenant_id = %s AND id = %s"
LIST_REVIEWS = """
SELECT id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at
FROM reviews WHERE tenant_id = %s AND (%s::BOOLEAN IS NULL OR open = %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_REVIEWS_AFTER = """
SELECT id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at FROM reviews
WHERE tenant_id = %s AND (%s::BOOLEAN IS NULL OR open = %s) AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""

GET_FEE_RULES = (
    "SELECT currency, percent_bps, fixed_minor, min_minor, max_minor FROM fee_rules "
    "WHERE tenant_id = %s ORDER BY currency"
)


# What a single-object read asks for, and what served it: "current" (the default) or "stale".
Consistency = Literal["current", "stale"]
CURRENT: Final = "current"
STALE: Final = "stale"

# The statements that may be follower reads (see the module docstring): the single-object GETs,
# each with its CockroachDB form. Lists, cursors, parents, events and the fee schedule never are.
FOLLOWER_READ_OBJECTS = (GET_ACCOUNT, GET_PAYMENT)
_FOLLOWER_READ_FORM = {query: dialect.follower_read(query) for query in FOLLOWER_READ_OBJECTS}


def object_sql(pool: Pool, query: str, asked: Consistency) -> tuple[str, Consistency]:
    """The SQL a single-object GET runs, with the consistency it gives: the follower-read form only
    when the request asked for ``stale`` and the pool allows it (CockroachDB, operator opt-in)."""
    if asked == STALE and dialect.follower_reads_on(pool):
        return _FOLLOWER_READ_FORM[query], STALE
    return query, CURRENT


def _page(rows: list[tuple[Any, ...]], limit: int) -> tuple[list[tuple[Any, ...]], bool]:
    return rows[:limit], len(rows) > limit


async def get_account(
    pool: Pool, tenant_id: uuid.UUID, account_id: str, consistency: Consistency = CURRENT
) -> tuple[Account, Consistency]:
    """The account, and the consistency that served it (``stale`` only when asked and allowed)."""
    row, served = await _found_object(pool, GET_ACCOUNT, ids.ACCOUNT, "account", account_id, tenant_id, consistency)
    return account_from_row(row), served


async def list_accounts(pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None) -> AccountList:
    if starting_after is None:
        rows = await read_all(pool, LIST_ACCOUNTS, (tenant_id, limit + 1))
    else:
        created_at, cursor_id = await _cursor(pool, ACCOUNT_CURSOR, ids.ACCOUNT, starting_after, (tenant_id,))
        rows = await read_all(pool, LIST_ACCOUNTS_AFTER, (tenant_id, created_at, cursor_id, limit + 1))
    page, more = _page(rows, limit)
    return AccountList(data=[account_from_row(r) for r in page], has_more=more)


async def get_payment(
    pool: Pool, tenant_id: uuid.UUID, payment_id: str, consistency: Consistency = CURRENT
) -> tuple[Payment, Consistency]:
    """The payment, and the consistency that served it (``stale`` only when asked and allowed)."""
    row, served = await _found_object(pool, GET_PAYMENT, ids.PAYMENT, "payment", payment_id, tenant_id, consistency)
    return payment_from_row(row), served


async def list_payments(
    pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None, status: str | None
) -> PaymentList:
    after: tuple[Any, ...] = ()
    if starting_after is not None:
        after = await _cursor(pool, PAYMENT_CURSOR, ids.PAYMENT, starting_after, (tenant_id,))
    if status is None:
        query = LIST_PAYMENTS_AFTER if after else LIST_PAYMENTS
        params: tuple[Any, ...] = (tenant_id, *after, limit + 1)
    else:
        query = LIST_PAYMENTS_BY_STATUS_AFTER if after else LIST_PAYMENTS_BY_STATUS
        params = (tenant_id, status, *after, limit + 1)
    page, more = _page(await read_all(pool, query, params), limit)
    return PaymentList(data=[payment_from_row(r) for r in page], has_more=more)


async def list_entries(
    pool: Pool, tenant_id: uuid.UUID, account_id: str, limit: int, starting_after: str | None
) -> EntryList:
    (account_key,) = await _found(pool, ACCOUNT_KEY, ids.ACCOUNT, "account", account_id, tenant_id)
    if starting_after is None:
        rows = await read_all(pool, LIST_ENTRIES, (tenant_id, account_key, limit + 1))
    else:
        (seq,) = await _cursor(pool, ENTRY_CURSOR, ids.ENTRY, starting_after, (tenant_id, account_key))
        rows = await read_all(pool, LIST_ENTRIES_AFTER, (tenant_id, account_key, seq, limit + 1))
    page, more = _page(rows, limit)
    return EntryList(data=[entry_from_row(r) for r in page], has_more=more)


async def list_refunds(
    pool: Pool, tenant_id: uuid.UUID, payment_id: str, limit: int, starting_after: str | None
) -> RefundList:
    (payment_key,) = await _found(pool, PAYMENT_KEY, ids.PAYMENT, "payment", payment_id, tenant_id)
    if starting_after is None:
        rows = await read_all(pool, LIST_REFUNDS, (tenant_id, payment_key, limit + 1))
    else:
        after = await _cursor(pool, REFUND_CURSOR, ids.REFUND, starting_after, (tenant_id, payment_key))
        rows = await read_all(pool, LIST_REFUNDS_AFTER, (tenant_id, payment_key, *after, limit + 1))
    page, more = _page(rows, limit)
    return RefundList(data=[refund_from_row(r) for r in page], has_more=more)


async def list_events(
    pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None, event_type: str | None
) -> EventList:
    seq = 0
    if starting_after is not None:
        (seq,) = await _cursor(pool, EVENT_CURSOR, ids.EVENT, starting_after, (tenant_id,))
    if event_type is None:
        rows = await read_all(pool, LIST_EVENTS, (tenant_id, seq, limit + 1))
    else:
        rows = await read_all(pool, LIST_EVENTS_OF_TYPE, (tenant_id, event_type, seq, limit + 1))
    page, more = _page(rows, limit)
    return EventList(data=[event_from_row(r) for r in page], has_more=more)


async def get_review(pool: Pool, tenant_id: uuid.UUID, review_id: str) -> Review:
    return review_from_row(await _found(pool, GET_REVIEW, ids.REVIEW, "review", review_id, tenant_id))


async def list_reviews(
    pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None, is_open: bool | None
) -> ReviewList:
    if starting_after is None:
        rows = await read_all(pool, LIST_REVIEWS, (tenant_id, is_open, is_open, limit + 1))
    else:
        after = await _cursor(pool, REVIEW_CURSOR, ids.REVIEW, starting_after, (tenant_id,))
        rows = await read_all(pool, LIST_REVIEWS_AFTER, (tenant_id, is_open, is_open, *after, limit + 1))
    page, more = _page(rows, limit)
    return ReviewList(data=[review_from_row(r) for r in page], has_more=more)


async def get_fee_schedule(pool: Pool, tenant_id: uuid.UUID) -> FeeScheduleOut:
    rows = await read_all(pool, GET_FEE_RULES, (tenant_id,))
    return FeeScheduleOut(rules=[
        FeeRuleOut(currency=c, percent_bps=bps, fixed=fixed, min=lo, max=hi) for c, bps, fixed, lo, hi in rows
    ])


async def _by_id(
    pool: Pool, query: str, prefix: str, ident: str, scope: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """The row ``query`` finds for (*scope, the UUID behind ident); None when ident is no such id."""
    key = ids.decode(prefix, ident)
    return None if key is None else await read_one(pool, query, (*scope, key))


async def _found(
    pool: Pool, query: str, prefix: str, kind: str, ident: str, tenant_id: uuid.UUID
) -> tuple[Any, ...]:
    row = await _by_id(pool, query, prefix, ident, (tenant_id,))
    if row is None:
        raise not_found(kind, ident, param="id")
    return row


async def _found_object(
    pool: Pool, query: str, prefix: str, kind: str, ident: str, tenant_id: uuid.UUID, asked: Consistency
) -> tuple[tuple[Any, ...], Consistency]:
    """A single object's row and the consistency it was read at (``object_sql``).

    A stale read that finds nothing may just be early (the object was created after the follower-read
    timestamp), so it is read again, current: staleness never turns into a 404. An id that really is
    missing (or another tenant's) then costs a second round trip, on follower reads only."""
    sql, served = object_sql(pool, query, asked)
    if served == STALE:
        row = await _by_id(pool, sql, prefix, ident, (tenant_id,))
        if row is not None:
            return row, STALE
    return await _found(pool, query, prefix, kind, ident, tenant_id), CURRENT


async def _cursor(
    pool: Pool, query: str, prefix: str, starting_after: str, scope: tuple[Any, ...]
) -> tuple[Any, ...]:
    row = await _by_id(pool, query, prefix, starting_after, scope)
    if row is None:
        raise invalid_cursor(starting_after)
    return row
