"""Group commit: the payment requests of one API process are applied together, many per transaction.

One committer task per process takes everything queued (up to ``max_batch``) and applies it in ONE
SERIALIZABLE transaction with a fixed number of statements, whatever the batch size:

    1. INSERT every idempotency claim (unnest) … ON CONFLICT DO NOTHING RETURNING the claimed ones
    2. (only if some keys were already taken) SELECT their records, to replay them or refuse (422)
    3. SELECT every account the batch touches … ORDER BY id FOR UPDATE
    4. one data-modifying statement: INSERT payments, INSERT events, UPDATE balances, INSERT entries,
       UPDATE the idempotency records (all through unnest)
    5. (only if some request was a 400 found in the ledger, say a currency mismatch) DELETE its claim
plus BEGIN and COMMIT. Outcomes are computed in order in Python against the locked rows, so each
payment sees the balances the ones before it left, exactly as if they had run one by one; a
declined payment fails alone. A serialization failure re-runs the whole batch; an ambiguous commit
re-runs it too, and the claims then replay what committed.

There is no timer: a batch forms while the previous one commits, so a lone request goes at once.
The queue is bounded: when it is full the request gets 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from psycopg.types.json import Jsonb

from paysvc import ids
from paysvc._native import PaymentPlan
from paysvc.db.pool import Pool
from paysvc.db.retry import Conn, RetryPolicy, run_transaction
from paysvc.errors import ApiError, not_found, service_unavailable
from paysvc.ledger.idempotency import Outcome, key_in_use
from paysvc.ledger.postings import LOCK_ACCOUNTS, LockedAccount, Posting, apply
from paysvc.resources import EventType, Payment, PaymentStatus, encode
from paysvc.tenants import Tenant
from paysvc.timefmt import rfc3339

log = logging.getLogger(__name__)

CLAIM_MANY = """
INSERT INTO idempotency_keys (tenant_id, idem_key, fingerprint)
SELECT c.tenant_id, c.idem_key, c.fingerprint
FROM unnest(%s::UUID[], %s::TEXT[], %s::TEXT[]) AS c(tenant_id, idem_key, fingerprint)
ON CONFLICT (tenant_id, idem_key) DO NOTHING
RETURNING tenant_id, idem_key, created_at"""
LOOKUP_MANY = """
SELECT k.tenant_id, k.idem_key, k.fingerprint, k.status_code, k.response_body, k.created_at < now() - %s
FROM idempotency_keys k
JOIN unnest(%s::UUID[], %s::TEXT[]) AS u(tenant_id, idem_key)
  ON k.tenant_id = u.tenant_id AND k.idem_key = u.idem_key"""
FORGET_MANY = """
DELETE FROM idempotency_keys
WHERE (tenant_id, idem_key) IN (
    SELECT u.tenant_id, u.idem_key FROM unnest(%s::UUID[], %s::TEXT[]) AS u(tenant_id, idem_key))"""

WRITE_BATCH = """
WITH pay AS (
    INSERT INTO payments (id, tenant_id, amount, amount_captured, amount_refunded, fee, net, currency,
                          source_id, destination_id, status, failure_code, cancellation_reason,
                          description, metadata, created_at, expires_at, last_event_at)
    SELECT p.id, p.tenant_id, p.amount, p.captured, 0, p.fee, p.net, p.currency, p.source_id, p.destination_id,
           p.status, p.failure_code, NULL, p.description, p.metadata, %(now)s, p.expires_at, %(now)s
    FROM unnest(%(p_ids)s::UUID[], %(p_tenants)s::UUID[], %(p_amounts)s::BIGINT[], %(p_captured)s::BIGINT[],
                %(p_fees)s::BIGINT[], %(p_nets)s::BIGINT[], %(p_currencies)s::TEXT[], %(p_sources)s::UUID[],
                %(p_destinations)s::UUID[], %(p_statuses)s::TEXT[], %(p_failures)s::TEXT[],
                %(p_descriptions)s::TEXT[], %(p_metadata)s::JSONB[], %(p_expires)s::TIMESTAMPTZ[])
         AS p(id, tenant_id, amount, captured, fee, net, currency, source_id, destination_id, status,
              failure_code, description, metadata, expires_at)
), ev AS (
    INSERT INTO events (id, tenant_id, type, data, created_at)
    SELECT v.id, v.tenant_id, v.type, v.data, %(now)s
    FROM unnest(%(v_ids)s::UUID[], %(v_tenants)s::UUID[], %(v_types)s::TEXT[], %(v_data)s::BYTEA[])
         AS v(id, tenant_id, type, data)
), bal AS (
    UPDATE accounts
    SET posted = accounts.posted + d.posted_delta,
        pending = accounts.pending + d.pending_delta,
        entry_seq = d.entry_seq
    FROM unnest(%(acct_ids)s::UUID[], %(posted_deltas)s::BIGINT[], %(pending_deltas)s::BIGINT[],
                %(acct_seqs)s::BIGINT[]) AS d(id, posted_delta, pending_delta, entry_seq)
    WHERE accounts.id = d.id
), ent AS (
    INSERT INTO entries (id, tenant_id, account_id, seq, currency, kind, amount, balance_after,
                         payment_id, refund_id, created_at)
    SELECT e.id, e.tenant_id, e.account_id, e.seq, e.currency, e.kind, e.amount, e.balance_after,
           e.payment_id, NULL, %(now)s
    FROM unnest(%(e_ids)s::UUID[], %(e_tenants)s::UUID[], %(e_accounts)s::UUID[], %(e_seqs)s::BIGINT[],
                %(e_currencies)s::TEXT[], %(e_kinds)s::TEXT[], %(e_amounts)s::BIGINT[],
                %(e_balances)s::BIGINT[], %(e_payments)s::UUID[])
         AS e(id, tenant_id, account_id, seq, currency, kind, amount, balance_after, payment_id)
)
UPDATE idempotency_keys
SET status_code = o.status_code, response_body = o.body, payment_id = o.payment_id
FROM unnest(%(o_tenants)s::UUID[], %(o_keys)s::TEXT[], %(o_statuses)s::SMALLINT[], %(o_bodies)s::BYTEA[],
            %(o_payments)s::UUID[]) AS o(tenant_id, idem_key, status_code, body, payment_id)
WHERE idempotency_keys.tenant_id = o.tenant_id AND idempotency_keys.idem_key = o.idem_key
"""

CREATION_EVENTS: dict[PaymentStatus, EventType] = {
    "requires_capture": "payment.authorized",
    "succeeded": "payment.succeeded",
    "failed": "payment.failed",
}


@dataclass(slots=True)
class Request:
    tenant: Tenant
    plan: PaymentPlan
    key: str
    request_id: str
    future: asyncio.Future[Outcome]


Answer = Outcome | ApiError


class GroupCommitter:
    """Queues payment requests and applies them in batches, one transaction at a time."""

    def __init__(self, pool: Pool, retry: RetryPolicy, retention: timedelta, max_batch: int, max_queue: int) -> None:
        assert 1 <= max_batch <= 10_000 and max_batch <= max_queue
        self.pool = pool
        self.retry = retry
        self.retention = retention
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: deque[Request] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.payments = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group committer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(service_unavailable("The service is shutting down; retry."))

    async def submit(self, tenant: Tenant, plan: PaymentPlan, key: str, request_id: str) -> Outcome:
        if len(self._queue) >= self.max_queue:
            raise service_unavailable("Too many payments are waiting to be applied; retry shortly.")
        self.start()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(Request(tenant, plan, key, request_id, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
                await self._commit(batch)

    async def _commit(self, batch: list[Request]) -> None:
        try:
            answers = await run_transaction(
                self.pool, partial(_batch_tx, batch, self.retention), policy=self.retry, idempotent=True
            )
        except Exception as exc:  # the whole batch failed (503 after retries, or a bug): each request hears it
            if not isinstance(exc, ApiError):
                log.exception("group commit of %d payments failed", len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        self.batches += 1
        self.payments += len(batch)
        for request, answer in zip(batch, answers, strict=True):
            if request.future.done():  # the client went away (cancelled)
                continue
            if isinstance(answer, ApiError):
                request.future.set_exception(answer)
            else:
                request.future.set_result(answer)


@dataclass(slots=True)
class _Rows:
    """The arrays of WRITE_BATCH, filled item by item."""

    params: dict[str, list[Any]]
    touched: dict[uuid.UUID, list[int]]  # account -> [posted delta, pending delta]

    @classmethod
    def empty(cls) -> _Rows:
        names = ("p_ids p_tenants p_amounts p_captured p_fees p_nets p_currencies p_sources p_destinations "
                 "p_statuses p_failures p_descriptions p_metadata p_expires v_ids v_tenants v_types v_data "
                 "e_ids e_tenants e_accounts e_seqs e_currencies e_kinds e_amounts e_balances e_payments "
                 "o_tenants o_keys o_statuses o_bodies o_payments").split()
        return cls({name: [] for name in names}, {})

    def add(self, **values: Any) -> None:
        for name, value in values.items():
            self.params[name].append(value)


async def _batch_tx(batch: list[Request], retention: timedelta, conn: Conn) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(batch)
    tokens = [(r.tenant.id, r.key) for r in batch]
    assert len(set(tokens)) == len(tokens), "one key is in flight once per process (InFlight)"

    claimed = await _claim(conn, batch)
    now = next(iter(claimed.values()), None)
    unclaimed = [i for i, token in enumerate(tokens) if token not in claimed]
    if unclaimed:
        expired = await _replays(conn, batch, unclaimed, retention, answers)
        if expired:
            await conn.execute(FORGET_MANY, ([batch[i].tenant.id for i in expired], [batch[i].key for i in expired]))
            again = await _claim(conn, [batch[i] for i in expired])
            assert len(again) == len(expired)
            claimed.update(again)
            now = now or next(iter(again.values()))
    todo = [i for i, token in enumerate(tokens) if token in claimed]
    if not todo:
        return _done(answers)
    assert now is not None

    wanted: set[uuid.UUID] = set()
    for i in todo:
        plan, tenant = batch[i].plan, batch[i].tenant
        for text in (plan.source, plan.destination):
            account_id = ids.decode(ids.ACCOUNT, text)
            if account_id is not None:
                wanted.add(account_id)
        if plan.fee and plan.currency in tenant.fee_accounts:
            wanted.add(tenant.fee_accounts[plan.currency])
    rows: list[tuple[Any, ...]] = await (await conn.execute(LOCK_ACCOUNTS, (sorted(wanted),))).fetchall()
    accounts: dict[uuid.UUID, LockedAccount] = {row[0]: LockedAccount.from_row(row) for row in rows}

    out = _Rows.empty()
    forget: list[int] = []
    for i in todo:
        answer = _apply_one(batch[i], accounts, now, out)
        answers[i] = answer
        if isinstance(answer, ApiError):
            forget.append(i)  # a 400 the ledger found: nothing is stored, the key stays free

    params: dict[str, Any] = dict(out.params)
    params["now"] = now
    account_ids = sorted(out.touched)
    params["acct_ids"] = account_ids
    params["posted_deltas"] = [out.touched[a][0] for a in account_ids]
    params["pending_deltas"] = [out.touched[a][1] for a in account_ids]
    params["acct_seqs"] = [accounts[a].entry_seq for a in account_ids]
    params["p_metadata"] = [Jsonb(m) for m in params["p_metadata"]]
    await conn.execute(WRITE_BATCH, params)
    if forget:
        await conn.execute(FORGET_MANY, ([batch[i].tenant.id for i in forget], [batch[i].key for i in forget]))
    return _done(answers)


def _done(answers: list[Answer | None]) -> list[Answer]:
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


async def _claim(conn: Conn, requests: list[Request]) -> dict[tuple[uuid.UUID, str], datetime]:
    rows = await (await conn.execute(CLAIM_MANY, (
        [r.tenant.id for r in requests], [r.key for r in requests], [r.plan.fingerprint for r in requests],
    ))).fetchall()
    return {(row[0], row[1]): row[2] for row in rows}  # type: ignore[misc]


async def _replays(
    conn: Conn, batch: list[Request], unclaimed: list[int], retention: timedelta, answers: list[Answer | None]
) -> list[int]:
    """Answer the requests whose key was taken (replay, 422, 409); return those whose record expired."""
    rows = await (await conn.execute(LOOKUP_MANY, (
        retention, [batch[i].tenant.id for i in unclaimed], [batch[i].key for i in unclaimed],
    ))).fetchall()
    records: dict[tuple[Any, Any], tuple[Any, ...]] = {(row[0], row[1]): row[2:] for row in rows}
    expired: list[int] = []
    for i in unclaimed:
        request = batch[i]
        record = records.get((request.tenant.id, request.key))
        assert record is not None, "a conflicting idempotency record cannot vanish inside the transaction"
        fingerprint, status_code, body, is_expired = record
        if is_expired:
            expired.append(i)
        elif fingerprint != request.plan.fingerprint:
            answers[i] = ApiError(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request; use a new key for a new request.",
                param="Idempotency-Key",
            )
        elif status_code is None:
            answers[i] = key_in_use()
        else:
            answers[i] = Outcome(status=int(status_code), body=bytes(body), replayed=True)
    return expired


def _apply_one(request: Request, accounts: dict[uuid.UUID, LockedAccount], now: datetime, out: _Rows) -> Answer:
    """One payment against the locked rows (which it updates for the payments after it)."""
    tenant, plan = request.tenant, request.plan
    source = ids.decode(ids.ACCOUNT, plan.source)
    destination = ids.decode(ids.ACCOUNT, plan.destination)
    for param, account_id, text in (("source", source, plan.source), ("destination", destination, plan.destination)):
        row = None if account_id is None else accounts.get(account_id)
        if row is None or row.tenant_id != tenant.id:  # another tenant's account is a missing one
            body = not_found("account", text, param=param).body(request.request_id)
            out.add(o_tenants=tenant.id, o_keys=request.key, o_statuses=404, o_bodies=body, o_payments=None)
            return Outcome(404, body)
    assert source is not None and destination is not None
    for account_id in (source, destination):
        if accounts[account_id].currency != plan.currency:
            return ApiError(
                "currency_mismatch",
                f"The payment is in {plan.currency} but account {ids.encode(ids.ACCOUNT, account_id)} holds "
                f"{accounts[account_id].currency}.",
                param="currency",
            )
    fee = plan.fee or 0
    fee_account = tenant.fee_accounts.get(plan.currency) if fee else None
    assert fee == 0 or (fee_account is not None and fee_account in accounts), "a fee rule has its fee account"

    payment_id = ids.new_uuid()
    src = accounts[source]
    if not src.allow_negative and src.available < plan.amount:
        payment = new_payment(plan, payment_id, now, "failed", failure_code="insufficient_funds")
        error = ApiError(
            "insufficient_funds",
            f"The source account {plan.source} does not have {plan.amount} {plan.currency} available.",
            param="source", payment=payment.id,
        )
        body = error.body(request.request_id)
        _record(out, tenant, request.key, payment_id, payment, source, destination, None, 402, body, encode(payment))
        return Outcome(402, body)

    if plan.capture:
        postings = [Posting(source, "payment", -plan.amount)]
        if plan.amount - fee:
            postings.append(Posting(destination, "payment", plan.amount - fee))
        if fee:
            assert fee_account is not None
            postings.append(Posting(fee_account, "fee", fee))
        writes = apply(accounts, postings)
        payment = new_payment(plan, payment_id, now, "succeeded", captured=plan.amount)
        expires_at = None
    else:
        assert plan.expires_in_s is not None
        writes = apply(accounts, [], pending_deltas={source: plan.amount})
        expires_at = now + timedelta(seconds=plan.expires_in_s)
        payment = new_payment(plan, payment_id, now, "requires_capture", expires_at=expires_at)
    for account_id, posted_delta, pending_delta in zip(
        writes.account_ids, writes.posted_deltas, writes.pending_deltas, strict=True
    ):
        total = out.touched.setdefault(account_id, [0, 0])
        total[0] += posted_delta
        total[1] += pending_delta
    for entry_id, account_id, seq, kind, amount, balance in zip(
        writes.entry_ids, writes.entry_accounts, writes.entry_seq_values, writes.entry_kinds,
        writes.entry_amounts, writes.entry_balances, strict=True,
    ):
        out.add(e_ids=entry_id, e_tenants=tenant.id, e_accounts=account_id, e_seqs=seq, e_currencies=plan.currency,
                e_kinds=kind, e_amounts=amount, e_balances=balance, e_payments=payment_id)
    body = encode(payment)
    _record(out, tenant, request.key, payment_id, payment, source, destination, expires_at, 201, body, body)
    return Outcome(201, body)


def _record(
    out: _Rows, tenant: Tenant, key: str, payment_id: uuid.UUID, payment: Payment, source: uuid.UUID,
    destination: uuid.UUID, expires_at: datetime | None, status_code: int, body: bytes, event_data: bytes,
) -> None:
    """The payment row, its event and its idempotency record."""
    out.add(p_ids=payment_id, p_tenants=tenant.id, p_amounts=payment.amount, p_captured=payment.amount_captured,
            p_fees=payment.fee, p_nets=payment.net, p_currencies=payment.currency, p_sources=source,
            p_destinations=destination, p_statuses=payment.status, p_failures=payment.failure_code,
            p_descriptions=payment.description, p_metadata=payment.metadata, p_expires=expires_at)
    out.add(v_ids=ids.new_uuid(), v_tenants=tenant.id, v_types=CREATION_EVENTS[payment.status], v_data=event_data)
    out.add(o_tenants=tenant.id, o_keys=key, o_statuses=status_code, o_bodies=body, o_payments=payment_id)


def new_payment(
    plan: PaymentPlan, payment_id: uuid.UUID, now: datetime, status: PaymentStatus, *, captured: int = 0,
    expires_at: datetime | None = None, failure_code: str | None = None,
) -> Payment:
    """The payment as created: fee and net only once money moved (a capture)."""
    moved = status == "succeeded"
    return Payment(
        id=ids.encode(ids.PAYMENT, payment_id),
        amount=plan.amount,
        amount_captured=captured,
        amount_refunded=0,
        fee=plan.fee if moved else None,
        net=plan.net if moved else None,
        currency=plan.currency,
        source=plan.source,
        destination=plan.destination,
        status=status,
        failure_code=failure_code,
        cancellation_reason=None,
        description=plan.description,
        metadata=dict(plan.metadata),
        created_at=rfc3339(now),
        expires_at=None if expires_at is None else rfc3339(expires_at),
    )
