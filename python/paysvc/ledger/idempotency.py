"""Idempotency records (design brief, section 4).

A record is claimed by the first statement of the transaction that does the work and completed by
its last, so it commits (or vanishes) with the money it guards. A concurrent duplicate in another
process waits on the claimed key and then replays; in this process it is answered 409 at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from paysvc.db.retry import Conn
from paysvc.errors import ApiError

CLAIM = (
    "INSERT INTO idempotency_keys (tenant_id, idem_key, fingerprint) VALUES (%s, %s, %s) "
    "ON CONFLICT (tenant_id, idem_key) DO NOTHING RETURNING created_at"
)
LOOKUP = (
    "SELECT fingerprint, status_code, response_body, created_at < now() - %s "
    "FROM idempotency_keys WHERE tenant_id = %s AND idem_key = %s"
)
FORGET = "DELETE FROM idempotency_keys WHERE tenant_id = %s AND idem_key = %s"
COMPLETE = (
    "UPDATE idempotency_keys SET status_code = %s, response_body = %s, payment_id = %s "
    "WHERE tenant_id = %s AND idem_key = %s"
)
PURGE = (
    "DELETE FROM idempotency_keys WHERE (tenant_id, idem_key) IN ("
    "SELECT tenant_id, idem_key FROM idempotency_keys WHERE created_at < now() - %s LIMIT %s)"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a write answers: HTTP status and the exact body bytes (stored for replays)."""

    status: int
    body: bytes
    replayed: bool = False


def key_in_use() -> ApiError:
    return ApiError(
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still being processed; retry after it completes.",
        param="Idempotency-Key",
    )


class InFlight:
    """Keys whose first request is still running in this process."""

    def __init__(self) -> None:
        self._keys: set[tuple[uuid.UUID, str]] = set()

    @contextmanager
    def claim(self, tenant_id: uuid.UUID, key: str) -> Iterator[None]:
        token = (tenant_id, key)
        if token in self._keys:
            raise key_in_use()
        self._keys.add(token)
        try:
            yield
        finally:
            self._keys.discard(token)


async def claim(
    conn: Conn, tenant_id: uuid.UUID, key: str, fingerprint: str, retention: timedelta
) -> datetime | Outcome:
    """Claim ``key`` for this transaction and return the transaction's timestamp; or return the
    stored outcome to replay. Raises 422 when the key was used for a different request.
    """
    claimed = await (await conn.execute(CLAIM, (tenant_id, key, fingerprint))).fetchone()
    if claimed is not None:
        return _timestamp(claimed)
    row = await (await conn.execute(LOOKUP, (retention, tenant_id, key))).fetchone()
    assert row is not None, "a conflicting idempotency record cannot vanish inside the transaction"
    stored_fingerprint, status_code, body, expired = row
    if expired:
        # Past retention, not yet purged: the key is free again.
        await conn.execute(FORGET, (tenant_id, key))
        again = await (await conn.execute(CLAIM, (tenant_id, key, fingerprint))).fetchone()
        assert again is not None
        return _timestamp(again)
    if stored_fingerprint != fingerprint:
        raise ApiError(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request; use a new key for a new request.",
            param="Idempotency-Key",
        )
    if status_code is None:  # only visible if a transaction committed a bare claim: never by design
        raise key_in_use()
    assert isinstance(status_code, int) and isinstance(body, bytes)
    return Outcome(status=status_code, body=body, replayed=True)



def _timestamp(row: tuple[Any, ...]) -> datetime:
    value = row[0]
    assert isinstance(value, datetime)
    return value
