"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order and recorded in
``schema_migrations``. Safe to run twice and from several processes at once: each migration claims
its version row in the same transaction as its DDL, so a second runner blocks, then skips it.

The migrations are shared SQL and PostgreSQL runs them as written. On CockroachDB (detected with
``SELECT version()``), each index that has a file ``migrations/cockroachdb/<index name>.sql`` is
created by that file's statement instead of the one in the migration (``for_engine``): a
hash-sharded version of an index whose leading columns grow monotonically (db/dialect.py). The
swap happens when the migration is applied, so a database that already applied a migration keeps
its indexes; changing one there takes a new migration. The CockroachDB path cannot be run here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from paysvc.db.dialect import Engine, engine_of_version

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
COCKROACH_VARIANTS = "cockroachdb"  # the folder of CockroachDB index variants, under migrations/
_VARIANT_NAME = re.compile(r"^([a-z0-9_]+)\.sql$")
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


@dataclass(frozen=True)
class IndexVariant:
    """A CockroachDB-only statement for the index ``name`` that a migration creates."""

    name: str
    sql: str  # the statement, without the file's comments


def _create_index(name: str) -> re.Pattern[str]:
    """The shared migrations' statement that creates index ``name`` (up to its semicolon)."""
    return re.compile(rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+IF\s+NOT\s+EXISTS\s+{re.escape(name)}\s[^;]*;", re.IGNORECASE)


def cockroach_variants() -> list[IndexVariant]:
    """The CockroachDB index variants; each must replace exactly one statement of the migrations."""
    found: list[IndexVariant] = []
    folder = resources.files("paysvc.db").joinpath("migrations").joinpath(COCKROACH_VARIANTS)
    for entry in folder.iterdir():
        match = _VARIANT_NAME.match(entry.name)
        if match is None:
            continue
        lines = entry.read_text(encoding="utf-8").splitlines()
        statement = " ".join(line.strip() for line in lines if line.strip() and not line.strip().startswith("--"))
        found.append(IndexVariant(match.group(1), statement))
    shared = [m.sql for m in available()]
    for variant in found:
        count = sum(len(_create_index(variant.name).findall(text)) for text in shared)
        if count != 1 or len(_create_index(variant.name).findall(variant.sql)) != 1:
            raise RuntimeError(f"CockroachDB variant {variant.name}.sql must replace exactly one CREATE INDEX "
                               f"IF NOT EXISTS {variant.name} of the migrations (found {count})")
    return sorted(found, key=lambda v: v.name)


def for_engine(migration: Migration, engine: Engine, variants: list[IndexVariant] | None = None) -> Migration:
    """The migration as it runs on ``engine``: unchanged on PostgreSQL; on CockroachDB with each
    index that has a variant created by the variant's statement."""
    if engine is Engine.POSTGRES:
        return migration
    text = migration.sql
    for variant in cockroach_variants() if variants is None else variants:
        text = _create_index(variant.name).sub(variant.sql.replace("\\", "\\\\"), text)
    return Migration(migration.version, migration.name, text)


def migrate(url: str) -> list[int]:
    """Apply every pending migration; return the versions this call applied."""
    applied: list[int] = []
    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SELECT version()").fetchone()
        engine = engine_of_version(str(version[0]) if version else "")
        variants = cockroach_variants() if engine is Engine.COCKROACH else []
        _retrying(conn, _BOOTSTRAP)
        for shared in available():
            migration = for_engine(shared, engine, variants)
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
