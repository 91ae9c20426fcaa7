"""db/arrays.py: every array literal we build is parsed by the real server back into the same values."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from paysvc.db import arrays

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | I64 | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def parsed(conn: psycopg.Connection[Any], literal: str, sql_type: str) -> list[Any]:
    row = conn.execute(f"SELECT %s::{sql_type}", (literal,)).fetchone()
    assert row is not None
    return list(row[0])


@SETTINGS
@given(st.lists(st.none() | TEXT, max_size=8))
@example(['"', "\\", "{", "}", ",", " ", "NULL", "null", "", "a b", '\\"', "é✓"])
def test_texts_round_trip(conn: psycopg.Connection[Any], values: list[str | None]) -> None:
    assert parsed(conn, arrays.texts(values), "TEXT[]") == values


@SETTINGS
@given(st.lists(st.none() | I64, max_size=8))
def test_ints_round_trip(conn: psycopg.Connection[Any], values: list[int | None]) -> None:
    assert parsed(conn, arrays.ints(values), "BIGINT[]") == values


@SETTINGS
@given(st.lists(st.none() | st.uuids(), max_size=8))
def test_uuids_round_trip(conn: psycopg.Connection[Any], values: list[uuid.UUID | None]) -> None:
    assert parsed(conn, arrays.uuids(values), "UUID[]") == values


@SETTINGS
@given(st.lists(st.none() | st.binary(max_size=64), max_size=8))
@example([b"", b"\x00", b"\\x", b'"', b"{,}"])
def test_byteas_round_trip(conn: psycopg.Connection[Any], values: list[bytes | None]) -> None:
    assert [None if v is None else bytes(v) for v in parsed(conn, arrays.byteas(values), "BYTEA[]")] == values


@SETTINGS
@given(st.lists(st.none() | st.dictionaries(TEXT, JSON, max_size=4), max_size=5))
def test_jsons_round_trip(conn: psycopg.Connection[Any], values: list[dict[str, Any] | None]) -> None:
    assert parsed(conn, arrays.jsons(values), "JSONB[]") == values


@SETTINGS
@given(st.lists(st.none() | st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                                         timezones=st.just(UTC)), max_size=6))
def test_timestamps_round_trip(conn: psycopg.Connection[Any], values: list[datetime | None]) -> None:
    assert parsed(conn, arrays.timestamps(values), "TIMESTAMPTZ[]") == values


def test_refuses_what_sql_must_never_see() -> None:
    with pytest.raises(AssertionError):
        arrays.ints([1.5])  # type: ignore[list-item]
    with pytest.raises(AssertionError):
        arrays.ints([True])
    with pytest.raises(AssertionError):
        arrays.texts(["a\x00b"])
    with pytest.raises(AssertionError):
        arrays.timestamps([datetime(2026, 1, 1)])  # naive
    assert arrays.timestamps([datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1)]) == '{"2026-01-01T01:00:00+00:00"}'
