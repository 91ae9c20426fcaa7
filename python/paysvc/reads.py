"""Read queries for the GET endpoints: single statements in autocommit, always current data,
tenant-scoped (another tenant's id answers exactly like a missing one).

Lists are cursor-paginated like Stripe: ``limit`` + 1 rows are read to learn ``has_more``; the
cursor (``starting_after``) must name an object of the same list, else 400 ``invalid_cursor``.
"""

from __future__ import annotations

import uuid
from typing import Any

from paysvc import ids
from paysvc.db.pool import Pool
from paysvc.errors import invalid_cursor, not_found
from paysvc.resources import (
    Account,
    AccountList,
    EntryList,
    FeeRuleOut,
    FeeScheduleOut,
    Payment,
    PaymentList,
    account_from_row,
    entry_from_row,
    payment_from_row,
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
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at
FROM payments WHERE tenant_id = %s AND id = %s"""
PAYMENT_CURSOR = "SELECT created_at, id FROM payments WHERE tenant_id = %s AND id = %s"
LIST_PAYMENTS = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at
FROM payments WHERE tenant_id = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_AFTER = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at
FROM payments WHERE tenant_id = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_BY_STATUS = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at
FROM payments WHERE tenant_id = %s AND status = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_PAYMENTS_BY_STATUS_AFTER = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at
FROM payments WHERE tenant_id = %s AND status = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""

ACCOUNT_EXISTS = "SELECT 1 FROM accounts WHERE tenant_id = %s AND id = %s"
ENTRY_CURSOR = "SELECT seq FROM entries WHERE tenant_id = %s AND account_id = %s AND id = %s"
LIST_ENTRIES = """
SELECT id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at
FROM entries WHERE tenant_id = %s AND account_id = %s
ORDER BY seq DESC LIMIT %s"""
LIST_ENTRIES_AFTER = """
SELECT id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at
FROM entries WHERE tenant_id = %s AND account_id = %s AND seq < %s
ORDER BY seq DESC LIMIT %s"""

GET_FEE_RULES = (
    "SELECT currency, percent_bps, fixed_minor, min_minor, max_minor FROM fee_rules "
    "WHERE tenant_id = %s ORDER BY currency"
)


async def _one(pool: Pool, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    async with pool.connection() as conn:
        return await (await conn.execute(query, params)).fetchone()


async def _all(pool: Pool, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        return await (await conn.execute(query, params)).fetchall()


def _page(rows: list[tuple[Any, ...]], limit: int) -> tuple[list[tuple[Any, ...]], bool]:
    return rows[:limit], len(rows) > limit


async def get_account(pool: Pool, tenant_id: uuid.UUID, account_id: str) -> Account:
    key = ids.decode(ids.ACCOUNT, account_id)
    row = None if key is None else await _one(pool, GET_ACCOUNT, (tenant_id, key))
    if row is None:
        raise not_found("account", account_id, param="id")
    return account_from_row(row)


async def list_accounts(pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None) -> AccountList:
    if starting_after is None:
        rows = await _all(pool, LIST_ACCOUNTS, (tenant_id, limit + 1))
    else:
        created_at, cursor_id = await _cursor(pool, ACCOUNT_CURSOR, ids.ACCOUNT, tenant_id, starting_after)
        rows = await _all(pool, LIST_ACCOUNTS_AFTER, (tenant_id, created_at, cursor_id, limit + 1))
    page, more = _page(rows, limit)
    return AccountList(data=[account_from_row(r) for r in page], has_more=more)


async def get_payment(pool: Pool, tenant_id: uuid.UUID, payment_id: str) -> Payment:
    key = ids.decode(ids.PAYMENT, payment_id)
    row = None if key is None else await _one(pool, GET_PAYMENT, (tenant_id, key))
    if row is None:
        raise not_found("payment", payment_id, param="id")
    return payment_from_row(row)


async def list_payments(
    pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None, status: str | None
) -> PaymentList:
    after: tuple[Any, ...] = ()
    if starting_after is not None:
        after = await _cursor(pool, PAYMENT_CURSOR, ids.PAYMENT, tenant_id, starting_after)
    if status is None:
        query = LIST_PAYMENTS_AFTER if after else LIST_PAYMENTS
        params: tuple[Any, ...] = (tenant_id, *after, limit + 1)
    else:
        query = LIST_PAYMENTS_BY_STATUS_AFTER if after else LIST_PAYMENTS_BY_STATUS
        params = (tenant_id, status, *after, limit + 1)
    page, more = _page(await _all(pool, query, params), limit)
    return PaymentList(data=[payment_from_row(r) for r in page], has_more=more)


async def list_entries(
    pool: Pool, tenant_id: uuid.UUID, account_id: str, limit: int, starting_after: str | None
) -> EntryList:
    account_key = ids.decode(ids.ACCOUNT, account_id)
    if account_key is None or await _one(pool, ACCOUNT_EXISTS, (tenant_id, account_key)) is None:
        raise not_found("account", account_id, param="id")
    if starting_after is None:
        rows = await _all(pool, LIST_ENTRIES, (tenant_id, account_key, limit + 1))
    else:
        entry_key = ids.decode(ids.ENTRY, starting_after)
        cursor = None if entry_key is None else await _one(
            pool, ENTRY_CURSOR, (tenant_id, account_key, entry_key)
        )
        if cursor is None:
            raise invalid_cursor(starting_after)
        rows = await _all(pool, LIST_ENTRIES_AFTER, (tenant_id, account_key, cursor[0], limit + 1))
    page, more = _page(rows, limit)
    return EntryList(data=[entry_from_row(r) for r in page], has_more=more)


async def get_fee_schedule(pool: Pool, tenant_id: uuid.UUID) -> FeeScheduleOut:
    rows = await _all(pool, GET_FEE_RULES, (tenant_id,))
    return FeeScheduleOut(rules=[
        FeeRuleOut(currency=c, percent_bps=bps, fixed=fixed, min=lo, max=hi) for c, bps, fixed, lo, hi in rows
    ])


async def _cursor(
    pool: Pool, query: str, prefix: str, tenant_id: uuid.UUID, starting_after: str
) -> tuple[Any, ...]:
    key = ids.decode(prefix, starting_after)
    row = None if key is None else await _one(pool, query, (tenant_id, key))
    if row is None:
        raise invalid_cursor(starting_after)
    return row
