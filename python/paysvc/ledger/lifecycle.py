"""What happens to a payment after it is created: capture, cancel, expiry and refunds.

State machine (design brief, sections 2 and 2b):

    requires_capture --capture--> succeeded --refund (0..n, total <= amount_captured)--> succeeded
    requires_capture --cancel---> canceled (cancellation_reason: the client's reason)
    requires_capture --expiry---> canceled (cancellation_reason: "expired")
    failed: final (a decline; it never held or moved money)

Every transition is one transaction run by the ledger engine, in this order of statements:
    [INSERT the idempotency claim]   (only with an Idempotency-Key)
    SELECT the payment … FOR UPDATE  (by primary key; also reads now(), the transaction's time)
    SELECT its accounts … ORDER BY id FOR UPDATE
    one data-modifying statement: UPDATE the payment, INSERT the refund, UPDATE balances (unnest),
        INSERT entries (unnest), INSERT the event (outbox), UPDATE the idempotency record
A refused transition (409 invalid_state, 402) writes only the idempotency record, when there is one.
A payment under review (brief section 8) adds one statement, the review's lock, and the write closes
the review (refund: ``refunded`` or ``refunded_as_fraud``; cancel or expiry: ``canceled``) with its
``review.closed`` event right after the transition's own.

A hold whose ``expires_at`` has passed cannot be captured or canceled even before the sweeper got
to it: the transition that finds it expires it on the spot (the same writes as the sweeper's) and
answers 409 invalid_state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from paysvc import _native, ids
from paysvc._native import CancelPlan, CapturePlan, RefundPlan
from paysvc.db.retry import Conn
from paysvc.errors import ApiError, from_core, invalid_state, not_found
from paysvc.ledger import idempotency
from paysvc.ledger.idempotency import Outcome
from paysvc.ledger.postings import LOCK_ACCOUNTS, LockedAccount, Posting, Writes, apply, lock_rows_of_tenant
from paysvc.resources import (
    EventType,
    Payment,
    Refund,
    Review,
    ReviewClosedReason,
    encode,
    payment_from_row,
    review_from_row,
)
from paysvc.tenants import Tenant
from paysvc.timefmt import rfc3339

# The 19 payment columns in payment_from_row's order, then tenant_id, last_event_at, now().
LOCK_PAYMENT = """
SELECT id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
       status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
       outcome, review_id, user_report, tenant_id, last_event_at, now()
FROM payments WHERE id = %s FOR UPDATE"""

WRITE_CHANGE = """
WITH pay AS (
    UPDATE payments
    SET status = %(status)s, amount_captured = %(captured)s, amount_refunded = %(refunded)s, fee = %(fee)s,
        net = %(net)s, cancellation_reason = %(reason)s, last_event_at = %(last_at)s
    WHERE id = %(payment)s
), rev AS (
    UPDATE reviews SET open = false, closed_reason = %(review_closed)s
    WHERE id = %(review)s::UUID AND %(review_closed)s::TEXT IS NOT NULL
), ref AS (
    INSERT INTO refunds (id, tenant_id, payment_id, amount, status, metadata, created_at)
    SELECT %(refund)s::UUID, %(tenant)s, %(payment)s, %(refund_amount)s::BIGINT, 'succeeded',
           %(refund_metadata)s::JSONB, %(at)s
    WHERE %(refund)s::UUID IS NOT NULL
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
           %(payment)s, %(refund)s::UUID, %(at)s
    FROM unnest(%(e_ids)s::UUID[], %(e_accounts)s::UUID[], %(e_seqs)s::BIGINT[], %(e_kinds)s::TEXT[],
                %(e_amounts)s::BIGINT[], %(e_balances)s::BIGINT[])
         AS e(id, account_id, seq, kind, amount, balance_after)
), ev AS (
    INSERT INTO events (id, tenant_id, type, data, created_at)
    SELECT v.id, %(tenant)s, v.type, v.data, v.created_at
    FROM unnest(%(v_ids)s::UUID[], %(v_types)s::TEXT[], %(v_data)s::BYTEA[], %(v_ats)s::TIMESTAMPTZ[])
         AS v(id, type, data, created_at)
)
UPDATE idempotency_keys SET status_code = %(status_code)s, response_body = %(body)s, payment_id = %(payment)s
WHERE tenant_id = %(tenant)s AND idem_key = %(key)s
"""

LOCK_REVIEW = (
    "SELECT id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at "
    "FROM reviews WHERE id = %s FOR UPDATE"
)

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class LockedPayment:
    """A payment row locked FOR UPDATE in the current transaction, with the transaction's time."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    destination_id: uuid.UUID
    expires_at: datetime | None
    last_event_at: datetime
    now: datetime
    resource: Payment
    review_id: uuid.UUID | None

    @property
    def status(self) -> str:
        return self.resource.status

    @property
    def expired(self) -> bool:
        """An open hold whose time is up (whether or not the sweeper has released it yet)."""
        return self.status == "requires_capture" and self.expires_at is not None and self.now >= self.expires_at

    @property
    def event_time(self) -> datetime:
        """The time of the next event of this payment: the transaction's time, but always later than
        the payment's previous event, so one payment's events sort in the order they happened."""
        return max(self.now, self.last_event_at + _TICK)


async def lock_payment(conn: Conn, payment_id: uuid.UUID, tenant_id: uuid.UUID | None) -> LockedPayment | None:
    """Lock the payment (by primary key); None if missing or another tenant's (when ``tenant_id`` is given)."""
    row: tuple[Any, ...] | None = await (await conn.execute(LOCK_PAYMENT, (payment_id,))).fetchone()
    if row is None:
        return None
    owner, last_event_at, now = row[19], row[20], row[21]
    if tenant_id is not None and owner != tenant_id:
        return None
    created_at, expires_at = row[14], row[15]
    return LockedPayment(
        id=row[0],
        tenant_id=owner,
        source_id=row[7],
        destination_id=row[8],
        expires_at=expires_at,
        last_event_at=last_event_at or created_at,
        now=now,
        resource=payment_from_row(row[:19]),
        review_id=row[17],
    )


async def lock_accounts(
    conn: Conn, payment: LockedPayment, extra: uuid.UUID | None = None
) -> dict[uuid.UUID, LockedAccount]:
    """Lock the payment's source and destination (and ``extra``, the fee account) in id order."""
    wanted = [a for a in (payment.source_id, payment.destination_id, extra) if a is not None]
    rows = await (await conn.execute(LOCK_ACCOUNTS, (wanted,))).fetchall()
    accounts = lock_rows_of_tenant(rows, payment.tenant_id)
    assert set(wanted) <= set(accounts), "a payment's accounts exist and belong to its tenant"
    for account in accounts.values():
        assert account.currency == payment.resource.currency, "a payment's accounts hold its currency"
    return accounts


@dataclass(frozen=True, slots=True)
class Target:
    """Who asks for a transition of which payment, under which idempotency key."""

    tenant: Tenant
    payment_id: uuid.UUID
    payment_text: str  # the id as the client sent it
    key: str | None
    request_id: str
    retention: timedelta  # of idempotency records

    async def claim(self, conn: Conn, fingerprint: str) -> Outcome | None:
        """Claim the key (if any); the stored outcome to replay, or None to go on."""
        if self.key is None:
            return None
        claimed = await idempotency.claim(conn, self.tenant.id, self.key, fingerprint, self.retention)
        return claimed if isinstance(claimed, Outcome) else None

    async def lock(self, conn: Conn) -> LockedPayment:
        locked = await lock_payment(conn, self.payment_id, self.tenant.id)
        if locked is None:
            raise not_found("payment", self.payment_text, param="id")
        return locked

    async def refuse(self, conn: Conn, error: ApiError, payment_id: uuid.UUID | None = None) -> Outcome:
        """Answer an outcome the ledger decided without moving money (409 invalid_state, 402); store
        it under the idempotency key when there is one."""
        body = error.body(self.request_id)
        if self.key is not None:
            await conn.execute(idempotency.COMPLETE, (error.status, body, payment_id, self.tenant.id, self.key))
        return Outcome(error.status, body)


@dataclass(frozen=True, slots=True)
class Change:
    """One transition's writes: the payment after it, balances and entries, its event, maybe a refund."""

    payment: Payment
    writes: Writes
    event_type: EventType
    event_data: bytes
    refund_id: uuid.UUID | None = None
    refund: Refund | None = None
    closed_review: Review | None = None  # the payment's review, closed by this transition


async def write_change(
    conn: Conn, locked: LockedPayment, change: Change, key: str | None, status_code: int, body: bytes
) -> None:
    after = change.payment
    at = locked.event_time
    event_ids, event_types, event_data, event_ats = [ids.new_uuid()], [change.event_type], [change.event_data], [at]
    closed = change.closed_review
    if closed is not None:  # review.closed right after the transition's own event
        at += _TICK
        event_ids.append(ids.new_uuid())
        event_types.append("review.closed")
        event_data.append(encode(closed))
        event_ats.append(at)
    params: dict[str, Any] = {
        "payment": locked.id,
        "tenant": locked.tenant_id,
        "currency": after.currency,
        "status": after.status,
        "captured": after.amount_captured,
        "refunded": after.amount_refunded,
        "fee": after.fee,
        "net": after.net,
        "reason": after.cancellation_reason,
        "at": locked.event_time,
        "last_at": at,
        "review": locked.review_id,
        "review_closed": None if closed is None else closed.closed_reason,
        "refund": change.refund_id,
        "refund_amount": None if change.refund is None else change.refund.amount,
        "refund_metadata": None if change.refund is None else Jsonb(change.refund.metadata),
        "v_ids": event_ids,
        "v_types": event_types,
        "v_data": event_data,
        "v_ats": event_ats,
        "status_code": status_code,
        "body": body,
        "key": key,
    }
    params.update(change.writes.params())
    await conn.execute(WRITE_CHANGE, params)


# ---- the transitions ---------------------------------------------------------------------------


async def close_review(conn: Conn, locked: LockedPayment, reason: ReviewClosedReason) -> Review | None:
    """The payment's review as this transition closes it; None if it has none or it is closed."""
    if locked.review_id is None:
        return None
    row: tuple[Any, ...] | None = await (await conn.execute(LOCK_REVIEW, (locked.review_id,))).fetchone()
    assert row is not None, "a payment's review exists"
    review = review_from_row(row)
    if not review.open:
        return None
    return msgspec.structs.replace(review, open=False, closed_reason=reason)


async def release_hold(conn: Conn, locked: LockedPayment, reason: str) -> Change:
    """Cancel or expire a hold: the source's pending shrinks by the authorized amount; a review of
    the payment is closed as canceled."""
    assert locked.status == "requires_capture"
    accounts = await lock_accounts(conn, locked)
    writes = apply(accounts, [], pending_deltas={locked.source_id: -locked.resource.amount})
    after = msgspec.structs.replace(locked.resource, status="canceled", cancellation_reason=reason)
    event_type: EventType = "payment.expired" if reason == "expired" else "payment.canceled"
    return Change(payment=after, writes=writes, event_type=event_type, event_data=encode(after),
                  closed_review=await close_review(conn, locked, "canceled"))


async def expire_due(conn: Conn, payment_id: uuid.UUID) -> bool:
    """The sweeper's transaction: release one hold if its time is up and it is still open."""
    locked = await lock_payment(conn, payment_id, None)
    if locked is None or not locked.expired:
        return False
    change = await release_hold(conn, locked, "expired")
    await write_change(conn, locked, change, None, 200, change.event_data)
    return True


async def _open_hold(conn: Conn, target: Target, fingerprint: str, verb: str) -> LockedPayment | Outcome:
    """Claim the key, lock the payment and check it is an open hold; else the outcome to answer."""
    replay = await target.claim(conn, fingerprint)
    if replay is not None:
        return replay
    locked = await target.lock(conn)
    if locked.expired:
        assert locked.expires_at is not None
        change = await release_hold(conn, locked, "expired")
        error = invalid_state(
            f"The authorization of payment {target.payment_text} expired at {rfc3339(locked.expires_at)}; "
            f"it can no longer be {verb}."
        )
        body = error.body(target.request_id)
        await write_change(conn, locked, change, target.key, error.status, body)
        return Outcome(error.status, body)
    if locked.status != "requires_capture":
        return await target.refuse(conn, invalid_state(_not_open(locked, target.payment_text, verb)))
    return locked


def _not_open(locked: LockedPayment, payment_text: str, verb: str) -> str:
    payment = locked.resource
    if payment.status == "succeeded":
        if verb == "canceled":
            return f"Payment {payment_text} has been captured and cannot be canceled; refund it instead."
        return f"Payment {payment_text} has already been captured."
    if payment.status == "canceled":
        return f"Payment {payment_text} was canceled ({payment.cancellation_reason}); it cannot be {verb}."
    return f"Payment {payment_text} failed ({payment.failure_code}); it cannot be {verb}."


async def capture(conn: Conn, target: Target, plan: CapturePlan) -> Outcome:
    tenant = target.tenant
    locked = await _open_hold(conn, target, plan.fingerprint, "captured")
    if isinstance(locked, Outcome):
        return locked
    authorized = locked.resource.amount
    amount = authorized if plan.amount is None else plan.amount
    if amount > authorized:
        raise ApiError(
            "amount_too_large",
            f"The capture amount ({amount}) is greater than the authorized amount ({authorized}).",
            param="amount",
        )
    currency = locked.resource.currency
    try:
        fee = _native.settle_fee(amount, tenant.fee_rule(currency))
    except _native.CoreError as exc:
        raise from_core(exc) from None
    fee_account = tenant.fee_accounts.get(currency) if fee else None
    assert fee == 0 or fee_account is not None, "a fee rule always has its fee account"
    accounts = await lock_accounts(conn, locked, fee_account)
    postings = [Posting(locked.source_id, "payment", -amount)]
    if amount - fee:
        postings.append(Posting(locked.destination_id, "payment", amount - fee))
    if fee:
        assert fee_account is not None
        postings.append(Posting(fee_account, "fee", fee))
    writes = apply(accounts, postings, pending_deltas={locked.source_id: -authorized})
    after = msgspec.structs.replace(
        locked.resource, status="succeeded", amount_captured=amount, fee=fee, net=amount - fee
    )
    body = encode(after)
    change = Change(payment=after, writes=writes, event_type="payment.succeeded", event_data=body)
    await write_change(conn, locked, change, target.key, 200, body)
    return Outcome(200, body)


async def cancel(conn: Conn, target: Target, plan: CancelPlan) -> Outcome:
    locked = await _open_hold(conn, target, plan.fingerprint, "canceled")
    if isinstance(locked, Outcome):
        return locked
    change = await release_hold(conn, locked, plan.reason)
    await write_change(conn, locked, change, target.key, 200, change.event_data)
    return Outcome(200, change.event_data)


async def refund(conn: Conn, target: Target, plan: RefundPlan) -> Outcome:
    assert target.key is not None, "refunds require an Idempotency-Key"
    replay = await target.claim(conn, plan.fingerprint)
    if replay is not None:
        return replay
    locked = await target.lock(conn)
    payment = locked.resource
    payment_text = target.payment_text
    if payment.status != "succeeded":
        reason = {
            "requires_capture": "has not been captured; cancel it to release the hold",
            "canceled": f"was canceled ({payment.cancellation_reason}); nothing was captured",
            "failed": f"failed ({payment.failure_code}); nothing was captured",
        }[payment.status]
        return await target.refuse(conn, invalid_state(f"Payment {payment_text} {reason}."))
    left = payment.amount_captured - payment.amount_refunded
    amount = left if plan.amount is None else plan.amount
    if left == 0 or amount > left:
        raise ApiError(
            "amount_too_large",
            f"The refund amount ({amount}) is greater than what is left to refund ({left}) "
            f"of payment {payment_text}.",
            param="amount",
        )
    accounts = await lock_accounts(conn, locked)
    destination = accounts[locked.destination_id]
    if not destination.allow_negative and destination.available < amount:
        error = ApiError(
            "insufficient_funds",
            f"The destination account {payment.destination} does not have {amount} {payment.currency} "
            "available to refund.",
            param="amount",
            payment=payment_text,
        )
        return await target.refuse(conn, error, payment_id=locked.id)
    writes = apply(accounts, [
        Posting(locked.destination_id, "refund", -amount),
        Posting(locked.source_id, "refund", amount),
    ])
    refund_id = ids.new_uuid()
    refund_object = Refund(
        id=ids.encode(ids.REFUND, refund_id),
        payment=payment_text,
        amount=amount,
        metadata=dict(plan.metadata),
        created_at=rfc3339(locked.event_time),
    )
    body = encode(refund_object)
    after = msgspec.structs.replace(payment, amount_refunded=payment.amount_refunded + amount)
    fraudulent = payment.fraud_details.user_report == "fraudulent"
    change = Change(
        payment=after, writes=writes, event_type="refund.succeeded", event_data=body,
        refund_id=refund_id, refund=refund_object,
        closed_review=await close_review(conn, locked, "refunded_as_fraud" if fraudulent else "refunded"),
    )
    await write_change(conn, locked, change, target.key, 201, body)
    return Outcome(201, body)
