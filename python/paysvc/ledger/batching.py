"""Group commit: the payment requests of one API process are applied together, many per transaction.

A committer per process takes what is queued (up to ``max_batch``) and applies it in ONE transaction
with a fixed number of statements, whatever the batch size, sent in two round trips
(db/retry.Together):

    round trip 1: BEGIN ISOLATION LEVEL READ COMMITTED;
       INSERT every idempotency claim (unnest) … ON CONFLICT DO NOTHING RETURNING the claimed ones;
       SELECT every account the batch touches … ORDER BY id FOR UPDATE (with its risk state)
    (only if some keys were already taken: their records, to replay them or refuse with 422/409,
     and for expired ones a forget-and-claim-again round trip)
    round trip 2: one data-modifying statement (INSERT payments, INSERT reviews, INSERT events,
       UPDATE balances and risk states, INSERT entries, UPDATE the idempotency records, all through unnest);
       (only if some request was a 400 found in the ledger, say a currency mismatch) DELETE its claim;
       COMMIT
Sent one statement at a time the same batch took five round trips. Measured with `paysvc bench`
(spread, alternating runs): 1165 and 1187 payments/s before, 1278 and 1584 after, for the same API
CPU. (psycopg's pipeline mode, tried before, was slower: its bookkeeping cost more API CPU than the
round trips it saved.) The statements are bound client-side and not prepared: the server parses and
plans them for each batch, which a batch of many payments affords.

Outcomes are computed in order in Python against the locked rows, so each payment sees the balances
(and risk states) the ones before it left, exactly as if they had run one by one; a declined payment
fails alone. Risk decides before funds (brief section 8; docs/design.md, "Risk in the batch"): one
native call assesses the payment, two record it in its accounts' risk states. A
failed transaction re-runs the whole batch; an ambiguous commit (or a connection lost in either
round trip) re-runs it too, and the claims then replay what committed.

**Isolation: READ COMMITTED, lock then read then write** (sql-rules.md allows exactly this for the
group-commit path). Every balance a batch reads comes from the SELECT … FOR UPDATE, which locks the rows first;
every row it writes is new (random UUIDs) or locked by it (the accounts, and the idempotency rows it
claimed); the CHECK constraints still hold every balance. What SERIALIZABLE adds on top, predicate
locks on index pages, made concurrent batches fail each other most of the time (sql-rules.md
measured 57-88% retries) although they touch different accounts. So batches of different API
processes run side by side instead of retrying, and so can several batches of one process
(``writers``), provided no two of them touch the same account: a request waits in the queue while
an account it names is in a batch in flight, and requests behind it that name the same account wait
too, so each account's payments are applied in arrival order. Everything else stays SERIALIZABLE.
On CockroachDB, READ COMMITTED needs ``sql.txn.read_committed_isolation.enabled`` (otherwise it runs
the transaction SERIALIZABLE, which is also correct).

There is no timer: a batch forms while the previous one commits, so a lone request goes at once.
The queue is bounded: when it is full the request gets 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from psycopg import IsolationLevel

from paysvc import ids, metrics
from paysvc._native import PaymentPlan, RiskAssessment, risk_state_record
from paysvc.db import arrays
from paysvc.db.pool import Pool
from paysvc.db.retry import RetryPolicy, Statement, Together, run_together
from paysvc.errors import ApiError, not_found, service_unavailable
from paysvc.ledger.idempotency import Outcome, key_in_use
from paysvc.ledger.postings import LOCK_ACCOUNTS_WITH_RISK, LockedAccount, Posting, apply
from paysvc.resources import (
    NO_FRAUD_REPORT,
    EventType,
    OutcomeType,
    Payment,
    PaymentOutcome,
    PaymentStatus,
    Review,
    encode,
)
from paysvc.risk.cache import TenantRisk
from paysvc.risk.serving import STATE_OUTCOMES, log_assessment, not_assessed, render
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
# Only records still expired: under READ COMMITTED another process may have forgotten and claimed
# the key again since we looked (the DELETE re-checks each row's newest version after waiting).
FORGET_EXPIRED = """
DELETE FROM idempotency_keys
WHERE created_at < now() - %s AND (tenant_id, idem_key) IN (
    SELECT u.tenant_id, u.idem_key FROM unnest(%s::UUID[], %s::TEXT[]) AS u(tenant_id, idem_key))"""

BATCH_ISOLATION = IsolationLevel.READ_COMMITTED

WRITE_BATCH = """
WITH pay AS (
    INSERT INTO payments (id, tenant_id, amount, amount_captured, amount_refunded, fee, net, currency,
                          source_id, destination_id, status, failure_code, cancellation_reason,
                          description, metadata, created_at, expires_at, last_event_at, outcome, review_id)
    SELECT p.id, p.tenant_id, p.amount, p.captured, 0, p.fee, p.net, p.currency, p.source_id, p.destination_id,
           p.status, p.failure_code, NULL, p.description, p.metadata, %(now)s, p.expires_at, %(now)s, p.outcome,
           p.review_id
    FROM unnest(%(p_ids)s::UUID[], %(p_tenants)s::UUID[], %(p_amounts)s::BIGINT[], %(p_captured)s::BIGINT[],
                %(p_fees)s::BIGINT[], %(p_nets)s::BIGINT[], %(p_currencies)s::TEXT[], %(p_sources)s::UUID[],
                %(p_destinations)s::UUID[], %(p_statuses)s::TEXT[], %(p_failures)s::TEXT[],
                %(p_descriptions)s::TEXT[], %(p_metadata)s::JSONB[], %(p_expires)s::TIMESTAMPTZ[],
                %(p_outcomes)s::JSONB[], %(p_reviews)s::UUID[])
         AS p(id, tenant_id, amount, captured, fee, net, currency, source_id, destination_id, status,
              failure_code, description, metadata, expires_at, outcome, review_id)
), rev AS (
    INSERT INTO reviews (id, tenant_id, payment_id, reason, rule_id, rule_action, rule_predicate, open,
                         closed_reason, created_at)
    SELECT r.id, r.tenant_id, r.payment_id, 'rule', r.rule_id, r.rule_action, r.rule_predicate, true, NULL, %(now)s
    FROM unnest(%(r_ids)s::UUID[], %(r_tenants)s::UUID[], %(r_payments)s::UUID[], %(r_rules)s::UUID[],
                %(r_actions)s::TEXT[], %(r_predicates)s::TEXT[])
         AS r(id, tenant_id, payment_id, rule_id, rule_action, rule_predicate)
), ev AS (
    INSERT INTO events (id, tenant_id, type, data, created_at)
    SELECT v.id, v.tenant_id, v.type, v.data,
           -- a review opened with its payment is numbered after the payment's event
           CASE WHEN v.type = 'review.opened' THEN %(now)s + INTERVAL '1 microsecond' ELSE %(now)s END
    FROM unnest(%(v_ids)s::UUID[], %(v_tenants)s::UUID[], %(v_types)s::TEXT[], %(v_data)s::BYTEA[])
         AS v(id, tenant_id, type, data)
), bal AS (
    UPDATE accounts
    SET posted = accounts.posted + d.posted_delta,
        pending = accounts.pending + d.pending_delta,
        entry_seq = d.entry_seq,
        risk_state = COALESCE(d.risk_state, accounts.risk_state)
    FROM unnest(%(acct_ids)s::UUID[], %(posted_deltas)s::BIGINT[], %(pending_deltas)s::BIGINT[],
                %(acct_seqs)s::BIGINT[], %(acct_risk_states)s::BYTEA[])
         AS d(id, posted_delta, pending_delta, entry_seq, risk_state)
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

# How each array of WRITE_BATCH is written as an array literal (db/arrays.py: psycopg's own list
# adaptation cost ten times as much).
WRITE_BATCH_ARRAYS: dict[str, Callable[[list[Any]], str]] = {
    **dict.fromkeys(("p_ids p_tenants p_sources p_destinations p_reviews r_ids r_tenants r_payments r_rules v_ids "
                     "v_tenants e_ids e_tenants e_accounts e_payments o_tenants o_payments acct_ids").split(),
                    arrays.uuids),
    **dict.fromkeys(("p_amounts p_captured p_fees p_nets e_seqs e_amounts e_balances o_statuses posted_deltas "
                     "pending_deltas acct_seqs").split(), arrays.ints),
    **dict.fromkeys(("p_currencies p_statuses p_failures p_descriptions r_actions r_predicates v_types e_currencies "
                     "e_kinds o_keys").split(), arrays.texts),
    "p_metadata": arrays.jsons,
    "p_outcomes": arrays.jsons,
    "v_data": arrays.byteas,
    "acct_risk_states": arrays.byteas,
    "o_bodies": arrays.byteas,
    "p_expires": arrays.timestamps,
}

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
    source: uuid.UUID | None  # plan.source and plan.destination decoded (None: not an account id)
    destination: uuid.UUID | None
    accounts: tuple[uuid.UUID, ...]  # the accounts it may change: source, destination, fee account
    risk: TenantRisk | None  # the tenant's risk policy (None: risk is not run, e.g. the committer bench)

    @classmethod
    def new(
        cls, tenant: Tenant, plan: PaymentPlan, key: str, request_id: str, future: asyncio.Future[Outcome],
        risk: TenantRisk | None = None,
    ) -> Request:
        source = ids.decode(ids.ACCOUNT, plan.source)
        destination = ids.decode(ids.ACCOUNT, plan.destination)
        fee_account = tenant.fee_accounts.get(plan.currency) if plan.fee else None
        accounts = tuple(a for a in (source, destination, fee_account) if a is not None)
        return cls(tenant, plan, key, request_id, future, source, destination, accounts, risk)


Answer = Outcome | ApiError


class GroupCommitter:
    """Queues payment requests and applies them in batches, up to ``writers`` transactions at a time
    (batches in flight never share an account)."""

    def __init__(
        self, pool: Pool, retry: RetryPolicy, retention: timedelta, max_batch: int, max_queue: int,
        writers: int = 1,
    ) -> None:
        assert 1 <= max_batch <= 10_000 and max_batch <= max_queue
        assert 1 <= writers <= 64
        self.pool = pool
        self.retry = retry
        self.retention = retention
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.writers = writers
        # A scan for the next batch looks this far into the queue: under a hot account most of the
        # queue waits for the batch in flight, and rescanning all of it each time would be O(n^2).
        self.scan_limit = 2 * max_batch
        self._queue: deque[Request] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy: set[uuid.UUID] = set()  # accounts of the batches in flight, and of reservations
        self._wanted: Counter[uuid.UUID] = Counter()  # accounts reservations wait for: batches keep off
        self._released = asyncio.Event()  # some busy accounts became free
        self.batches = 0
        self.payments = 0

    def start(self) -> None:
        if self._task is None:
            # An empty context: the committer works for many requests, and must not carry (or
            # update) the context of the request that happened to start it.
            self._task = asyncio.create_task(self._run(), name="group committer", context=contextvars.Context())

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking batches, let those in flight finish (up to ``grace_s``), answer the rest 503."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(service_unavailable("The service is shutting down; retry."))

    async def submit(
        self, tenant: Tenant, plan: PaymentPlan, key: str, request_id: str, risk: TenantRisk | None = None
    ) -> Outcome:
        if len(self._queue) >= self.max_queue:
            raise service_unavailable("Too many payments are waiting to be applied; retry shortly.")
        self.start()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(Request.new(tenant, plan, key, request_id, future, risk))
        self._wakeup.set()
        return await future

    @asynccontextmanager
    async def reserve(self, accounts: Iterable[uuid.UUID]) -> AsyncIterator[None]:
        """Keep batches off ``accounts`` while a transaction outside the committer (a capture, a
        refund, a cancel, an expiry) changes them. Without it, such a SERIALIZABLE transaction that
        waits for an account row a batch holds fails with 40001 as soon as the batch commits, and on a
        hot merchant it fails that way again and again. Waits for batches in flight on these accounts
        to finish; meanwhile no new batch takes a request that names them."""
        wanted = set(accounts)
        self._wanted.update(wanted)
        try:
            while _touches(wanted, self._busy):
                self._released.clear()
                await self._released.wait()
            self._busy |= wanted
        finally:
            self._wanted.subtract(wanted)
            self._wanted = +self._wanted  # drop the accounts no longer wanted
        try:
            yield
        finally:
            self._busy -= wanted
            self._released.set()
            self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and len(self._in_flight) < self.writers:
                batch = self._take()
                if not batch:
                    break  # all it could take waits for an account in flight; a finishing batch wakes us
                footprint = {account for request in batch for account in request.accounts}
                self._busy |= footprint
                task = asyncio.create_task(self._commit(batch, footprint), name="group commit batch")
                self._in_flight.add(task)

    def _take(self) -> list[Request]:
        """The next batch: queued requests in order, skipping (and keeping in place) those that name
        an account of a batch in flight, or an account of a request skipped before them."""
        batch: list[Request] = []
        if not self._busy and not self._wanted:  # nothing in flight or reserved: the head of the queue
            for _ in range(min(len(self._queue), self.max_batch)):
                batch.append(self._queue.popleft())
            return batch
        skipped: list[Request] = []
        blocked: set[uuid.UUID] = set(self._wanted)
        scanned = 0
        while self._queue and len(batch) < self.max_batch and scanned < self.scan_limit:
            request = self._queue.popleft()
            scanned += 1
            if _touches(request.accounts, self._busy) or _touches(request.accounts, blocked):
                skipped.append(request)
                blocked.update(request.accounts)
            else:
                batch.append(request)
        self._queue.extendleft(reversed(skipped))
        return batch

    async def _commit(self, batch: list[Request], footprint: set[uuid.UUID]) -> None:
        try:
            answers = await run_together(
                self.pool, partial(batch_tx, batch, self.retention), policy=self.retry, isolation=BATCH_ISOLATION,
            )
        except (Exception, asyncio.CancelledError) as exc:  # the whole batch failed (503, a bug, or shutdown)
            if isinstance(exc, asyncio.CancelledError):
                exc = service_unavailable("The service is shutting down; retry.")
            elif not isinstance(exc, ApiError):
                log.exception("group commit of %d payments failed", len(batch))
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        else:
            self.batches += 1
            self.payments += len(batch)
            metrics.observe_batch_size(len(batch))
            for request, answer in zip(batch, answers, strict=True):
                if request.future.done():  # the client went away (cancelled)
                    continue
                if isinstance(answer, ApiError):
                    request.future.set_exception(answer)
                else:
                    request.future.set_result(answer)
        finally:
            self._busy -= footprint
            self._released.set()
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
            self._wakeup.set()


def _touches(accounts: Iterable[uuid.UUID], among: set[uuid.UUID]) -> bool:
    return any(account in among for account in accounts)


@dataclass(slots=True)
class _Rows:
    """The arrays of WRITE_BATCH, filled item by item."""

    params: dict[str, list[Any]]
    touched: dict[uuid.UUID, list[int]]  # account -> [posted delta, pending delta]
    risk_changed: set[uuid.UUID]  # accounts whose risk state the batch changed

    @classmethod
    def empty(cls) -> _Rows:
        names = ("p_ids p_tenants p_amounts p_captured p_fees p_nets p_currencies p_sources p_destinations "
                 "p_statuses p_failures p_descriptions p_metadata p_expires p_outcomes p_reviews "
                 "r_ids r_tenants r_payments r_rules r_actions r_predicates v_ids v_tenants v_types v_data "
                 "e_ids e_tenants e_accounts e_seqs e_currencies e_kinds e_amounts e_balances e_payments "
                 "o_tenants o_keys o_statuses o_bodies o_payments").split()
        return cls({name: [] for name in names}, {}, set())

    def add(self, **values: Any) -> None:
        for name, value in values.items():
            self.params[name].append(value)


async def batch_tx(batch: list[Request], retention: timedelta, txn: Together) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(batch)
    tokens = [(r.tenant.id, r.key) for r in batch]
    assert len(set(tokens)) == len(tokens), "one key is in flight once per process (InFlight)"

    # Round trip 1: BEGIN, the claims, then the locks on every account the batch names (a request
    # that turns out to be a replay locks its accounts for nothing, harmlessly).
    wanted = sorted({account for request in batch for account in request.accounts})
    claim_rows, lock_rows = await txn.send(
        (CLAIM_MANY, _claim_params(batch)), (LOCK_ACCOUNTS_WITH_RISK, (arrays.uuids(wanted),)),
    )
    claimed = _claimed(claim_rows)
    accounts: dict[uuid.UUID, LockedAccount] = {row[0]: LockedAccount.from_row(row) for row in lock_rows}

    unclaimed = [i for i, token in enumerate(tokens) if token not in claimed]
    rounds = 0
    while unclaimed:
        # Taken keys: replay, 422 or 409; expired (or vanished) records are forgotten and claimed
        # again. Under READ COMMITTED another process may win that race: then we look again.
        rounds += 1
        if rounds > 3:
            raise service_unavailable("An idempotency key is changing hands; retry.")
        again = await _replays(txn, batch, unclaimed, retention, answers)
        if not again:
            break
        expired = [batch[i] for i in again]
        _, claim_rows = await txn.send(
            (FORGET_EXPIRED, (retention, *_key_params(expired))), (CLAIM_MANY, _claim_params(expired)),
        )
        claimed.update(_claimed(claim_rows))
        unclaimed = [i for i in again if tokens[i] not in claimed]
    todo = [i for i, token in enumerate(tokens) if token in claimed]
    if not todo:
        await txn.send(commit=True)
        return _done(answers)
    now = min(claimed.values())  # the transaction's time (now() is the same for every claim)

    out = _Rows.empty()
    forget: list[int] = []
    now_s = int(now.timestamp())
    for i in todo:
        answer = _apply_one(batch[i], accounts, now, now_s, out)
        answers[i] = answer
        if isinstance(answer, ApiError):
            forget.append(i)  # a 400 the ledger found: nothing is stored, the key stays free

    account_ids = sorted(out.touched)
    out.params["acct_ids"] = account_ids
    out.params["posted_deltas"] = [out.touched[a][0] for a in account_ids]
    out.params["pending_deltas"] = [out.touched[a][1] for a in account_ids]
    out.params["acct_seqs"] = [accounts[a].entry_seq for a in account_ids]
    out.params["acct_risk_states"] = [accounts[a].risk_state if a in out.risk_changed else None for a in account_ids]
    params: dict[str, Any] = {name: WRITE_BATCH_ARRAYS[name](values) for name, values in out.params.items()}
    params["now"] = now
    # Round trip 2: the writes, then COMMIT.
    statements: list[Statement] = [(WRITE_BATCH, params)]
    if forget:
        statements.append((FORGET_MANY, _key_params([batch[i] for i in forget])))
    await txn.send(*statements, commit=True)
    return _done(answers)


def _done(answers: list[Answer | None]) -> list[Answer]:
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _key_params(requests: list[Request]) -> tuple[str, str]:
    """The (tenant, key) pairs of ``requests``, as the two array literals the statements unnest."""
    return arrays.uuids([r.tenant.id for r in requests]), arrays.texts([r.key for r in requests])


def _claim_params(requests: list[Request]) -> tuple[str, str, str]:
    return (*_key_params(requests), arrays.texts([r.plan.fingerprint for r in requests]))


def _claimed(rows: list[tuple[Any, ...]]) -> dict[tuple[uuid.UUID, str], datetime]:
    """CLAIM_MANY's rows: (tenant, key) -> the claim's created_at (the transaction's time)."""
    return {(row[0], row[1]): row[2] for row in rows}


async def _replays(
    txn: Together, batch: list[Request], unclaimed: list[int], retention: timedelta, answers: list[Answer | None]
) -> list[int]:
    """Answer the requests whose key was taken (replay, 422, 409); return those to claim again: their
    record expired, or is gone (purged, or forgotten by another process since our claim failed)."""
    (rows,) = await txn.send((LOOKUP_MANY, (retention, *_key_params([batch[i] for i in unclaimed]))))
    records: dict[tuple[Any, Any], tuple[Any, ...]] = {(row[0], row[1]): row[2:] for row in rows}
    expired: list[int] = []
    for i in unclaimed:
        request = batch[i]
        record = records.get((request.tenant.id, request.key))
        if record is None:
            expired.append(i)
            continue
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


def _apply_one(
    request: Request, accounts: dict[uuid.UUID, LockedAccount], now: datetime, now_s: int, out: _Rows
) -> Answer:
    """One payment against the locked rows (which it updates for the payments after it): risk decides
    first (block, review or go on), then funds (decline or move the money)."""
    tenant, plan = request.tenant, request.plan
    source, destination = request.source, request.destination
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
    src, dst = accounts[source], accounts[destination]
    risk = request.risk
    assessment: RiskAssessment | None = None
    if risk is not None:
        assessment = risk.policy.assess(
            amount_minor=plan.amount, currency=plan.currency, capture=plan.capture, source=plan.source,
            destination=plan.destination, source_id=source.bytes, destination_id=destination.bytes,
            metadata=plan.metadata, source_state=src.risk_state, source_created_at_s=_seconds(src),
            destination_state=dst.risk_state, destination_created_at_s=_seconds(dst), now_s=now_s,
        )
        log_assessment(payment_id, assessment)

    def outcome(outcome_type: OutcomeType) -> PaymentOutcome:
        """The payment's outcome; it is recorded, so both accounts' risk states count it."""
        if risk is None or assessment is None:
            return not_assessed(outcome_type)
        _record_risk(out, plan, now_s, src, dst, STATE_OUTCOMES[outcome_type])
        return render(risk, assessment, outcome_type)

    if assessment is not None and assessment.decision == "block":
        payment = new_payment(plan, payment_id, now, "failed", failure_code="payment_blocked",
                              outcome=outcome("blocked"))
        # The message does not name the rule (brief section 8): rules are the tenant's, not the payer's.
        error = ApiError("payment_blocked", "The payment was blocked by the risk controls.", payment=payment.id)
        body = error.body(request.request_id)
        _record(out, tenant, request.key, payment_id, payment, source, destination, None, 402, body, encode(payment))
        return Outcome(402, body)

    if not src.allow_negative and src.available < plan.amount:
        payment = new_payment(plan, payment_id, now, "failed", failure_code="insufficient_funds",
                              outcome=outcome("declined"))
        error = ApiError(
            "insufficient_funds",
            f"The source account {plan.source} does not have {plan.amount} {plan.currency} available.",
            param="source", payment=payment.id,
        )
        body = error.body(request.request_id)
        _record(out, tenant, request.key, payment_id, payment, source, destination, None, 402, body, encode(payment))
        return Outcome(402, body)

    review: Review | None = None
    if risk is not None and assessment is not None and assessment.decision == "review":
        assert assessment.rule_index is not None, "a review is opened by a review rule"
        review_id = ids.new_uuid()
        review = Review(id=ids.encode(ids.REVIEW, review_id), payment=ids.encode(ids.PAYMENT, payment_id),
                        reason="rule", rule=risk.rules[assessment.rule_index], open=True, closed_reason=None,
                        created_at=rfc3339(now))
        rule_id = ids.decode(ids.RULE, review.rule.id)
        out.add(r_ids=review_id, r_tenants=tenant.id, r_payments=payment_id, r_rules=rule_id,
                r_actions=review.rule.action, r_predicates=review.rule.predicate)
        out.add(v_ids=ids.new_uuid(), v_tenants=tenant.id, v_types="review.opened", v_data=encode(review))
    paid = outcome("authorized" if review is None else "manual_review")
    review_text = None if review is None else review.id
    if plan.capture:
        postings = [Posting(source, "payment", -plan.amount)]
        if plan.amount - fee:
            postings.append(Posting(destination, "payment", plan.amount - fee))
        if fee:
            assert fee_account is not None
            postings.append(Posting(fee_account, "fee", fee))
        writes = apply(accounts, postings)
        payment = new_payment(plan, payment_id, now, "succeeded", captured=plan.amount, outcome=paid,
                              review=review_text)
        expires_at = None
    else:
        assert plan.expires_in_s is not None
        writes = apply(accounts, [], pending_deltas={source: plan.amount})
        expires_at = now + timedelta(seconds=plan.expires_in_s)
        payment = new_payment(plan, payment_id, now, "requires_capture", expires_at=expires_at, outcome=paid,
                              review=review_text)
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


def _seconds(account: LockedAccount) -> int:
    assert account.created_at is not None, "the payment path's lock reads created_at"
    return int(account.created_at.timestamp())


def _record_risk(out: _Rows, plan: PaymentPlan, now_s: int, src: LockedAccount, dst: LockedAccount,
                 state_outcome: str) -> None:
    """Count the payment in the source's and the destination's risk state (in memory, for the
    payments after it in the batch; written with the balances)."""
    src.risk_state = risk_state_record(src.risk_state, now_s, as_source=True, counterparty_id=dst.id.bytes,
                                       amount_minor=plan.amount, outcome=state_outcome)
    dst.risk_state = risk_state_record(dst.risk_state, now_s, as_source=False, counterparty_id=src.id.bytes,
                                       amount_minor=plan.amount, outcome=state_outcome)
    for account in (src, dst):
        out.risk_changed.add(account.id)
        out.touched.setdefault(account.id, [0, 0])


def _record(
    out: _Rows, tenant: Tenant, key: str, payment_id: uuid.UUID, payment: Payment, source: uuid.UUID,
    destination: uuid.UUID, expires_at: datetime | None, status_code: int, body: bytes, event_data: bytes,
) -> None:
    """The payment row, its event and its idempotency record."""
    out.add(p_ids=payment_id, p_tenants=tenant.id, p_amounts=payment.amount, p_captured=payment.amount_captured,
            p_fees=payment.fee, p_nets=payment.net, p_currencies=payment.currency, p_sources=source,
            p_destinations=destination, p_statuses=payment.status, p_failures=payment.failure_code,
            p_descriptions=payment.description, p_metadata=payment.metadata, p_expires=expires_at,
            p_outcomes=payment.outcome,
            p_reviews=None if payment.review is None else ids.decode(ids.REVIEW, payment.review))
    out.add(v_ids=ids.new_uuid(), v_tenants=tenant.id, v_types=CREATION_EVENTS[payment.status], v_data=event_data)
    out.add(o_tenants=tenant.id, o_keys=key, o_statuses=status_code, o_bodies=body, o_payments=payment_id)


def new_payment(
    plan: PaymentPlan, payment_id: uuid.UUID, now: datetime, status: PaymentStatus, *, outcome: PaymentOutcome,
    captured: int = 0, expires_at: datetime | None = None, failure_code: str | None = None,
    review: str | None = None,
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
        outcome=outcome,
        review=review,
        fraud_details=NO_FRAUD_REPORT,
    )
