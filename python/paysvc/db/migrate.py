"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order and recorded in
``schema_migrations``. Safe to run twice and from several processes at once: each migration claims
its version row in the same transaction as its DDL, so a second runner blocks, then skips it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MAX_ATTEMPTS = 20
# What two runners racing on the same DDL can see; each means "look again".
_RACES = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,
    pg_errors.DuplicateObject,
    pg_errors.DuplicateTable,
)

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("paysvc.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    assert len(set(versions)) == len(versions), "two migrations share a version number"
    return found


def migrate(url: str) -> list[int]:
    """Apply every pending migration; return the versions this call applied."""
    applied: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        _retrying(conn, _BOOTSTRAP)
        for migration in available():
            if _apply(conn, migration):
                applied.append(migration.version)
                log.info("applied migration %04d_%s", migration.version, migration.name)
    return applied


def _apply(conn: psycopg.Connection, migration: Migration) -> bool:
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with conn.transaction():
                claimed = conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s) "
                    "ON CONFLICT (version) DO NOTHING RETURNING version",
                    (migration.version, migration.name),
                ).fetchone()
                if claimed is None:
                    return False
                conn.execute(migration.sql.encode("utf-8"))
            return True
        except _RACES:
            continue  # another runner got there first; look again
    raise RuntimeError(f"could not apply migration {migration.version} after {MAX_ATTEMPTS} attempts")


def _retrying(conn: psycopg.Connection, sql: str) -> None:
    # CREATE TABLE IF NOT EXISTS can race with itself on PostgreSQL (unique violation in the catalog).
    for _attempt in range(MAX_ATTEMPTS):
        try:
            conn.execute(sql)
            return
        except _RACES:
            continue
    raise RuntimeError("could not create schema_migrations")


def applied_versions(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [int(r[0]) for r in rows]
