"""The API's objects as typed msgspec structs (design brief sections 2, 2b, 7 and 8).

Unknown fields in an answer are ignored, so a newer server does not break an older client. Fields
that only some server versions send (the risk fields of a payment, say) default to ``None``.
Money is always an ``int`` in the currency's minor unit; timestamps are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Metadata = dict[str, str]

PaymentStatus = Literal["requires_capture", "succeeded", "canceled", "failed"]
CancelReason = Literal["requested_by_customer", "duplicate", "fraudulent", "abandoned"]
UserReport = Literal["fraudulent", "safe"]
RiskMode = Literal["off", "shadow", "enforce"]
RuleAction = Literal["allow", "block", "review"]
WebhookEndpointStatus = Literal["enabled", "disabled"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class _Object(msgspec.Struct, kw_only=True):
    """Base of every API object: keyword-only, unknown fields tolerated."""


class Balance(_Object, kw_only=True):
    posted: int
    pending: int
    available: int


class Account(_Object, kw_only=True):
    id: str
    object: str = "account"
    currency: str
    allow_negative: bool
    purpose: str = "general"  # "general", or "fees" for the tenant's fee account of a currency
    balance: Balance
    metadata: Metadata = msgspec.field(default_factory=dict)
    created_at: datetime


class RiskRule(_Object, kw_only=True):
    id: str
    action: RuleAction
    predicate: str


class PaymentOutcome(_Object, kw_only=True):
    type: str  # authorized, declined, blocked, manual_review
    risk_score: int | None = None
    risk_level: str  # normal, elevated, highest, not_assessed, unknown
    reason: str | None = None  # None, "rule", "highest_risk_level"
    rule: RiskRule | None = None
    model: str | None = None
    arm: str | None = None  # "champion", "challenger" or None


class FraudDetails(_Object, kw_only=True):
    user_report: UserReport | None = None


class Payment(_Object, kw_only=True):
    id: str
    object: str = "payment"
    amount: int
    amount_captured: int
    amount_refunded: int
    fee: int | None
    net: int | None
    currency: str
    source: str
    destination: str
    status: PaymentStatus
    failure_code: str | None = None
    cancellation_reason: str | None = None
    description: str | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    created_at: datetime
    expires_at: datetime | None = None
    # Risk (brief section 8): absent from servers that predate it.
    outcome: PaymentOutcome | None = None
    review: str | None = None
    fraud_details: FraudDetails | None = None


class Refund(_Object, kw_only=True):
    id: str
    object: str = "refund"
    payment: str
    amount: int
    status: str = "succeeded"
    metadata: Metadata = msgspec.field(default_factory=dict)
    created_at: datetime


class Entry(_Object, kw_only=True):
    id: str
    object: str = "entry"
    account: str
    payment: str | None = None
    refund: str | None = None
    kind: str  # payment, fee, refund
    amount: int  # signed: credit +, debit -
    balance_after: int
    seq: int
    created_at: datetime


class Review(_Object, kw_only=True):
    id: str
    object: str = "review"
    payment: str
    reason: str
    rule: RiskRule | None = None
    open: bool
    closed_reason: str | None = None  # approved, refunded, refunded_as_fraud, canceled
    created_at: datetime


class EventData(_Object, kw_only=True):
    # The payment, refund or review as it was when the event was created; a plain dict for an
    # object kind this client does not know. msgspec cannot decode this union by itself (the
    # members are told apart by their "object" field): paysvc_client.decode_event builds it.
    object: Payment | Refund | Review | dict[str, Any]


class Event(_Object, kw_only=True):
    id: str
    object: str = "event"
    type: str  # payment.authorized, payment.succeeded, …, review.closed; new types may appear
    created_at: datetime
    data: EventData


class FeeRule(_Object, kw_only=True):
    currency: str
    percent_bps: int
    fixed: int = 0
    min: int | None = None
    max: int | None = None


class FeeSchedule(_Object, kw_only=True):
    rules: list[FeeRule]


class Tenant(_Object, kw_only=True):
    id: str
    name: str
    api_key: str  # shown once


class WebhookEndpoint(_Object, kw_only=True):
    id: str
    object: str = "webhook_endpoint"
    url: str
    enabled_events: list[str]
    status: WebhookEndpointStatus = "enabled"
    description: str | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    secret: str | None = None  # only in the answers of create and rotate_secret
    created_at: datetime


class DeletedWebhookEndpoint(_Object, kw_only=True):
    id: str
    object: str = "webhook_endpoint"
    deleted: bool


class WebhookDelivery(_Object, kw_only=True):
    id: str
    object: str = "webhook_delivery"
    endpoint: str
    event: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime | None = None


class RiskThresholds(_Object, kw_only=True):
    elevated: int
    highest: int


class RiskChallenger(_Object, kw_only=True):
    model: str
    percent: int


class RiskSettings(_Object, kw_only=True):
    mode: RiskMode
    thresholds: RiskThresholds
    champion: str
    challenger: RiskChallenger | None = None
    shadow_models: list[str] = msgspec.field(default_factory=list)


class RiskRules(_Object, kw_only=True):
    rules: list[RiskRule]


class RiskModel(_Object, kw_only=True):
    id: str
    object: str = "risk_model"
    kind: str
    features: list[str] = msgspec.field(default_factory=list)
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime


class ErrorInfo(_Object, kw_only=True):
    """The ``error`` member of an error answer (brief section 3)."""

    type: str
    code: str
    message: str
    param: str | None = None
    request_id: str | None = None
    payment: str | None = None  # on 402: the declined payment (or the refunded one)


class BatchItem(_Object, kw_only=True):
    """One item's answer in a batch: its HTTP status, and the payment or the error it got."""

    status: int
    payment: Payment | None = None
    error: ErrorInfo | None = None


# Inputs (sent, never received): plain structs, encoded with unset optional fields left out.


class _Input(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class FeeRuleParams(_Input, kw_only=True, omit_defaults=True):
    currency: str
    percent_bps: int
    fixed: int = 0
    min: int | None = None
    max: int | None = None


class RiskRuleParams(_Input, kw_only=True, omit_defaults=True):
    action: RuleAction
    predicate: str


class PaymentParams(_Input, kw_only=True, omit_defaults=True):
    """One payment of a batch: what ``payments.create`` takes, plus its own idempotency key (one is
    generated when left out)."""

    amount: int
    currency: str
    source: str
    destination: str
    capture: bool | None = None
    description: str | None = None
    metadata: Metadata | None = None
    expires_in_s: int | None = None
    idempotency_key: str | None = None
