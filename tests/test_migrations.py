from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from conftest import _with_database
from paysvc.db.migrate import applied_versions, available, migrate


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    name = f"paysvc_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_migrations_apply_once_and_are_recorded(empty_database: str) -> None:
    versions = [m.version for m in available()]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrate(empty_database) == versions
    assert migrate(empty_database) == []
    assert applied_versions(empty_database) == versions


def test_migrations_from_several_processes_at_once(empty_database: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_database))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = sorted(v for r in results for v in r)
    assert applied == [m.version for m in available()]  # each version applied by exactly one runner
