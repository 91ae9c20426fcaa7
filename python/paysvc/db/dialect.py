"""Which engine a connection talks to, and the few per-engine session settings.

Every statement is shared SQL (sql-rules.md); only session settings differ, each named here with
its reason. Detected once per new connection (``SELECT version()``).
"""

from __future__ import annotations

import enum
from typing import Any

import psycopg


class Engine(enum.Enum):
    POSTGRES = "postgres"
    COCKROACH = "cockroachdb"


# PostgreSQL's SERIALIZABLE (SSI) takes a relation-wide predicate lock for every sequential scan.
# On small tables the planner prefers sequential scans, and then any two payments conflict (we
# measured 2 rollbacks per commit at 16 clients). Our statements are all key lookups, so steer the
# planner to indexes, as the PostgreSQL manual suggests for SSI workloads.
POSTGRES_SESSION_SQL = "SET enable_seqscan = off"


async def detect(conn: psycopg.AsyncConnection[Any]) -> Engine:
    row = await (await conn.execute("SELECT version()")).fetchone()
    version = str(row[0]) if row else ""
    return Engine.COCKROACH if "CockroachDB" in version else Engine.POSTGRES


async def configure_session(conn: psycopg.AsyncConnection[Any]) -> Engine:
    engine = await detect(conn)
    if engine is Engine.POSTGRES:
        await conn.execute(POSTGRES_SESSION_SQL)
    return engine
