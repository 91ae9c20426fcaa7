"""Which engine a connection talks to, and the few places where paysvc uses it.

Every statement is shared SQL (sql-rules.md): PostgreSQL is the tested default and the only engine
the test suite runs. What differs on CockroachDB is listed here, each piece small and named, and
each enabled only when ``SELECT version()`` says CockroachDB:

1. Session settings (``configure_session``): on PostgreSQL, ``enable_seqscan = off`` (see below);
   nothing extra on CockroachDB, whose default isolation is already SERIALIZABLE.
2. Follower reads (``follower_read``, ``follower_reads_on``): when the operator sets
   ``PAYSVC_FOLLOWER_READS=true`` and the server is CockroachDB, a single-object GET whose request
   asks for it (``Paysvc-Read-Consistency: stale``) runs ``AS OF SYSTEM TIME
   follower_read_timestamp()`` (reads.py, ``object_sql``): served by the nearest replica, a few
   seconds stale (see ``FOLLOWER_READ_STALENESS``). Lists and the events feed are always current.
   On PostgreSQL the setting is ignored (logged once) and every read is current.
3. Hash-sharded indexes for the indexes whose leading columns grow monotonically across all
   tenants (``migrations/cockroachdb/*.sql``, applied by migrate.py in place of the PostgreSQL
   statement): ``idempotency_keys (created_at)`` and ``payments (status, expires_at)``. Indexes
   that grow monotonically only within one tenant or account (``(tenant_id, created_at, id)`` of
   the lists, ``entries (account_id, seq)``, ``events (tenant_id, seq)``) are left as they are:
   their hot spot is bounded by one tenant's (one account's) write rate, and hash-sharding them
   would turn every listing page into a scan of every bucket.

Ambiguous commits (SQLSTATE 40003, CockroachDB's "result is ambiguous") are handled by retry.py.

None of the CockroachDB branches can be run here (there is no CockroachDB binary on our machines):
the tests check the SQL they generate and that PostgreSQL never gets it. The CockroachDB facts
they rely on, with their sources, are in docs/design.md ("CockroachDB dialect").
"""

from __future__ import annotations

import enum
import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg

log = logging.getLogger(__name__)


class Engine(enum.Enum):
    POSTGRES = "postgres"
    COCKROACH = "cockroachdb"


# PostgreSQL's SERIALIZABLE (SSI) takes a relation-wide predicate lock for every sequential scan.
# On small tables the planner prefers sequential scans, and then any two payments conflict (we
# measured 2 rollbacks per commit at 16 clients). Our statements are all key lookups, so steer the
# planner to indexes, as the PostgreSQL manual suggests for SSI workloads.
POSTGRES_SESSION_SQL = "SET enable_seqscan = off"


def engine_of_version(version: str) -> Engine:
    """The engine behind a ``SELECT version()`` string ("CockroachDB CCL v25.2.0 (…)" or "PostgreSQL 18.0 …")."""
    return Engine.COCKROACH if "CockroachDB" in version else Engine.POSTGRES


async def detect(conn: psycopg.AsyncConnection[Any]) -> Engine:
    row = await (await conn.execute("SELECT version()")).fetchone()
    return engine_of_version(str(row[0]) if row else "")


async def configure_session(conn: psycopg.AsyncConnection[Any]) -> Engine:
    engine = await detect(conn)
    if engine is Engine.POSTGRES:
        await conn.execute(POSTGRES_SESSION_SQL)
    return engine


# ---- follower reads (CockroachDB only) ---------------------------------------------------------

# CockroachDB: "SELECT … FROM t AS OF SYSTEM TIME follower_read_timestamp() WHERE …" reads the data
# as of follower_read_timestamp(), which CockroachDB documents as statement_timestamp() - 4.2 s in
# its v25.2 docs (4.8 s in older ones, v20.1 to at least v21.2): old enough for any replica to
# serve it. The clause belongs at the very end of the FROM clause, once per statement; locking
# reads (FOR UPDATE) and writes cannot use it.
FOLLOWER_READ_CLAUSE = "AS OF SYSTEM TIME follower_read_timestamp()"
FOLLOWER_READ_STALENESS = "about 4.2 to 4.8 s"

_SINGLE_TABLE_FROM = re.compile(r"\bFROM\s+([a-z_][a-z0-9_]*)(?=\s|$)", re.IGNORECASE)
_NOT_SINGLE_TABLE = re.compile(
    r"\bJOIN\b|\(\s*SELECT\b|\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b|\bAS\s+OF\s+SYSTEM\s+TIME\b|\bUNION\b|;",
    re.IGNORECASE,
)


def follower_read(sql: str) -> str:
    """The CockroachDB follower-read form of a single-table, non-locking SELECT.

    The clause goes right after the one table of the FROM clause (so before WHERE/ORDER BY/LIMIT),
    where CockroachDB wants it. Anything else (joins, subqueries, several FROMs, locking reads) is
    refused with ValueError when reads.py builds its statements at import time, rather than guessed
    at: for such a query the clause would have to go at the end of the outer FROM list instead.
    """
    text = sql.strip()
    if text[:6].upper() != "SELECT" or _NOT_SINGLE_TABLE.search(text):
        raise ValueError(f"follower_read needs a single-table, non-locking SELECT: {sql!r}")
    matches = list(_SINGLE_TABLE_FROM.finditer(text))
    if len(matches) != 1 or len(re.findall(r"\bFROM\b", text, re.IGNORECASE)) != 1:
        raise ValueError(f"follower_read needs exactly one FROM <table>: {sql!r}")
    end = matches[0].end()
    return f"{text[:end]} {FOLLOWER_READ_CLAUSE}{text[end:]}"


@dataclass(frozen=True)
class PoolDialect:
    """What a pool learnt from its first connection, and what the operator asked for."""

    engine: Engine
    follower_reads_requested: bool

    @property
    def follower_reads(self) -> bool:
        return self.follower_reads_requested and self.engine is Engine.COCKROACH


# Keyed by the pool object (weakly: a closed, dropped pool leaves no trace). A pool talks to one
# database, so the engine is the same for all its connections; reads.py asks with the pool it has.
_pools: weakref.WeakKeyDictionary[Any, PoolDialect] = weakref.WeakKeyDictionary()


def remember(pool: object, engine: Engine, *, follower_reads: bool) -> None:
    """Record the pool's engine (its configure callback calls this for every new connection).

    The first time, say what the follower-read setting does on this engine."""
    known = _pools.get(pool)
    _pools[pool] = PoolDialect(engine, follower_reads)
    if known is not None or not follower_reads:
        return
    if engine is Engine.COCKROACH:
        log.info("PAYSVC_FOLLOWER_READS: single-object GETs sent with Paysvc-Read-Consistency: stale read %s "
                 "(%s stale); lists and events stay current", FOLLOWER_READ_CLAUSE, FOLLOWER_READ_STALENESS)
    else:
        log.warning("PAYSVC_FOLLOWER_READS is set but the database is PostgreSQL: ignored "
                    "(follower reads exist only on CockroachDB); every read is current")


def of(pool: object) -> PoolDialect | None:
    """The pool's engine and settings, or None before its first connection was configured."""
    return _pools.get(pool)


def follower_reads_on(pool: object) -> bool:
    """True only for a pool on CockroachDB whose operator enabled follower reads (a request must
    still ask for them: reads.object_sql)."""
    known = _pools.get(pool)
    return known is not None and known.follower_reads
