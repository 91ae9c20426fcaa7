"""The webhook objects of brief section 7, their request bodies, and rows -> objects."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from paysvc import ids
from paysvc.timefmt import rfc3339, rfc3339_or_none

Metadata = dict[str, str]
EndpointStatus = Literal["enabled", "disabled"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]

# Every event type of the brief's section 2 (some are emitted by the risk features), so that an
# endpoint may subscribe to any of them; "*" alone means all of them.
EVENT_TYPES: frozenset[str] = frozenset({
    "payment.authorized", "payment.succeeded", "payment.failed", "payment.canceled", "payment.expired",
    "payment.fraud_reported", "refund.succeeded", "review.opened", "review.closed",
})
ALL_EVENTS = "*"
MAX_ENABLED_EVENTS = 50
MAX_DESCRIPTION_CHARS = 1000


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    enabled_events: list[str]
    status: EndpointStatus
    description: str | None
    metadata: Metadata
    secret: str | None  # only in the answers of create and rotate-secret
    created_at: str


class WebhookEndpointList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    has_more: bool


class WebhookEndpointDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: bool = True


class WebhookDelivery(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint: str
    event: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str
    updated_at: str


class WebhookDeliveryList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[WebhookDelivery]
    has_more: bool


# ---- request bodies -------------------------------------------------------------------------------


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    enabled_events: list[str]
    description: str | None = None
    metadata: Metadata | None = None


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every field optional; ``metadata`` merges like Stripe's (a key set to "" is removed)."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    enabled_events: list[str] | msgspec.UnsetType = msgspec.UNSET
    status: EndpointStatus | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType = msgspec.UNSET


class EndpointUpdateDoc(msgspec.Struct, kw_only=True):
    """The update body as documented (each field optional)."""

    url: str | None = None
    enabled_events: list[str] | None = None
    status: EndpointStatus | None = None
    description: str | None = None
    metadata: Metadata | None = None


# ---- rows -> objects ------------------------------------------------------------------------------
#   endpoint: id, url, enabled_events, status, description, metadata, created_at
#   delivery: id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
#             next_attempt_at, created_at, updated_at


def endpoint_from_row(row: tuple[Any, ...], secret: str | None = None) -> WebhookEndpoint:
    endpoint_id, url, enabled_events, status, description, metadata, created_at = row
    return WebhookEndpoint(
        id=ids.encode(ids.WEBHOOK_ENDPOINT, endpoint_id),
        url=url,
        enabled_events=list(enabled_events),
        status=status,
        description=description,
        metadata=metadata,
        secret=secret,
        created_at=rfc3339(created_at),
    )


def delivery_from_row(row: tuple[Any, ...]) -> WebhookDelivery:
    (delivery_id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
     next_attempt_at, created_at, updated_at) = row
    return WebhookDelivery(
        id=ids.encode(ids.WEBHOOK_DELIVERY, delivery_id),
        endpoint=ids.encode(ids.WEBHOOK_ENDPOINT, endpoint_id),
        event=ids.encode(ids.EVENT, event_id),
        event_type=event_type,
        status=status,
        attempts=attempts,
        last_status_code=last_status_code,
        last_error=last_error,
        next_attempt_at=rfc3339_or_none(next_attempt_at) if status == "pending" else None,
        created_at=rfc3339(created_at),
        updated_at=rfc3339(updated_at),
    )
