"""The API's resource objects (msgspec structs, encoded in field order) and their SQL column lists.

One place maps database rows to resources, for the read endpoints and for the ledger engine, which
encodes its answer inside the write transaction so the idempotency record stores it byte for byte.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec

from paysvc import ids
from paysvc.timefmt import rfc3339, rfc3339_or_none

Metadata = dict[str, str]

PaymentStatus = Literal["requires_capture", "succeeded", "canceled", "failed"]
CancellationReason = Literal["requested_by_customer", "duplicate", "fraudulent", "abandoned", "expired"]
EventType = Literal[
    "payment.authorized", "payment.succeeded", "payment.canceled", "payment.expired", "payment.failed",
    "payment.fraud_reported", "refund.succeeded", "review.opened", "review.closed",
]
OutcomeType = Literal["authorized", "declined", "blocked", "manual_review"]
RiskLevel = Literal["normal", "elevated", "highest", "not_assessed", "unknown"]
RuleAction = Literal["allow", "block", "review"]
UserReport = Literal["fraudulent", "safe"]
ReviewClosedReason = Literal["approved", "refunded", "refunded_as_fraud", "canceled"]


class Balance(msgspec.Struct, kw_only=True):
    posted: int
    pending: int
    available: int


class Account(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["account"] = "account"
    currency: str
    allow_negative: bool
    purpose: Literal["general", "fees"]
    balance: Balance
    metadata: Metadata
    created_at: str


class RiskRule(msgspec.Struct, kw_only=True):
    id: str
    action: RuleAction
    predicate: str


class PaymentOutcome(msgspec.Struct, kw_only=True):
    """What risk (and funds) decided about a payment (brief section 8)."""

    type: OutcomeType
    risk_score: int | None
    risk_level: RiskLevel
    reason: Literal["rule", "highest_risk_level"] | None
    rule: RiskRule | None
    model: str | None
    arm: Literal["champion", "challenger"] | None


class FraudDetails(msgspec.Struct, kw_only=True):
    user_report: UserReport | None


NO_FRAUD_REPORT = FraudDetails(user_report=None)


class Payment(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["payment"] = "payment"
    amount: int
    amount_captured: int
    amount_refunded: int
    fee: int | None
    net: int | None
    currency: str
    source: str
    destination: str
    status: PaymentStatus
    failure_code: str | None
    cancellation_reason: str | None
    description: str | None
    metadata: Metadata
    created_at: str
    expires_at: str | None
    outcome: PaymentOutcome
    review: str | None
    fraud_details: FraudDetails


class Refund(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["refund"] = "refund"
    payment: str
    amount: int
    status: Literal["succeeded"] = "succeeded"
    metadata: Metadata
    created_at: str


class Review(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["review"] = "review"
    payment: str
    reason: Literal["rule"]
    rule: RiskRule
    open: bool
    closed_reason: ReviewClosedReason | None
    created_at: str


class ReviewList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Review]
    has_more: bool


class RiskThresholds(msgspec.Struct, kw_only=True):
    elevated: int
    highest: int


class RiskChallenger(msgspec.Struct, kw_only=True):
    model: str
    percent: int


class RiskSettings(msgspec.Struct, kw_only=True):
    mode: Literal["off", "shadow", "enforce"]
    thresholds: RiskThresholds
    champion: str
    challenger: RiskChallenger | None
    shadow_models: list[str]


class RiskRules(msgspec.Struct, kw_only=True):
    rules: list[RiskRule]


class RiskModelOut(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["risk_model"] = "risk_model"
    kind: str
    features: list[str]
    metrics: dict[str, Any]
    created_at: str


class RiskModelList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[RiskModelOut]
    has_more: bool


class Entry(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["entry"] = "entry"
    account: str
    payment: str | None
    refund: str | None
    kind: Literal["payment", "fee", "refund"]
    amount: int
    balance_after: int
    seq: int
    created_at: str


class AccountList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Account]
    has_more: bool


class PaymentList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Payment]
    has_more: bool


class EntryList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Entry]
    has_more: bool


class RefundList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Refund]
    has_more: bool


class EventData(msgspec.Struct, kw_only=True):
    object: msgspec.Raw  # the payment or refund as it was, the stored bytes unchanged


class Event(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["event"] = "event"
    type: EventType
    created_at: str
    data: EventData


class EventList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Event]
    has_more: bool


# The same shapes for the OpenAPI document, which cannot describe msgspec.Raw.
class EventDataDoc(msgspec.Struct, kw_only=True):
    object: dict[str, Any]  # a Payment ("object": "payment") or a Refund ("object": "refund")


class EventDoc(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["event"] = "event"
    type: EventType
    created_at: str
    data: EventDataDoc


class EventListDoc(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[EventDoc]
    has_more: bool


class BatchItemResult(msgspec.Struct, kw_only=True):
    status: int  # the HTTP status the single endpoint would answer
    body: msgspec.Raw  # and its body


class BatchResult(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[BatchItemResult]


class BatchItemResultDoc(msgspec.Struct, kw_only=True):
    status: int
    body: dict[str, Any]  # a Payment, or an error body


class BatchResultDoc(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[BatchItemResultDoc]


class FeeRuleOut(msgspec.Struct, kw_only=True):
    currency: str
    percent_bps: int
    fixed: int
    min: int | None
    max: int | None


class FeeScheduleOut(msgspec.Struct, kw_only=True):
    rules: list[FeeRuleOut]


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok"] = "ok"


class Readiness(msgspec.Struct, kw_only=True):
    status: Literal["ready"] = "ready"


class TenantCreated(msgspec.Struct, kw_only=True):
    id: str
    name: str
    api_key: str


# ---- rows -> resources ---------------------------------------------------------------------------

# Row converters take the columns in the order the queries in reads.py and ledger/ name them:
#   account: id, currency, allow_negative, purpose, posted, pending, metadata, created_at
#   payment: id, amount, amount_captured, amount_refunded, fee, net, currency, source_id, destination_id,
#            status, failure_code, cancellation_reason, description, metadata, created_at, expires_at,
#            outcome, review_id, user_report
#   review:  id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at
#   entry:   id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at
#   refund:  id, payment_id, amount, metadata, created_at
#   event:   id, type, data, created_at



def account_from_row(row: tuple[Any, ...]) -> Account:
    account_id, currency, allow_negative, purpose, posted, pending, metadata, created_at = row
    return Account(
        id=ids.encode(ids.ACCOUNT, account_id),
        currency=currency,
        allow_negative=allow_negative,
        purpose=purpose,
        balance=Balance(posted=posted, pending=pending, available=posted - pending),
        metadata=metadata,
        created_at=rfc3339(created_at),
    )


def payment_from_row(row: tuple[Any, ...]) -> Payment:
    (payment_id, amount, captured, refunded, fee, net, currency, source_id, destination_id, status,
     failure_code, cancellation_reason, description, metadata, created_at, expires_at, outcome, review_id,
     user_report) = row
    return Payment(
        id=ids.encode(ids.PAYMENT, payment_id),
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        fee=fee,
        net=net,
        currency=currency,
        source=ids.encode(ids.ACCOUNT, source_id),
        destination=ids.encode(ids.ACCOUNT, destination_id),
        status=status,
        failure_code=failure_code,
        cancellation_reason=cancellation_reason,
        description=description,
        metadata=metadata,
        created_at=rfc3339(created_at),
        expires_at=rfc3339_or_none(expires_at),
        outcome=outcome_of(outcome, status, failure_code),
        review=_maybe(ids.REVIEW, review_id),
        fraud_details=NO_FRAUD_REPORT if user_report is None else FraudDetails(user_report=user_report),
    )


def outcome_of(stored: object, status: str, failure_code: str | None) -> PaymentOutcome:
    """The stored outcome; for a payment made before risk existed (NULL), the outcome it had: not
    assessed, authorized (or declined for funds)."""
    if stored is not None:
        return msgspec.convert(stored, PaymentOutcome)
    declined = status == "failed" and failure_code == "insufficient_funds"
    return PaymentOutcome(type="declined" if declined else "authorized", risk_score=None,
                          risk_level="not_assessed", reason=None, rule=None, model=None, arm=None)


def review_from_row(row: tuple[Any, ...]) -> Review:
    review_id, payment_id, rule_id, action, predicate, is_open, closed_reason, created_at = row
    return Review(
        id=ids.encode(ids.REVIEW, review_id),
        payment=ids.encode(ids.PAYMENT, payment_id),
        reason="rule",
        rule=RiskRule(id=ids.encode(ids.RULE, rule_id), action=action, predicate=predicate),
        open=is_open,
        closed_reason=closed_reason,
        created_at=rfc3339(created_at),
    )


def entry_from_row(row: tuple[Any, ...]) -> Entry:
    entry_id, account_id, payment_id, refund_id, kind, amount, balance_after, seq, created_at = row
    return Entry(
        id=ids.encode(ids.ENTRY, entry_id),
        account=ids.encode(ids.ACCOUNT, account_id),
        payment=_maybe(ids.PAYMENT, payment_id),
        refund=_maybe(ids.REFUND, refund_id),
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        seq=seq,
        created_at=rfc3339(created_at),
    )


def refund_from_row(row: tuple[Any, ...]) -> Refund:
    refund_id, payment_id, amount, metadata, created_at = row
    return Refund(
        id=ids.encode(ids.REFUND, refund_id),
        payment=ids.encode(ids.PAYMENT, payment_id),
        amount=amount,
        metadata=metadata,
        created_at=rfc3339(created_at),
    )


def event_from_row(row: tuple[Any, ...]) -> Event:
    event_id, event_type, data, created_at = row
    return Event(
        id=ids.encode(ids.EVENT, event_id),
        type=event_type,
        created_at=rfc3339(created_at),
        data=EventData(object=msgspec.Raw(bytes(data))),
    )


def _maybe(prefix: str, value: uuid.UUID | None) -> str | None:
    return None if value is None else ids.encode(prefix, value)


_encoder = msgspec.json.Encoder()


def encode(value: object) -> bytes:
    return _encoder.encode(value)
