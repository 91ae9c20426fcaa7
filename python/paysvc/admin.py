"""Tenants and API keys. A key is shown once at creation; only its SHA-256 is stored (keys carry
256 bits of entropy, so a fast hash is enough), with a short prefix kept for support.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import psycopg

from paysvc import ids
from paysvc.errors import ApiError
from paysvc.resources import TenantCreated
from paysvc.tenants import Tenant

KEY_PREFIX = "sk_"
KEY_PREFIX_SHOWN = 11  # "sk_" + 8 characters
MAX_TENANT_NAME = 200

INSERT_TENANT = "INSERT INTO tenants (id, name) VALUES (%s, %s)"
INSERT_KEY = "INSERT INTO api_keys (key_hash, tenant_id, key_prefix) VALUES (%s, %s, %s)"
AUTHENTICATE = """
SELECT k.tenant_id,
       (SELECT json_agg(json_build_array(r.currency, r.percent_bps, r.fixed_minor, r.min_minor,
                                         r.max_minor, f.account_id::TEXT))
        FROM fee_rules r
        JOIN fee_accounts f ON f.tenant_id = r.tenant_id AND f.currency = r.currency
        WHERE r.tenant_id = k.tenant_id)
FROM api_keys k
WHERE k.key_hash = %s AND k.revoked_at IS NULL
"""


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


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
    key = new_api_key()
    async with conn.transaction():
        await conn.execute(INSERT_TENANT, (tenant_id, name))
        await conn.execute(INSERT_KEY, (hash_key(key), tenant_id, key[:KEY_PREFIX_SHOWN]))
    return TenantCreated(id=ids.encode(ids.TENANT, tenant_id), name=name, api_key=key)


async def authenticate(conn: psycopg.AsyncConnection[Any], key: str) -> Tenant | None:
    key_hash = hash_key(key)
    row = await (await conn.execute(AUTHENTICATE, (key_hash,))).fetchone()
    if row is None:
        return None
    tenant_id, rules = row
    fee_rules: dict[str, tuple[int, int, int | None, int | None]] = {}
    fee_accounts: dict[str, uuid.UUID] = {}
    for currency, bps, fixed, lo, hi, account_id in rules or ():
        fee_rules[currency] = (int(bps), int(fixed), None if lo is None else int(lo), None if hi is None else int(hi))
        fee_accounts[currency] = uuid.UUID(account_id)
    return Tenant(id=tenant_id, key_hash=key_hash, fee_rules=fee_rules, fee_accounts=fee_accounts)
