"""Tenants and API keys. A key is shown once at creation; only its SHA-256 is stored (keys carry
256 bits of entropy, so a fast hash is enough), with a short prefix kept for support.
More keys per tenant, listing and revocation: paysvc/keys.py (the ``paysvc key`` commands).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import itertools
import secrets
import uuid
from typing import Any

import psycopg

from paysvc import ids
from paysvc.db import arrays
from paysvc.db.pool import Pool
from paysvc.db.retry import read_all
from paysvc.errors import ApiError
from paysvc.resources import TenantCreated
from paysvc.tenants import Tenant

KEY_PREFIX = "sk_"
KEY_PREFIX_SHOWN = 11  # "sk_" + 8 characters
MAX_KEY_LENGTH = 200  # ours are 46 characters; anything far longer is rejected before the database
MAX_TENANT_NAME = 200

INSERT_TENANT = "INSERT INTO tenants (id, name) VALUES (%s, %s)"
INSERT_KEY = "INSERT INTO api_keys (key_hash, tenant_id, key_prefix) VALUES (%s, %s, %s)"
# The tenants of some API keys (their SHA-256 hashes), with their fee schedules.
AUTHENTICATE = """
SELECT k.key_hash,
       k.tenant_id,
       (SELECT json_agg(json_build_array(r.currency, r.percent_bps, r.fixed_minor, r.min_minor,
                                         r.max_minor, f.account_id::TEXT))
        FROM fee_rules r
        JOIN fee_accounts f ON f.tenant_id = r.tenant_id AND f.currency = r.currency
        WHERE r.tenant_id = k.tenant_id)
FROM api_keys k
WHERE k.key_hash = ANY(%s::BYTEA[]) AND k.revoked_at IS NULL
"""


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_prefix(key: str) -> str:
    """The part of a key that may be shown and stored in clear (for support and ``paysvc key list``)."""
    return key[:KEY_PREFIX_SHOWN]


def well_formed(key: str) -> bool:
    """Cheap shape check, so that garbage never costs a database round trip (same 401 either way)."""
    return key.startswith(KEY_PREFIX) and len(key) <= MAX_KEY_LENGTH


def new_key_row(tenant_id: uuid.UUID) -> tuple[str, tuple[bytes, uuid.UUID, str]]:
    """A fresh key and the parameters of INSERT_KEY that store it (its hash and prefix, never the key)."""
    key = new_api_key()
    return key, (hash_key(key), tenant_id, key_prefix(key))


def validate_tenant_name(name: object) -> str:
    if not isinstance(name, str):
        raise ApiError("parameter_invalid", "name must be a string", param="name")
    if not 1 <= len(name) <= MAX_TENANT_NAME or not name.strip():
        raise ApiError(
            "parameter_invalid", f"name must be 1 to {MAX_TENANT_NAME} characters, not blank", param="name"
        )
    return name


async def create_tenant(conn: psycopg.AsyncConnection[Any], name: str) -> TenantCreated:
    tenant_id = ids.new_uuid()
    key, key_row = new_key_row(tenant_id)
    async with conn.transaction():
        await conn.execute(INSERT_TENANT, (tenant_id, name))
        await conn.execute(INSERT_KEY, key_row)
    return TenantCreated(id=ids.encode(ids.TENANT, tenant_id), name=name, api_key=key)


def _tenant_of(row: tuple[Any, ...], key_hash: bytes) -> Tenant | None:
    stored_hash, tenant_id, rules = row
    # The lookup is by hash already; compare explicitly, in constant time, all the same.
    if not hmac.compare_digest(bytes(stored_hash), key_hash):
        return None
    fee_rules: dict[str, tuple[int, int, int | None, int | None]] = {}
    fee_accounts: dict[str, uuid.UUID] = {}
    for currency, bps, fixed, lo, hi, account_id in rules or ():
        fee_rules[currency] = (int(bps), int(fixed), None if lo is None else int(lo), None if hi is None else int(hi))
        fee_accounts[currency] = uuid.UUID(account_id)
    return Tenant(id=tenant_id, key_hash=key_hash, fee_rules=fee_rules, fee_accounts=fee_accounts)


class KeyLookups:
    """Authentication for one API process: concurrent lookups share one query.

    The same idea as group commit (ledger/batching.py), for reads: while a lookup query is in
    flight, the keys of requests arriving meanwhile wait, and the next query, sent as soon as that
    one ends, asks for all of them at once (each distinct key once: under load most requests carry
    the same few keys). There is no timer, so a lone request's query goes at once. Every request is
    answered by a query that started after the request arrived, so a revoked key is still refused
    from the very next request, exactly as with a query per request. Measured: one query per
    request cost about a fifth of the API process's CPU per payment (`paysvc bench` spread).
    """

    MAX_KEYS_PER_QUERY = 500

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._waiting: dict[bytes, asyncio.Future[Tenant | None]] = {}
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.queries = 0
        self.lookups = 0

    async def authenticate(self, key: str) -> Tenant | None:
        """The key's tenant, or None for a malformed, unknown or revoked key."""
        if not well_formed(key):
            return None
        key_hash = hash_key(key)
        future = self._waiting.get(key_hash)
        if future is None:
            future = self._waiting[key_hash] = asyncio.get_running_loop().create_future()
        self.lookups += 1
        if not self._running:
            self._running = True
            self._task = asyncio.create_task(self._run(), name="key lookups", context=contextvars.Context())
        # Shielded: the future is shared, and one client going away must not cancel it for the others.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._waiting:
                hashes = list(itertools.islice(self._waiting, self.MAX_KEYS_PER_QUERY))
                batch = {key_hash: self._waiting.pop(key_hash) for key_hash in hashes}
                try:
                    found = await self._query(hashes)
                except Exception as exc:  # the database is unreachable, say: every waiter hears it
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for key_hash, future in batch.items():
                    if not future.done():
                        future.set_result(found.get(key_hash))
        finally:
            self._running = False

    async def _query(self, hashes: list[bytes]) -> dict[bytes, Tenant]:
        self.queries += 1
        rows = await read_all(self.pool, AUTHENTICATE, (arrays.byteas(hashes),))
        found: dict[bytes, Tenant] = {}
        for row in rows:
            key_hash = bytes(row[0])
            tenant = _tenant_of(row, key_hash)
            if tenant is not None:
                found[key_hash] = tenant
        return found
