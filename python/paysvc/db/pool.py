"""The psycopg 3 connection pool: fixed size, short acquire timeout, bounded connection lifetime.

Every connection runs SERIALIZABLE by default (PostgreSQL defaults to READ COMMITTED) and in
autocommit mode: reads are single statements, writes open an explicit transaction (see retry.py).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from paysvc.config import Settings
from paysvc.db import dialect

log = logging.getLogger(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]]


def make_pool(settings: Settings, url: str) -> Pool:
    async def configure(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        engine = await dialect.configure_session(conn)
        # The engine kind reaches reads.py through the pool (dialect.follower_reads_on(pool)).
        dialect.remember(pool, engine, follower_reads=settings.follower_reads)

    pool: Pool = AsyncConnectionPool(
        url,
        min_size=settings.pool_size,
        max_size=settings.pool_size,
        open=False,
        timeout=settings.pool_acquire_timeout_ms / 1000,
        max_lifetime=float(settings.connection_max_lifetime_s),
        max_idle=float(settings.connection_max_lifetime_s),
        reconnect_timeout=3600.0,
        kwargs={
            "autocommit": True,
            "connect_timeout": settings.connect_timeout_s,
            "options": session_options(settings),
        },
        configure=configure,
        name="paysvc",
    )
    return pool


def session_options(settings: Settings) -> str:
    """Session settings sent in the startup packet (no extra round trip; both engines accept them)."""
    return (
        "-c default_transaction_isolation=serializable"
        f" -c statement_timeout={int(settings.statement_timeout_ms)}"
    )
