"""API key management for the ``paysvc key`` commands: create another key for a tenant, list a
tenant's keys (prefixes and dates only), revoke a key given in full or by its prefix.

Keys are stored as their SHA-256 with a short clear prefix (admin.py). Authentication reads the
``api_keys`` row on every request (api/auth.py), so a revocation applies from the next request on,
in every API process, with nothing cached to expire.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import psycopg

from paysvc import admin, ids
from paysvc.timefmt import rfc3339, rfc3339_or_none

TENANT_EXISTS = "SELECT 1 FROM tenants WHERE id = %s"
LIST_KEYS = """
SELECT key_prefix, created_at, revoked_at
FROM api_keys
WHERE tenant_id = %s
ORDER BY created_at, key_prefix
"""
REVOKE_BY_HASH = """
UPDATE api_keys SET revoked_at = now()
WHERE key_hash = %s AND revoked_at IS NULL
RETURNING key_prefix, revoked_at
"""
KEY_BY_HASH = "SELECT key_prefix, revoked_at FROM api_keys WHERE key_hash = %s"
ACTIVE_KEYS_BY_PREFIX = """
SELECT key_hash FROM api_keys
WHERE key_prefix = %s AND revoked_at IS NULL
ORDER BY key_hash
FOR UPDATE
"""

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"paysvc: {message}", file=sys.stderr)
    return EXIT_USAGE


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def create(url: str, tenant_id_text: str) -> int:
    """Create another key for an existing tenant; print ``{"tenant","api_key","prefix"}`` (shown once)."""
    tenant_id = ids.decode(ids.TENANT, tenant_id_text)
    if tenant_id is None:
        return _fail(f"{tenant_id_text!r} is not a tenant id (ten_ followed by 32 hex digits)")
    key, key_row = admin.new_key_row(tenant_id)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        if conn.execute(TENANT_EXISTS, (tenant_id,)).fetchone() is None:
            return _fail(f"no tenant {tenant_id_text}")
        conn.execute(admin.INSERT_KEY, key_row)
    _print({"tenant": ids.encode(ids.TENANT, tenant_id), "api_key": key, "prefix": admin.key_prefix(key)})
    return 0


def list_keys(url: str, tenant_id_text: str) -> int:
    """Print one line per key of the tenant, oldest first: ``{"prefix","created_at","revoked_at"}``."""
    tenant_id = ids.decode(ids.TENANT, tenant_id_text)
    if tenant_id is None:
        return _fail(f"{tenant_id_text!r} is not a tenant id (ten_ followed by 32 hex digits)")
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute(TENANT_EXISTS, (tenant_id,)).fetchone() is None:
            return _fail(f"no tenant {tenant_id_text}")
        rows = conn.execute(LIST_KEYS, (tenant_id,)).fetchall()
    for prefix, created_at, revoked_at in rows:
        _print({"prefix": prefix, "created_at": rfc3339(created_at), "revoked_at": rfc3339_or_none(revoked_at)})
    return 0


def revoke(url: str, key_or_prefix: str) -> int:
    """Revoke one key, given in full (matched by its hash) or by the prefix ``key list`` shows (which
    must match exactly one key not yet revoked). Prints ``{"prefix","revoked_at"}``."""
    text = key_or_prefix.strip()
    if not text.startswith(admin.KEY_PREFIX) or len(text) < admin.KEY_PREFIX_SHOWN:
        return _fail(f"give the full API key or its {admin.KEY_PREFIX_SHOWN}-character prefix "
                     f"({admin.KEY_PREFIX}…) as `paysvc key list` shows it")
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        if len(text) == admin.KEY_PREFIX_SHOWN:
            matches = conn.execute(ACTIVE_KEYS_BY_PREFIX, (text,)).fetchall()
            if not matches:
                return _fail(f"no active key has the prefix {text}")
            if len(matches) > 1:
                return _fail(f"{len(matches)} active keys have the prefix {text}: revoke the key by giving it in full")
            key_hash = bytes(matches[0][0])
        else:
            if not admin.well_formed(text):
                return _fail("that is not an API key")
            key_hash = admin.hash_key(text)
        row = conn.execute(REVOKE_BY_HASH, (key_hash,)).fetchone()
        if row is None:
            known = conn.execute(KEY_BY_HASH, (key_hash,)).fetchone()
            if known is None:
                return _fail("no such API key")
            return _fail(f"the key {known[0]} was already revoked at {rfc3339_or_none(known[1])}")
    prefix, revoked_at = row
    _print({"prefix": prefix, "revoked_at": rfc3339(revoked_at)})
    return 0
