"""The endpoint routes' work: checks of the bodies, and their SQL (tenant-scoped: another tenant's
endpoint or delivery is found exactly like a missing one)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from paysvc import _native, ids
from paysvc.db.pool import Pool
from paysvc.db.retry import Conn, RetryPolicy, read_all, read_one, run_transaction
from paysvc.errors import ApiError, from_core, invalid_cursor, invalid_state, not_found
from paysvc.webhooks import signing, ssrf
from paysvc.webhooks.model import (
    ALL_EVENTS,
    EVENT_TYPES,
    MAX_DESCRIPTION_CHARS,
    MAX_ENABLED_EVENTS,
    EndpointCreate,
    EndpointUpdate,
    Metadata,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    delivery_from_row,
    endpoint_from_row,
)

INSERT_ENDPOINT = """
INSERT INTO webhook_endpoints (id, tenant_id, url, enabled_events, status, description, metadata, secret,
                               consecutive_failed_deliveries, created_at)
VALUES (%s, %s, %s, %s::TEXT[], 'enabled', %s, %s, %s, 0, now())
RETURNING id, url, enabled_events, status, description, metadata, created_at"""
GET_ENDPOINT = """
SELECT id, url, enabled_events, status, description, metadata, created_at FROM webhook_endpoints
WHERE tenant_id = %s AND id = %s AND deleted_at IS NULL"""
LOCK_ENDPOINT = """
SELECT id, url, enabled_events, status, description, metadata, created_at FROM webhook_endpoints
WHERE tenant_id = %s AND id = %s AND deleted_at IS NULL FOR UPDATE"""
ENDPOINT_CURSOR = "SELECT created_at, id FROM webhook_endpoints WHERE tenant_id = %s AND deleted_at IS NULL AND id = %s"
LIST_ENDPOINTS = """
SELECT id, url, enabled_events, status, description, metadata, created_at FROM webhook_endpoints
WHERE tenant_id = %s AND deleted_at IS NULL
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_ENDPOINTS_AFTER = """
SELECT id, url, enabled_events, status, description, metadata, created_at FROM webhook_endpoints
WHERE tenant_id = %s AND deleted_at IS NULL AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
# Re-enabling resets the failure run, so the auto-disable counts afresh.
UPDATE_ENDPOINT = """
UPDATE webhook_endpoints SET url = %s, enabled_events = %s::TEXT[], status = %s, description = %s, metadata = %s,
    consecutive_failed_deliveries = CASE WHEN %s THEN 0 ELSE consecutive_failed_deliveries END
WHERE tenant_id = %s AND id = %s
RETURNING id, url, enabled_events, status, description, metadata, created_at"""
# Deliveries parked while the endpoint was disabled (deliverer.py) are due again.
UNPARK_DELIVERIES = """
UPDATE webhook_deliveries SET next_attempt_at = now(), updated_at = now()
WHERE endpoint_id = %s AND status = 'pending' AND next_attempt_at IS NULL"""
DELETE_ENDPOINT = """
UPDATE webhook_endpoints SET deleted_at = now(), status = 'disabled'
WHERE tenant_id = %s AND id = %s AND deleted_at IS NULL RETURNING id"""
STOP_DELIVERIES = """
UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', next_attempt_at = NULL,
    lease_id = NULL, updated_at = now()
WHERE endpoint_id = %s AND status = 'pending'"""
# The old secret signs beside the new one until the overlap ends; a second rotation within the
# overlap drops the oldest.
NEW_SIGNING_KEY = """
UPDATE webhook_endpoints SET previous_secret = CASE WHEN %(overlap)s > '0 s'::INTERVAL THEN secret END,
    previous_secret_expires_at = CASE WHEN %(overlap)s > '0 s'::INTERVAL THEN now() + %(overlap)s END,
    secret = %(secret)s
WHERE tenant_id = %(tenant)s AND id = %(id)s AND deleted_at IS NULL
RETURNING id, url, enabled_events, status, description, metadata, created_at"""

DELIVERY_CURSOR = "SELECT created_at, id FROM webhook_deliveries WHERE tenant_id = %s AND endpoint_id = %s AND id = %s"
LIST_DELIVERIES = """
SELECT id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at FROM webhook_deliveries WHERE tenant_id = %s AND endpoint_id = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_DELIVERIES_AFTER = """
SELECT id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at FROM webhook_deliveries
WHERE tenant_id = %s AND endpoint_id = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_DELIVERIES_BY_STATUS = """
SELECT id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at
FROM webhook_deliveries WHERE tenant_id = %s AND endpoint_id = %s AND status = %s
ORDER BY created_at DESC, id DESC LIMIT %s"""
LIST_DELIVERIES_BY_STATUS_AFTER = """
SELECT id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at FROM webhook_deliveries
WHERE tenant_id = %s AND endpoint_id = %s AND status = %s AND (created_at, id) < (%s, %s)
ORDER BY created_at DESC, id DESC LIMIT %s"""
GET_DELIVERY = """
SELECT id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at
FROM webhook_deliveries WHERE tenant_id = %s AND endpoint_id = %s AND id = %s"""
# A failed delivery gets a fresh attempt budget: the schedule restarts from its first delay.
RETRY_DELIVERY = """
UPDATE webhook_deliveries SET status = 'pending', attempts_base = attempts, next_attempt_at = now(),
    lease_id = NULL, updated_at = now()
WHERE tenant_id = %s AND endpoint_id = %s AND id = %s AND status = 'failed'
RETURNING id, endpoint_id, event_id, event_type, status, attempts, last_status_code, last_error,
       next_attempt_at, created_at, updated_at"""


# ---- checks -----------------------------------------------------------------------------------------


def check_enabled_events(events: list[str]) -> list[str]:
    """The list as given, duplicates dropped; 400 for an unknown type, "*" beside others, or a bad count."""
    if not 1 <= len(events) <= MAX_ENABLED_EVENTS:
        raise ApiError("parameter_invalid", f"enabled_events must list 1..{MAX_ENABLED_EVENTS} event types.",
                       param="enabled_events")
    if ALL_EVENTS in events:
        if any(event != ALL_EVENTS for event in events):
            raise ApiError("parameter_invalid", 'enabled_events: "*" (every event) must be alone.',
                           param="enabled_events")
        return [ALL_EVENTS]
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise ApiError("parameter_invalid", f"enabled_events: unknown event type {unknown[0]!r}; valid: "
                       f"{', '.join(sorted(EVENT_TYPES))}, or \"*\" alone.", param="enabled_events")
    return list(dict.fromkeys(events))


def check_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise ApiError("parameter_invalid", f"description must be at most {MAX_DESCRIPTION_CHARS} characters.",
                       param="description")


def check_metadata(metadata: Metadata | None) -> Metadata:
    try:
        _native.validate_metadata(metadata)
    except _native.CoreError as exc:
        raise from_core(exc) from None
    return dict(metadata or {})


async def check_url(url: str, allow_private: bool) -> None:
    try:
        await ssrf.check_at_creation(url, allow_private)
    except ssrf.UnsafeUrl as exc:
        raise ApiError("parameter_invalid", f"Invalid url: {exc}.", param="url") from None


# ---- endpoints --------------------------------------------------------------------------------------


async def create_endpoint(
    pool: Pool, tenant_id: uuid.UUID, body: EndpointCreate, allow_private: bool
) -> WebhookEndpoint:
    events = check_enabled_events(body.enabled_events)
    check_description(body.description)
    metadata = check_metadata(body.metadata)
    await check_url(body.url, allow_private)
    secret = signing.new_secret()
    row = await _write_one(pool, INSERT_ENDPOINT, (ids.new_uuid(), tenant_id, body.url, events,
                                                  body.description, Jsonb(metadata), secret))
    return endpoint_from_row(row, secret)


async def _write_one(pool: Pool, query: str, params: tuple[object, ...] | dict[str, object]) -> tuple[Any, ...]:
    async with pool.connection() as conn:
        row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return row


def _endpoint_key(endpoint_id: str) -> uuid.UUID:
    key = ids.decode(ids.WEBHOOK_ENDPOINT, endpoint_id)
    if key is None:
        raise not_found("webhook endpoint", endpoint_id, param="id")
    return key


async def get_endpoint(pool: Pool, tenant_id: uuid.UUID, endpoint_id: str) -> WebhookEndpoint:
    row = await read_one(pool, GET_ENDPOINT, (tenant_id, _endpoint_key(endpoint_id)))
    if row is None:
        raise not_found("webhook endpoint", endpoint_id, param="id")
    return endpoint_from_row(row)


async def list_endpoints(
    pool: Pool, tenant_id: uuid.UUID, limit: int, starting_after: str | None
) -> WebhookEndpointList:
    if starting_after is None:
        rows = await read_all(pool, LIST_ENDPOINTS, (tenant_id, limit + 1))
    else:
        key = ids.decode(ids.WEBHOOK_ENDPOINT, starting_after)
        cursor = None if key is None else await read_one(pool, ENDPOINT_CURSOR, (tenant_id, key))
        if cursor is None:
            raise invalid_cursor(starting_after)
        rows = await read_all(pool, LIST_ENDPOINTS_AFTER, (tenant_id, *cursor, limit + 1))
    return WebhookEndpointList(data=[endpoint_from_row(r) for r in rows[:limit]], has_more=len(rows) > limit)


async def update_endpoint(
    pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, endpoint_id: str, body: EndpointUpdate, allow_private: bool
) -> WebhookEndpoint:
    key = _endpoint_key(endpoint_id)
    events = None if isinstance(body.enabled_events, msgspec.UnsetType) else check_enabled_events(body.enabled_events)
    if not isinstance(body.description, msgspec.UnsetType):
        check_description(body.description)
    if not isinstance(body.metadata, msgspec.UnsetType):
        check_metadata({k: v for k, v in body.metadata.items() if v != ""})  # each key and value
    if not isinstance(body.url, msgspec.UnsetType):
        await check_url(body.url, allow_private)

    async def update(conn: Conn) -> tuple[Any, ...]:
        row: tuple[Any, ...] | None = await (await conn.execute(LOCK_ENDPOINT, (tenant_id, key))).fetchone()
        if row is None:
            raise not_found("webhook endpoint", endpoint_id, param="id")
        _id, url, old_events, status, description, metadata, _created_at = row
        if not isinstance(body.metadata, msgspec.UnsetType):
            # Stripe's update: keys merge into the stored metadata; a key set to "" is removed.
            merged = {**metadata, **body.metadata}
            metadata = check_metadata({k: v for k, v in merged.items() if v != ""})
        new_status = status if isinstance(body.status, msgspec.UnsetType) else body.status
        reenabled = status == "disabled" and new_status == "enabled"
        updated = await (await conn.execute(UPDATE_ENDPOINT, (
            url if isinstance(body.url, msgspec.UnsetType) else body.url,
            list(old_events) if events is None else events,
            new_status,
            description if isinstance(body.description, msgspec.UnsetType) else body.description,
            Jsonb(metadata), reenabled, tenant_id, key,
        ))).fetchone()
        assert updated is not None
        if reenabled:
            await conn.execute(UNPARK_DELIVERIES, (key,))
        return updated

    return endpoint_from_row(await run_transaction(pool, update, policy=policy, idempotent=True))


async def delete_endpoint(
    pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, endpoint_id: str
) -> WebhookEndpointDeleted:
    key = _endpoint_key(endpoint_id)

    async def delete(conn: Conn) -> bool:
        if await (await conn.execute(DELETE_ENDPOINT, (tenant_id, key))).fetchone() is None:
            return False
        await conn.execute(STOP_DELIVERIES, (key,))
        return True

    if not await run_transaction(pool, delete, policy=policy, idempotent=False):
        raise not_found("webhook endpoint", endpoint_id, param="id")
    return WebhookEndpointDeleted(id=endpoint_id)


async def rotate_secret(
    pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, endpoint_id: str, overlap: timedelta
) -> WebhookEndpoint:
    key = _endpoint_key(endpoint_id)
    secret = signing.new_secret()

    async def rotate(conn: Conn) -> tuple[Any, ...] | None:
        params = {"overlap": overlap, "secret": secret, "tenant": tenant_id, "id": key}
        return await (await conn.execute(NEW_SIGNING_KEY, params)).fetchone()

    # Not re-run after an unknown commit outcome: the secret answered must be the one stored.
    row = await run_transaction(pool, rotate, policy=policy, idempotent=False)
    if row is None:
        raise not_found("webhook endpoint", endpoint_id, param="id")
    return endpoint_from_row(row, secret)


# ---- deliveries -------------------------------------------------------------------------------------


async def _existing_endpoint(pool: Pool, tenant_id: uuid.UUID, endpoint_id: str) -> uuid.UUID:
    key = _endpoint_key(endpoint_id)
    if await read_one(pool, GET_ENDPOINT, (tenant_id, key)) is None:
        raise not_found("webhook endpoint", endpoint_id, param="id")
    return key


async def list_deliveries(
    pool: Pool, tenant_id: uuid.UUID, endpoint_id: str, limit: int, starting_after: str | None, status: str | None
) -> WebhookDeliveryList:
    endpoint = await _existing_endpoint(pool, tenant_id, endpoint_id)
    after: tuple[Any, ...] = ()
    if starting_after is not None:
        key = ids.decode(ids.WEBHOOK_DELIVERY, starting_after)
        cursor = None if key is None else await read_one(pool, DELIVERY_CURSOR, (tenant_id, endpoint, key))
        if cursor is None:
            raise invalid_cursor(starting_after)
        after = cursor
    if status is None:
        query = LIST_DELIVERIES_AFTER if after else LIST_DELIVERIES
        params: tuple[Any, ...] = (tenant_id, endpoint, *after, limit + 1)
    else:
        query = LIST_DELIVERIES_BY_STATUS_AFTER if after else LIST_DELIVERIES_BY_STATUS
        params = (tenant_id, endpoint, status, *after, limit + 1)
    rows = await read_all(pool, query, params)
    return WebhookDeliveryList(data=[delivery_from_row(r) for r in rows[:limit]], has_more=len(rows) > limit)


async def retry_delivery(
    pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    endpoint = await _existing_endpoint(pool, tenant_id, endpoint_id)
    key = ids.decode(ids.WEBHOOK_DELIVERY, delivery_id)
    if key is None:
        raise not_found("webhook delivery", delivery_id, param="delivery")

    async def retry(conn: Conn) -> tuple[Any, ...] | None:
        return await (await conn.execute(RETRY_DELIVERY, (tenant_id, endpoint, key))).fetchone()

    row = await run_transaction(pool, retry, policy=policy, idempotent=True)
    if row is not None:
        return delivery_from_row(row)
    current = await read_one(pool, GET_DELIVERY, (tenant_id, endpoint, key))
    if current is None:
        raise not_found("webhook delivery", delivery_id, param="delivery")
    raise invalid_state(f"Only a failed delivery can be retried; this one is {current[4]}.")

