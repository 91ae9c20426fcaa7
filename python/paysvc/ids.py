"""Opaque, type-prefixed resource ids: ``acct_`` + the UUID's 32 hex digits."""

from __future__ import annotations

import secrets
import uuid
from typing import Final

ACCOUNT: Final = "acct_"
PAYMENT: Final = "pay_"
REFUND: Final = "re_"
ENTRY: Final = "ent_"
EVENT: Final = "evt_"
REQUEST: Final = "req_"
TENANT: Final = "ten_"
RULE: Final = "rule_"
REVIEW: Final = "prv_"
WEBHOOK_ENDPOINT: Final = "we_"
WEBHOOK_DELIVERY: Final = "whd_"

_HEX = frozenset("0123456789abcdef")


def new_uuid() -> uuid.UUID:
    """A random (v4) UUID: random keys spread writes across CockroachDB ranges."""
    return uuid.uuid4()


def encode(prefix: str, value: uuid.UUID) -> str:
    return prefix + value.hex


def decode(prefix: str, text: str) -> uuid.UUID | None:
    """The UUID behind ``text``, or None when it is not an id of this type (it then matches nothing)."""
    if len(text) != len(prefix) + 32 or not text.startswith(prefix):
        return None
    digits = text[len(prefix):]
    if not _HEX.issuperset(digits):
        return None
    return uuid.UUID(hex=digits)


def new_request_id() -> str:
    return REQUEST + secrets.token_hex(12)
