"""db/retry.run_read: a read cancelled with a serialization failure (40001, raised by the real
server here) is re-run; other errors, and the last failure, propagate unchanged."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from paysvc.db import retry
from paysvc.db.pool import Pool

RAISE = "DO $$ BEGIN RAISE EXCEPTION 'test: cancelled read' USING ERRCODE = '{}'; END $$"


def failing_read(failures: int, sqlstate: str) -> tuple[Any, list[int]]:
    calls: list[int] = []

    async def read(conn: retry.Conn) -> int:
        calls.append(1)
        if len(calls) <= failures:
            await conn.execute(RAISE.format(sqlstate))
        row = await (await conn.execute("SELECT 42")).fetchone()
        assert row is not None
        return int(str(row[0]))

    return read, calls


async def test_a_serialization_failure_is_read_again(pool: Pool) -> None:
    before = retry.retry_counts["40001"]
    read, calls = failing_read(2, "40001")
    assert await retry.run_read(pool, read) == 42
    assert len(calls) == 3
    assert retry.retry_counts["40001"] == before + 2


async def test_other_errors_are_not_retried(pool: Pool) -> None:
    read, calls = failing_read(1, "22012")
    with pytest.raises(psycopg.errors.DivisionByZero):
        await retry.run_read(pool, read)
    assert len(calls) == 1


async def test_the_last_failure_propagates(pool: Pool) -> None:
    read, calls = failing_read(100, "40001")
    with pytest.raises(psycopg.errors.SerializationFailure):
        await retry.run_read(pool, read)
    assert len(calls) == retry.READ_POLICY.max_attempts
