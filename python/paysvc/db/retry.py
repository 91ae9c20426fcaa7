"""The one transaction retry helper.

Runs ``fn(conn)`` inside one database transaction and re-runs the WHOLE transaction on
serialization failures (40001) and deadlocks (40P01), a bounded number of times, with capped
exponential backoff and full jitter. A single statement is never retried inside a transaction.

An ambiguous commit (40003, or the connection lost while COMMIT was in flight) is re-run only for
idempotent work: such work starts by claiming its idempotency record, so the re-run either finds
the record the first attempt committed (and replays it) or does the work exactly once. Other work
answers 503, so the client decides.

``run_together`` is the same helper for a transaction sent in as few round trips as it has steps
(``Together``: BEGIN with the first statements, COMMIT with the last); the group committer uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from paysvc.db.pool import Pool
from paysvc.errors import service_unavailable

log = logging.getLogger(__name__)
_rng = random.Random()  # our own: jitter never touches (or is touched by) the global generator

T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[object, ...]]

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
AMBIGUOUS_SQLSTATE = "40003"

# Retries by SQLSTATE (or "connection"), for metrics.
retry_counts: Counter[str] = Counter()


class RequestRetries:
    """The re-runs one HTTP request caused (its log line's ``retries``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


# Set by the request middleware (api/context.py) for the duration of each request; None outside one
# (background jobs, the group committer's task, the CLI).
request_retries: ContextVar[RequestRetries | None] = ContextVar("paysvc_request_retries", default=None)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    backoff_base_ms: int = 2
    backoff_cap_ms: int = 200

    def __post_init__(self) -> None:
        assert 1 <= self.max_attempts <= 100
        assert 0 < self.backoff_base_ms <= self.backoff_cap_ms

    def backoff_s(self, attempt: int) -> float:
        ceiling_ms = min(self.backoff_cap_ms, self.backoff_base_ms * (2 ** min(attempt, 16)))
        return _rng.uniform(0, ceiling_ms) / 1000


async def run_transaction(
    pool: Pool,
    fn: Callable[[Conn], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
) -> T:
    async def attempt(conn: Conn, progress: _Progress) -> T:
        async with conn.transaction():
            result = await fn(conn)
            progress.committing = True
        return result

    return await _retrying(pool, attempt, policy=policy, idempotent=idempotent)


async def run_together(
    pool: Pool,
    fn: Callable[[Together], Awaitable[T]],
    *,
    policy: RetryPolicy,
    isolation: IsolationLevel,
) -> T:
    """Like :func:`run_transaction`, for a transaction whose statements travel together (see
    :class:`Together`): ``fn`` sends them, the last round trip with ``commit=True``. Only idempotent
    work may use it: its last round trip carries COMMIT together with writes, so a connection lost
    there is an ambiguous commit, and only idempotent work may be re-run after one."""
    async def attempt(conn: Conn, progress: _Progress) -> T:
        txn = Together(conn, isolation, progress)
        try:
            result = await fn(txn)
            assert txn.committed, "a transaction sent together ends with a commit=True round trip"
        except Exception:
            # The pool would roll back too, with a warning; a broken connection it simply drops.
            if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):  # the first error is the one that matters
                    await conn.execute("ROLLBACK")
            raise
        return result

    return await _retrying(pool, attempt, policy=policy, idempotent=True)


Statement = tuple[str, Sequence[object] | Mapping[str, object]]

_BEGIN = {
    IsolationLevel.READ_COMMITTED: "BEGIN ISOLATION LEVEL READ COMMITTED",
    IsolationLevel.REPEATABLE_READ: "BEGIN ISOLATION LEVEL REPEATABLE READ",
    IsolationLevel.SERIALIZABLE: "BEGIN ISOLATION LEVEL SERIALIZABLE",
}


class Together:
    """One transaction in as few round trips as it has steps: BEGIN travels with the first
    statements, COMMIT with the last, and the statements of one step with each other (one query
    string per round trip, in PostgreSQL's simple protocol; psycopg binds and quotes the parameters
    client-side, so nothing is concatenated by hand). sql-rules.md asks for exactly this ("prefer
    designs that send a transaction's statements together"). The group committer's batch takes two
    round trips this way instead of five. Its statements are not prepared (each is parsed and
    planned by the server), which the committer can afford: one batch carries many payments."""

    def __init__(self, conn: Conn, isolation: IsolationLevel, progress: _Progress) -> None:
        self._cursor = psycopg.AsyncClientCursor(conn)
        self._begin: str | None = _BEGIN[isolation]
        self._progress = progress
        self.committed = False
        self.round_trips = 0

    async def send(self, *statements: Statement, commit: bool = False) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` in one round trip (after BEGIN the first time, then COMMIT when
        ``commit``); return each statement's rows (empty for a statement that returns none)."""
        assert not self.committed, "the transaction is over"
        assert statements or commit
        parts = [sql.SQL(self._cursor.mogrify(query, params)) for query, params in statements]
        if self._begin is not None:
            parts.insert(0, sql.SQL(self._begin))
        if commit:
            parts.append(sql.SQL("COMMIT"))
            self._progress.committing = True
        await self._cursor.execute(sql.SQL(";\n").join(parts))
        self.round_trips += 1
        results: list[list[tuple[Any, ...]]] = []
        if self._begin is not None:
            self._begin = None
            self._cursor.nextset()
        for i in range(len(statements)):
            results.append(await self._cursor.fetchall() if self._cursor.description is not None else [])
            more = self._cursor.nextset()
            assert more or (i == len(statements) - 1 and not commit), "one result per statement"
        self.committed = commit
        return results


@dataclass
class _Progress:
    committing: bool = False


async def _retrying(
    pool: Pool,
    attempt: Callable[[Conn, _Progress], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
) -> T:
    for number in range(1, policy.max_attempts + 1):
        progress = _Progress()
        try:
            async with pool.connection() as conn:
                return await attempt(conn, progress)
        except PoolTimeout as exc:
            log.warning("no database connection within the acquire timeout: %s", exc)
            raise service_unavailable("The database is unavailable; retry shortly.") from exc
        except psycopg.Error as exc:
            reason = _classify(exc, progress.committing)
            if reason is None:
                raise
            if reason == "ambiguous" and not idempotent:
                log.error("commit outcome unknown (%s); not re-running non-idempotent work", exc)
                raise service_unavailable(
                    "The outcome of this request is unknown; check before retrying."
                ) from exc
            _count_retry(reason)
            if number == policy.max_attempts:
                log.warning("transaction gave up after %d attempts (%s)", number, reason)
                raise service_unavailable() from exc
            await asyncio.sleep(policy.backoff_s(number))
    raise AssertionError("unreachable")


# Reads are single statements: a few quick re-runs, then the error (503) stands.
READ_POLICY = RetryPolicy(max_attempts=4, backoff_base_ms=1, backoff_cap_ms=20)


async def run_read(pool: Pool, fn: Callable[[Conn], Awaitable[T]], *, policy: RetryPolicy = READ_POLICY) -> T:
    """Run ``fn(conn)``, one read statement in autocommit (no BEGIN/COMMIT round trips), and re-run
    it on 40001/40P01. Even a lone SERIALIZABLE read can be cancelled on PostgreSQL as the pivot of
    a conflict between writers ("could not serialize access … during read"); re-running a read is
    always safe. Anything else, and the last failure, propagates (the API answers 503)."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except psycopg.Error as exc:
            if exc.sqlstate not in RETRYABLE_SQLSTATES or attempt == policy.max_attempts:
                raise
            _count_retry(exc.sqlstate)
            await asyncio.sleep(policy.backoff_s(attempt))
    raise AssertionError("unreachable")


async def read_one(pool: Pool, query: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
    """One row of one read statement (see :func:`run_read`)."""
    async def read(conn: Conn) -> tuple[Any, ...] | None:
        return await (await conn.execute(query, params)).fetchone()

    return await run_read(pool, read)


async def read_all(pool: Pool, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    """Every row of one read statement (see :func:`run_read`)."""
    async def read(conn: Conn) -> list[tuple[Any, ...]]:
        return await (await conn.execute(query, params)).fetchall()

    return await run_read(pool, read)


def _count_retry(reason: str) -> None:
    retry_counts[reason] += 1
    holder = request_retries.get()
    if holder is not None:
        holder.count += 1


def _classify(exc: psycopg.Error, committing: bool) -> str | None:
    """Why a failed transaction may be re-run: a SQLSTATE, "ambiguous", "connection" or None (never)."""
    sqlstate = exc.sqlstate
    if sqlstate in RETRYABLE_SQLSTATES:
        return sqlstate
    if sqlstate == AMBIGUOUS_SQLSTATE:
        return "ambiguous"
    if (isinstance(exc, psycopg.OperationalError) and sqlstate is None) or _is_connection_loss(exc):
        # The connection broke. Before COMMIT nothing was committed; during COMMIT nobody knows.
        return "ambiguous" if committing else "connection"
    return None


def _is_connection_loss(exc: psycopg.Error) -> bool:
    sqlstate = exc.sqlstate or ""
    # Class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown, cannot connect now.
    return sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}
