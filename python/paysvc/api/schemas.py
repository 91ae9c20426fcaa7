"""Request bodies, decoded strictly by msgspec (``100.0``, ``1e2`` and ``"100"`` are not integers).

Semantic checks (ranges, currencies, limits, fees) are the Rust core's; these structs only fix the
JSON types, so a wrong type, a missing field or an unknown field is a precise 400.
"""

from __future__ import annotations

import msgspec

Metadata = dict[str, str]


class AccountCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    currency: str
    allow_negative: bool = False
    metadata: Metadata | None = None


class PaymentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int
    currency: str
    source: str
    destination: str
    capture: bool = True
    description: str | None = None
    metadata: Metadata | None = None
    expires_in_s: int | None = None


class PaymentBatchItem(PaymentCreate, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: str | None = None  # required; checked (with its form) like the header


class PaymentBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    payments: list[msgspec.Raw]  # each decoded on its own, so one bad item is that item's 400


class PaymentBatchDoc(msgspec.Struct, kw_only=True):
    """The batch request as documented (1..1000 items; each item is decoded and answered on its own)."""

    payments: list[PaymentBatchItem]


class PaymentCapture(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int | None = None  # default: the whole authorized amount


class PaymentCancel(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str | None = None  # default: requested_by_customer


class RefundCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int | None = None  # default: what is left to refund
    metadata: Metadata | None = None


class FeeRuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    currency: str
    percent_bps: int
    fixed: int = 0
    min: int | None = None
    max: int | None = None


class FeeScheduleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rules: list[FeeRuleIn]


class TenantCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
