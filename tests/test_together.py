"""db/retry.run_together: a transaction whose statements travel together (BEGIN with the first round
trip, COMMIT with the last), as the group committer sends its batches. Against the real server: the
statements share one transaction at the asked isolation, each gets its own rows, a failure in any
round trip leaves nothing behind and the connection clean, and 40001 re-runs the whole."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import IsolationLevel

from conftest import RunningServer, db_rows
from paysvc.db import arrays, retry
from paysvc.db.pool import Pool

RAISE = "DO $$ BEGIN RAISE EXCEPTION 'test: failed step' USING ERRCODE = '40001'; END $$"
POLICY = retry.RetryPolicy(max_attempts=3, backoff_base_ms=1, backoff_cap_ms=2)


TABLE = "CREATE TABLE IF NOT EXISTS together_test (id UUID PRIMARY KEY, run UUID NOT NULL, note TEXT NOT NULL)"
INSERT = "INSERT INTO together_test (id, run, note) VALUES (%s, %s, %s)"
INSERT_MANY = ("INSERT INTO together_test (id, run, note) SELECT i, %s, 'it''s %%s; -- not SQL' "
               "FROM unnest(%s::UUID[]) i RETURNING id")


@pytest.fixture
def run(app_server: RunningServer) -> uuid.UUID:
    """This test's rows in the shared table."""
    with psycopg.connect(app_server.database_url, autocommit=True) as conn:
        conn.execute(TABLE)
    return uuid.uuid4()


def notes(url: str, run: uuid.UUID) -> list[str]:
    return sorted(row[0] for row in db_rows(url, "SELECT note FROM together_test WHERE run = %s", (run,)))


async def test_two_round_trips_one_transaction_each_statement_its_own_rows(
    pool: Pool, run: uuid.UUID, app_server: RunningServer
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()

    async def work(txn: retry.Together) -> tuple[object, ...]:
        inserted, level, txid = await txn.send(
            (INSERT_MANY, (run, arrays.uuids([a, b]))),
            ("SELECT current_setting('transaction_isolation')", ()),
            ("SELECT txid_current()", ()),
        )
        # Nothing is visible outside the transaction before the last round trip.
        assert notes(app_server.database_url, run) == []
        deleted, same_txid, empty = await txn.send(
            ("DELETE FROM together_test WHERE id = %s RETURNING note", (b,)),
            ("SELECT txid_current()", ()),
            ("UPDATE together_test SET note = note WHERE id = %s", (uuid.uuid4(),)),
            commit=True,
        )
        assert txn.round_trips == 2
        return sorted(r[0] for r in inserted), level[0][0], txid == same_txid, deleted, empty

    got = await retry.run_together(pool, work, policy=POLICY, isolation=IsolationLevel.READ_COMMITTED)
    assert got == (sorted([a, b]), "read committed", True, [("it's %s; -- not SQL",)], [])
    assert notes(app_server.database_url, run) == ["it's %s; -- not SQL"]
    async with pool.connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_serialization_failure_in_the_last_round_trip_re_runs_the_whole(
    pool: Pool, run: uuid.UUID, app_server: RunningServer
) -> None:
    attempts: list[int] = []
    before = retry.retry_counts["40001"]

    async def work(txn: retry.Together) -> int:
        attempts.append(1)
        await txn.send((INSERT, (uuid.uuid4(), run, f"try {len(attempts)}")))
        last: list[retry.Statement] = [] if len(attempts) > 1 else [(RAISE, ())]
        await txn.send(*last, commit=True)
        return len(attempts)

    assert await retry.run_together(pool, work, policy=POLICY, isolation=IsolationLevel.SERIALIZABLE) == 2
    assert notes(app_server.database_url, run) == ["try 2"]  # the first attempt left nothing
    assert retry.retry_counts["40001"] == before + 1


async def test_any_other_failure_rolls_back_and_propagates(
    pool: Pool, run: uuid.UUID, app_server: RunningServer
) -> None:
    class Refused(Exception):
        pass

    async def fails_in_sql(txn: retry.Together) -> None:
        await txn.send((INSERT, (uuid.uuid4(), run, "kept?")))
        await txn.send((INSERT, (uuid.uuid4(), run, None)), commit=True)

    async def fails_in_python(txn: retry.Together) -> None:
        await txn.send((INSERT, (uuid.uuid4(), run, "kept?")))
        raise Refused

    with pytest.raises(psycopg.errors.NotNullViolation):
        await retry.run_together(pool, fails_in_sql, policy=POLICY, isolation=IsolationLevel.READ_COMMITTED)
    with pytest.raises(Refused):
        await retry.run_together(pool, fails_in_python, policy=POLICY, isolation=IsolationLevel.READ_COMMITTED)
    assert notes(app_server.database_url, run) == []
    for _ in range(pool.max_size):  # every pooled connection came back idle, none left in a transaction
        async with pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_work_that_never_commits_is_a_bug(pool: Pool) -> None:
    async def forgets(txn: retry.Together) -> None:
        await txn.send(("SELECT 1", ()))

    with pytest.raises(AssertionError, match="commit"):
        await retry.run_together(pool, forgets, policy=POLICY, isolation=IsolationLevel.READ_COMMITTED)
