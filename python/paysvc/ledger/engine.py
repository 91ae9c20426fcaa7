"""The ledger engine: every write that moves money (or creates what money moves through) runs here,
inside the retry helper, with its idempotency record.

Payments go through the group committer (ledger/batching.py: many per transaction, READ COMMITTED,
lock then read then write); with PAYSVC_GROUP_COMMIT=false each payment is a batch of one, through
the same code and statements. Each tenant's risk policy comes from the per-process cache
(risk/cache.py) before the payment is queued.

Captures, cancels, refunds and expiry are in ledger/lifecycle.py (their statements are listed there);
the numbering of events for the feed is in ledger/events.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from psycopg.types.json import Jsonb

from paysvc import ids, metrics
from paysvc._native import AccountPlan, CancelPlan, CapturePlan, FeeRule, PaymentPlan, RefundPlan
from paysvc.config import Settings
from paysvc.db.pool import Pool
from paysvc.db.retry import Conn, RetryPolicy, read_one, run_together, run_transaction
from paysvc.errors import ApiError, not_found
from paysvc.ledger import events, idempotency, lifecycle
from paysvc.ledger.batching import BATCH_ISOLATION, GroupCommitter, Request, batch_tx
from paysvc.ledger.idempotency import InFlight, Outcome
from paysvc.ledger.locks import AccountLocks
from paysvc.resources import (
    Account,
    Balance,
    FeeRuleOut,
    FeeScheduleOut,
    account_from_row,
    encode,
)
from paysvc.risk.cache import RiskCache
from paysvc.tenants import Tenant
from paysvc.timefmt import rfc3339

# One payment in one statement: the payment, its event, balances, entries and the idempotency record.
# The service writes payments with batching.WRITE_BATCH (which also carries risk); this is the
# single-payment SQL `paysvc bench` runs in pgbench as the database's own ceiling (bench/pgbench.py).
WRITE_PAYMENT = """
WITH pay AS (
    INSERT INTO payments (id, tenant_id, amount, amount_captured, amount_refunded, fee, net, currency,
                          source_id, destination_id, status, failure_code, cancellation_reason,
                          description, metadata, created_at, expires_at, last_event_at)
    VALUES (%(id)s, %(tenant)s, %(amount)s, %(captured)s, 0, %(fee)s, %(net)s, %(currency)s,
            %(source)s, %(destination)s, %(status)s, %(failure_code)s, NULL,
            %(description)s, %(metadata)s, %(created_at)s, %(expires_at)s, %(created_at)s)
), ev AS (
    INSERT INTO events (id, tenant_id, type, data, created_at)
    VALUES (%(event)s, %(tenant)s, %(event_type)s, %(event_data)s, %(created_at)s)
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
    SELECT e.id, %(tenant)s, e.account_id, e.seq, %(currency)s, e.kind, e.amount, e.balance_after,
           %(id)s, NULL, %(created_at)s
    FROM unnest(%(e_ids)s::UUID[], %(e_accounts)s::UUID[], %(e_seqs)s::BIGINT[], %(e_kinds)s::TEXT[],
                %(e_amounts)s::BIGINT[], %(e_balances)s::BIGINT[])
         AS e(id, account_id, seq, kind, amount, balance_after)
)
UPDATE idempotency_keys SET status_code = %(status_code)s, response_body = %(body)s, payment_id = %(id)s
WHERE tenant_id = %(tenant)s AND idem_key = %(key)s
"""

# By primary key only (a transition's in-process reservation; the transaction checks the tenant).
PAYMENT_ACCOUNTS = "SELECT source_id, destination_id, currency FROM payments WHERE id = %s"

INSERT_ACCOUNT = (
    "INSERT INTO accounts (id, tenant_id, currency, allow_negative, purpose, metadata, created_at) "
    "VALUES (%s, %s, %s, %s, 'general', %s, now()) "
    "RETURNING id, currency, allow_negative, purpose, posted, pending, metadata, created_at"
)

WRITE_ACCOUNT_IDEMPOTENT = """
WITH acct AS (
    INSERT INTO accounts (id, tenant_id, currency, allow_negative, purpose, metadata, created_at)
    VALUES (%(id)s, %(tenant)s, %(currency)s, %(allow_negative)s, 'general', %(metadata)s, %(created_at)s)
)
UPDATE idempotency_keys SET status_code = 201, response_body = %(body)s
WHERE tenant_id = %(tenant)s AND idem_key = %(key)s
"""

FEE_ACCOUNTS_OF_TENANT = "SELECT currency, account_id FROM fee_accounts WHERE tenant_id = %s"
DELETE_FEE_RULES = "DELETE FROM fee_rules WHERE tenant_id = %s"
INSERT_FEE_RULES = """
INSERT INTO fee_rules (tenant_id, currency, percent_bps, fixed_minor, min_minor, max_minor)
SELECT %(tenant)s, r.currency, r.percent_bps, r.fixed_minor, r.min_minor, r.max_minor
FROM unnest(%(currencies)s::TEXT[], %(bps)s::BIGINT[], %(fixed)s::BIGINT[], %(mins)s::BIGINT[],
            %(maxs)s::BIGINT[]) AS r(currency, percent_bps, fixed_minor, min_minor, max_minor)
"""
# Two statements (not one CTE): the fee_accounts foreign key must see the committed-in-statement account.
INSERT_FEE_ACCOUNT_ROWS = """
INSERT INTO accounts (id, tenant_id, currency, allow_negative, purpose, metadata, created_at)
SELECT a.id, %(tenant)s, a.currency, false, 'fees', '{}'::JSONB, now()
FROM unnest(%(ids)s::UUID[], %(currencies)s::TEXT[]) AS a(id, currency)
"""
REGISTER_FEE_ACCOUNTS = """
INSERT INTO fee_accounts (tenant_id, currency, account_id)
SELECT %(tenant)s, a.currency, a.id FROM unnest(%(ids)s::UUID[], %(currencies)s::TEXT[]) AS a(id, currency)
"""


# A created payment's status for metrics, by (HTTP status, capture); the only other stored answer
# of a payment request is the 404 of a missing account (errors.not_found: resource_missing).
_PAYMENT_OUTCOMES = {(201, True): "succeeded", (201, False): "requires_capture", (402, True): "failed",
                     (402, False): "failed"}


@dataclass(frozen=True)
class EngineConfig:
    retry: RetryPolicy
    idempotency_retention: timedelta
    group_commit: bool = True
    group_commit_max_batch: int = 256
    group_commit_writers: int = 1
    queue_max: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(
            retry=RetryPolicy(settings.tx_max_attempts, settings.tx_backoff_base_ms, settings.tx_backoff_cap_ms),
            idempotency_retention=timedelta(hours=settings.idempotency_retention_h),
            group_commit=settings.group_commit,
            group_commit_max_batch=settings.group_commit_max_batch,
            group_commit_writers=settings.group_commit_writers,
            queue_max=settings.engine_queue_max,
        )


class LedgerEngine:
    def __init__(self, pool: Pool, config: EngineConfig, risk: RiskCache | None = None) -> None:
        self.pool = pool
        self.config = config
        self.risk = risk  # the tenants' risk policies (None: payments are not assessed)
        self.in_flight = InFlight()
        self.locks = AccountLocks()
        self.committer: GroupCommitter | None = None
        if config.group_commit:
            self.committer = GroupCommitter(
                pool, config.retry, config.idempotency_retention, config.group_commit_max_batch, config.queue_max,
                writers=config.group_commit_writers,
            )

    async def close(self) -> None:
        """Stop the group committer; requests still queued are answered 503."""
        if self.committer is not None:
            await self.committer.stop()

    # ---- payments --------------------------------------------------------------------------

    async def create_payment(self, tenant: Tenant, plan: PaymentPlan, key: str, request_id: str) -> Outcome:
        try:
            outcome = await self._create_payment(tenant, plan, key, request_id)
        except ApiError as error:
            metrics.record_payment(error.code)
            raise
        if outcome.replayed:
            metrics.record_idempotency_replay()
        else:
            metrics.record_payment(_PAYMENT_OUTCOMES.get((outcome.status, plan.capture), "resource_missing"))
        return outcome

    async def _create_payment(self, tenant: Tenant, plan: PaymentPlan, key: str, request_id: str) -> Outcome:
        risk = None
        if self.risk is not None:
            risk = self.risk.cached(tenant.id) or await self.risk.get(tenant.id)
        with self.in_flight.claim(tenant.id, key):
            if self.committer is not None:  # many payments per transaction (ledger/batching.py)
                return await self.committer.submit(tenant, plan, key, request_id, risk)
            # One transaction per payment (PAYSVC_GROUP_COMMIT=false): a batch of one, so a payment is
            # decided by the same code (risk, then funds) and written by the same statements.
            future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            request = Request.new(tenant, plan, key, request_id, future, risk)
            async with self.locks.hold(list(request.accounts)):
                (answer,) = await run_together(
                    self.pool, partial(batch_tx, [request], self.config.idempotency_retention),
                    policy=self.config.retry, isolation=BATCH_ISOLATION,
                )
            if isinstance(answer, ApiError):
                raise answer
            return answer

    # ---- lifecycle: capture, cancel, refund, expiry (ledger/lifecycle.py) -----------------------

    async def capture(
        self, tenant: Tenant, payment: str, plan: CapturePlan, key: str | None, request_id: str
    ) -> Outcome:
        return await self._on_payment(tenant, payment, key, request_id, partial(lifecycle.capture, plan=plan))

    async def cancel(
        self, tenant: Tenant, payment: str, plan: CancelPlan, key: str | None, request_id: str
    ) -> Outcome:
        return await self._on_payment(tenant, payment, key, request_id, partial(lifecycle.cancel, plan=plan))

    async def refund(self, tenant: Tenant, payment: str, plan: RefundPlan, key: str, request_id: str) -> Outcome:
        return await self._on_payment(tenant, payment, key, request_id, partial(lifecycle.refund, plan=plan))

    async def _on_payment(
        self,
        tenant: Tenant,
        payment: str,
        key: str | None,
        request_id: str,
        step: Callable[[Conn, lifecycle.Target], Awaitable[Outcome]],
    ) -> Outcome:
        """Run one transition of one payment: in-process, transitions of the same payment queue up
        (instead of failing each other with serialization errors); the database still decides."""
        payment_id = ids.decode(ids.PAYMENT, payment)
        if payment_id is None:
            raise not_found("payment", payment, param="id")
        target = lifecycle.Target(
            tenant, payment_id, payment, key, request_id, self.config.idempotency_retention
        )

        async def work(conn: Conn) -> Outcome:
            return await step(conn, target)

        guard = contextlib.nullcontext() if key is None else self.in_flight.claim(tenant.id, key)
        with guard:
            async with self._transition(payment_id, tenant):
                # Without a key an ambiguous commit cannot be resolved: the client gets 503 and checks.
                return await run_transaction(self.pool, work, policy=self.config.retry, idempotent=key is not None)

    async def expire(self, payment_id: uuid.UUID) -> bool:
        """Release one hold whose time is up (the sweeper's work); False if it was no longer open."""
        async with self._transition(payment_id, None):
            return await run_transaction(
                self.pool, partial(lifecycle.expire_due, payment_id=payment_id), policy=self.config.retry,
                idempotent=True,
            )

    @contextlib.asynccontextmanager
    async def _transition(self, payment_id: uuid.UUID, tenant: Tenant | None) -> AsyncIterator[None]:
        """In this process: one transition of a payment at a time, and no payment of its accounts
        applied meanwhile (group commit keeps its batches off them; without group commit, the
        accounts' in-process locks). A transition is a SERIALIZABLE transaction: one that waited for
        an account row while a batch held it would fail with 40001 when the batch committed, again
        and again on a hot merchant. Across processes the database still decides (and retries)."""
        accounts = await self._accounts_of(payment_id, tenant)
        async with self.locks.hold([payment_id]):
            if self.committer is not None:
                async with self.committer.reserve(accounts):
                    yield
            else:
                async with self.locks.hold(accounts):
                    yield

    async def _accounts_of(self, payment_id: uuid.UUID, tenant: Tenant | None) -> list[uuid.UUID]:
        """The accounts a transition of the payment may change: its source and destination (fixed at
        creation) and the tenant's fee account for its currency. None if there is no such payment:
        the transaction itself answers that."""
        row = await read_one(self.pool, PAYMENT_ACCOUNTS, (payment_id,))
        if row is None:
            return []
        source, destination, currency = row
        fee_account = tenant.fee_accounts.get(str(currency)) if tenant is not None else None
        return [a for a in (source, destination, fee_account) if isinstance(a, uuid.UUID)]

    async def sequence_events(self, tenant_id: uuid.UUID, max_batches: int = 1) -> int:
        """Number the tenant's committed events for the feed (ledger/events.py)."""
        return await events.sequence_tenant(self.pool, self.config.retry, tenant_id, max_batches)

    # ---- accounts ----------------------------------------------------------------------------

    async def create_account(self, tenant: Tenant, plan: AccountPlan, key: str | None) -> Outcome:
        if key is None:
            return await run_transaction(
                self.pool, partial(self._account_tx, tenant, plan), policy=self.config.retry, idempotent=False
            )
        with self.in_flight.claim(tenant.id, key):
            return await run_transaction(
                self.pool,
                partial(self._account_idempotent_tx, tenant, plan, key),
                policy=self.config.retry,
                idempotent=True,
            )

    async def _account_tx(self, tenant: Tenant, plan: AccountPlan, conn: Conn) -> Outcome:
        row = await (await conn.execute(
            INSERT_ACCOUNT,
            (ids.new_uuid(), tenant.id, plan.currency, plan.allow_negative, Jsonb(dict(plan.metadata))),
        )).fetchone()
        assert row is not None
        return Outcome(201, encode(account_from_row(row)))

    async def _account_idempotent_tx(self, tenant: Tenant, plan: AccountPlan, key: str, conn: Conn) -> Outcome:
        now = await self._claim(conn, tenant, key, plan.fingerprint)
        if isinstance(now, Outcome):
            return now
        account_id = ids.new_uuid()
        account = Account(
            id=ids.encode(ids.ACCOUNT, account_id),
            currency=plan.currency,
            allow_negative=plan.allow_negative,
            purpose="general",
            balance=Balance(posted=0, pending=0, available=0),
            metadata=dict(plan.metadata),
            created_at=rfc3339(now),
        )
        body = encode(account)
        await conn.execute(WRITE_ACCOUNT_IDEMPOTENT, {
            "id": account_id,
            "tenant": tenant.id,
            "currency": plan.currency,
            "allow_negative": plan.allow_negative,
            "metadata": Jsonb(account.metadata),
            "created_at": now,
            "body": body,
            "key": key,
        })
        return Outcome(201, body)

    # ---- fee schedule ------------------------------------------------------------------------

    async def put_fee_schedule(self, tenant: Tenant, rules: list[FeeRule]) -> FeeScheduleOut:
        return await run_transaction(
            self.pool, partial(self._fee_schedule_tx, tenant, rules), policy=self.config.retry, idempotent=True
        )

    async def _fee_schedule_tx(self, tenant: Tenant, rules: list[FeeRule], conn: Conn) -> FeeScheduleOut:
        existing = await (await conn.execute(FEE_ACCOUNTS_OF_TENANT, (tenant.id,))).fetchall()
        have = {row[0] for row in existing}
        missing = sorted({rule.currency for rule in rules} - have)
        if missing:
            new_accounts = {"tenant": tenant.id, "ids": [ids.new_uuid() for _ in missing], "currencies": missing}
            await conn.execute(INSERT_FEE_ACCOUNT_ROWS, new_accounts)
            await conn.execute(REGISTER_FEE_ACCOUNTS, new_accounts)
        await conn.execute(DELETE_FEE_RULES, (tenant.id,))
        await conn.execute(INSERT_FEE_RULES, {
            "tenant": tenant.id,
            "currencies": [r.currency for r in rules],
            "bps": [r.percent_bps for r in rules],
            "fixed": [r.fixed for r in rules],
            "mins": [r.min for r in rules],
            "maxs": [r.max for r in rules],
        })
        return FeeScheduleOut(rules=[
            FeeRuleOut(currency=r.currency, percent_bps=r.percent_bps, fixed=r.fixed, min=r.min, max=r.max)
            for r in rules
        ])

    # ---- shared ------------------------------------------------------------------------------

    async def _claim(self, conn: Conn, tenant: Tenant, key: str, fingerprint: str) -> datetime | Outcome:
        """Claim the key; return the transaction's timestamp, or the stored outcome to replay."""
        return await idempotency.claim(conn, tenant.id, key, fingerprint, self.config.idempotency_retention)

    async def _store_error(
        self, conn: Conn, tenant: Tenant, key: str, error: ApiError, request_id: str
    ) -> Outcome:
        """Store an outcome the ledger decided (a 404 for an id in the body) and answer it."""
        body = error.body(request_id)
        await conn.execute(idempotency.COMPLETE, (error.status, body, None, tenant.id, key))
        return Outcome(error.status, body)
