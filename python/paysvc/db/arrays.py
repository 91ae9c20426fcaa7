"""SQL array parameters as array literals (``'{a,b,c}'``), built here instead of by psycopg.

The group commit's write statement takes some thirty arrays, each as long as the batch. psycopg
adapts a Python list element by element in Python, choosing a dumper for each list; for a batch
of 15 payments that took about 1.9 ms, ten times what these few joins take (measured with
timeit; it was 12% of an API process's CPU under `paysvc bench` spread). The statement casts each
parameter (``%s::UUID[]``), so the server parses the literal; both PostgreSQL and CockroachDB accept
the same array literal syntax. Every function here is checked against the server's own parsing in
tests/test_arrays.py.

The literal grammar: ``{e1,e2,…}``; an element is ``NULL`` unquoted, or a double-quoted string in
which ``"`` and ``\\`` are escaped with a backslash. Numbers and UUIDs need no quotes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

NULL = "NULL"


def _quoted(text: str) -> str:
    assert "\x00" not in text, "NUL never reaches SQL (the API refuses it with a 400)"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uuids(values: Sequence[uuid.UUID | None]) -> str:
    return "{" + ",".join([NULL if v is None else str(v) for v in values]) + "}"


def ints(values: Sequence[int | None]) -> str:
    for v in values:
        assert v is None or type(v) is int, "integers only (money is never a float)"
    return "{" + ",".join([NULL if v is None else str(v) for v in values]) + "}"


def texts(values: Sequence[str | None]) -> str:
    return "{" + ",".join([NULL if v is None else _quoted(v) for v in values]) + "}"


def byteas(values: Sequence[bytes | None]) -> str:
    # bytea's hex input format, \x…, with the backslash escaped inside the quoted element.
    return "{" + ",".join([NULL if v is None else '"\\\\x' + v.hex() + '"' for v in values]) + "}"


def jsons(values: Sequence[object]) -> str:
    """JSON documents (for a ``JSONB[]`` cast); None is SQL NULL, not JSON null."""
    return texts([None if v is None else msgspec.json.encode(v).decode() for v in values])


def timestamps(values: Sequence[datetime | None]) -> str:
    for v in values:
        assert v is None or v.tzinfo is not None, "timestamps are aware (TIMESTAMPTZ)"
    return texts([None if v is None else v.isoformat() for v in values])
