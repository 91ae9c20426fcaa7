"""The CockroachDB dialect (db/dialect.py, db/migrate.py, reads.py) and the ambiguous commit (40003).

No CockroachDB runs here. What can be checked is checked against the real PostgreSQL: detection,
that PostgreSQL never receives CockroachDB-only SQL, and, by marking a real pool as CockroachDB,
which statements would carry the follower-read clause (PostgreSQL rejects the clause with a syntax
error, which proves it was sent, and sent only where intended): the single-object GETs, and only
when the request asked with ``Paysvc-Read-Consistency: stale``; never lists or events.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from conftest import Api, RunningServer, new_tenant, start_server
from paysvc import ids, reads
from paysvc.config import Settings, SettingsError
from paysvc.db import dialect, retry
from paysvc.db.dialect import FOLLOWER_READ_CLAUSE, Engine, PoolDialect
from paysvc.db.migrate import available, cockroach_variants, for_engine
from paysvc.db.pool import Pool, make_pool
from paysvc.db.retry import RetryPolicy, run_transaction
from paysvc.errors import ApiError

CRDB_VERSION = (
    "CockroachDB CCL v25.2.0 (x86_64-pc-linux-gnu, built 2025/05/05 16:17:49, go1.23.7 X:nocoverageredesign)"
)


# ---- detection -------------------------------------------------------------------------------

async def test_detection_on_the_real_postgres_is_postgres(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await dialect.detect(conn) is Engine.POSTGRES
        assert await dialect.configure_session(conn) is Engine.POSTGRES
        row = await (await conn.execute("SHOW enable_seqscan")).fetchone()
        assert row == ("off",)


def test_version_strings() -> None:
    assert dialect.engine_of_version(CRDB_VERSION) is Engine.COCKROACH
    assert dialect.engine_of_version("PostgreSQL 18.0 on x86_64-pc-linux-gnu, compiled by gcc") is Engine.POSTGRES
    assert dialect.engine_of_version("") is Engine.POSTGRES


# ---- the setting -----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    (None, False), ("", False), ("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False),
])
def test_follower_reads_setting(raw: str | None, expected: bool) -> None:
    env = {} if raw is None else {"PAYSVC_FOLLOWER_READS": raw}
    assert Settings.from_env(env).follower_reads is expected


def test_follower_reads_setting_refuses_garbage() -> None:
    with pytest.raises(SettingsError, match="follower_reads"):
        Settings.from_env({"PAYSVC_FOLLOWER_READS": "maybe"})


async def test_the_setting_is_ignored_on_postgres_and_said_once(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="paysvc.db.dialect")
    pool = make_pool(Settings(database_url=database_url, pool_size=2, follower_reads=True), database_url)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:  # both connections were configured
            await conn.execute("SELECT 1")
        assert dialect.of(pool) == PoolDialect(Engine.POSTGRES, follower_reads_requested=True)
        assert not dialect.follower_reads_on(pool)
        said = [r for r in caplog.records if "PAYSVC_FOLLOWER_READS" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING and "ignored" in said[0].getMessage()
    finally:
        await pool.close()

    caplog.clear()
    quiet = make_pool(Settings(database_url=database_url, pool_size=1), database_url)
    await quiet.open(wait=True)
    try:
        assert dialect.of(quiet) == PoolDialect(Engine.POSTGRES, follower_reads_requested=False)
        assert not [r for r in caplog.records if "PAYSVC_FOLLOWER_READS" in r.getMessage()]
    finally:
        await quiet.close()


# ---- follower reads: the SQL -----------------------------------------------------------------

def test_follower_read_clause_goes_after_the_table_of_the_from_clause() -> None:
    sql = "SELECT id, seq FROM entries WHERE tenant_id = %s AND account_id = %s ORDER BY seq DESC LIMIT %s"
    assert dialect.follower_read(sql) == (
        "SELECT id, seq FROM entries AS OF SYSTEM TIME follower_read_timestamp() "
        "WHERE tenant_id = %s AND account_id = %s ORDER BY seq DESC LIMIT %s"
    )
    multiline = "\nSELECT id FROM refunds\nWHERE tenant_id = %s\nORDER BY created_at DESC LIMIT %s"
    assert dialect.follower_read(multiline) == (
        "SELECT id FROM refunds AS OF SYSTEM TIME follower_read_timestamp()\nWHERE tenant_id = %s\n"
        "ORDER BY created_at DESC LIMIT %s"
    )
    assert dialect.follower_read("SELECT id FROM accounts") == (
        "SELECT id FROM accounts AS OF SYSTEM TIME follower_read_timestamp()")


@pytest.mark.parametrize("sql", [
    "SELECT a.id FROM accounts a JOIN entries e ON e.account_id = a.id",
    "SELECT id FROM (SELECT id FROM accounts) AS t",
    "SELECT id FROM accounts WHERE id IN (SELECT account_id FROM entries)",
    "SELECT id FROM accounts WHERE id = %s FOR UPDATE",
    "SELECT id FROM accounts WHERE id = %s FOR SHARE",
    "SELECT id FROM accounts AS OF SYSTEM TIME follower_read_timestamp()",
    "SELECT id FROM accounts UNION SELECT id FROM payments",
    "SELECT 1",
    "UPDATE accounts SET posted = 0",
    "DELETE FROM accounts",
    "SELECT id FROM accounts; SELECT id FROM payments",
])
def test_follower_read_refuses_what_it_cannot_place(sql: str) -> None:
    with pytest.raises(ValueError):
        dialect.follower_read(sql)


def _read_statements() -> dict[str, str]:
    """Every SELECT statement reads.py defines, by name."""
    return {name: value for name, value in vars(reads).items()
            if name.isupper() and isinstance(value, str) and value.lstrip().upper().startswith("SELECT")}


class _Pool:
    """Stands for a pool in dialect's registry (which only needs an object to key on)."""


INTENDED_FOLLOWER_READS = {"GET_ACCOUNT", "GET_PAYMENT"}  # the single-object GETs (brief, section 2b)
NEVER_FOLLOWER_READS = {  # lists with their cursors and parents, the events feed, the fee schedule
    "LIST_ACCOUNTS", "LIST_ACCOUNTS_AFTER",
    "LIST_PAYMENTS", "LIST_PAYMENTS_AFTER", "LIST_PAYMENTS_BY_STATUS", "LIST_PAYMENTS_BY_STATUS_AFTER",
    "LIST_ENTRIES", "LIST_ENTRIES_AFTER", "LIST_REFUNDS", "LIST_REFUNDS_AFTER",
    "ACCOUNT_CURSOR", "PAYMENT_CURSOR", "ENTRY_CURSOR", "REFUND_CURSOR", "EVENT_CURSOR",
    "ACCOUNT_KEY", "PAYMENT_KEY", "LIST_EVENTS", "LIST_EVENTS_OF_TYPE", "GET_FEE_RULES",
    "GET_REVIEW", "REVIEW_CURSOR", "LIST_REVIEWS", "LIST_REVIEWS_AFTER",
}


def test_exactly_the_single_object_reads_may_be_follower_reads() -> None:
    statements = _read_statements()
    assert INTENDED_FOLLOWER_READS | NEVER_FOLLOWER_READS == statements.keys()  # a new statement must be placed
    assert {name for name, sql in statements.items() if sql in reads.FOLLOWER_READ_OBJECTS} == INTENDED_FOLLOWER_READS

    cockroach, cockroach_off, postgres, unknown = _Pool(), _Pool(), _Pool(), _Pool()
    dialect.remember(cockroach, Engine.COCKROACH, follower_reads=True)
    dialect.remember(cockroach_off, Engine.COCKROACH, follower_reads=False)
    dialect.remember(postgres, Engine.POSTGRES, follower_reads=True)
    for name in INTENDED_FOLLOWER_READS:
        sql = statements[name]
        stale, served = reads.object_sql(cockroach, sql, reads.STALE)  # type: ignore[arg-type]
        assert served == reads.STALE, name
        assert stale.count(FOLLOWER_READ_CLAUSE) == 1, name
        # The clause sits right after the table, before WHERE, and nothing else changed.
        assert re.search(rf"FROM \w+ {re.escape(FOLLOWER_READ_CLAUSE)}\s+WHERE ", stale), name
        assert stale.replace(f" {FOLLOWER_READ_CLAUSE}", "") == sql.strip(), name
        # Both opt-ins are needed: the request's and the operator's on CockroachDB.
        assert reads.object_sql(cockroach, sql, reads.CURRENT) == (sql, reads.CURRENT), name  # type: ignore[arg-type]
        for pool in (cockroach_off, postgres, unknown):
            for asked in (reads.CURRENT, reads.STALE):
                assert reads.object_sql(pool, sql, asked) == (sql, reads.CURRENT), name  # type: ignore[arg-type]
    for name in NEVER_FOLLOWER_READS:
        with pytest.raises(KeyError):
            reads.object_sql(cockroach, statements[name], reads.STALE)  # type: ignore[arg-type]
    for sql in statements.values():
        assert "AS OF SYSTEM TIME" not in sql  # the shared statements stay shared SQL


# ---- follower reads: what a real pool sends --------------------------------------------------

@pytest.fixture
async def plain_pool(database_url: str) -> AsyncIterator[Pool]:
    pool: Pool = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False,
                                     kwargs={"autocommit": True})
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        dialect.remember(pool, Engine.POSTGRES, follower_reads=False)
        await pool.close()


class _Ledger:
    """One tenant's accounts, payment, refund and entry, made through the API."""

    def __init__(self, tenant: uuid.UUID, alice: str, bob: str, payment: str, refund: str) -> None:
        self.tenant, self.alice, self.bob, self.payment, self.refund = tenant, alice, bob, payment, refund


async def _ledger(api: Api) -> _Ledger:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    paid = await api.pay(alice["id"], bob["id"], 100)
    assert paid.status_code == 201, paid.text
    refunded = await api.refund(paid.json()["id"], 10)
    assert refunded.status_code == 201, refunded.text
    tenant = ids.decode(ids.TENANT, api.tenant_id)
    assert tenant is not None
    return _Ledger(tenant, alice["id"], bob["id"], paid.json()["id"], refunded.json()["id"])


async def test_only_single_object_reads_asked_stale_carry_the_clause_to_the_server(
    api: Api, app_server: RunningServer, plain_pool: Pool
) -> None:
    led = await _ledger(api)
    tenant, pool = led.tenant, plain_pool
    newest_entry = (await reads.list_entries(pool, tenant, led.alice, 1, None)).data[0].id
    missing_account = ids.encode(ids.ACCOUNT, uuid.uuid4())
    missing_payment = ids.encode(ids.PAYMENT, uuid.uuid4())

    stale_objects: list[tuple[str, Any]] = [
        ("account", lambda: reads.get_account(pool, tenant, led.alice, reads.STALE)),
        ("payment", lambda: reads.get_payment(pool, tenant, led.payment, reads.STALE)),
    ]
    current: list[tuple[str, Any]] = [
        ("account", lambda: reads.get_account(pool, tenant, led.alice)),
        ("account asked current", lambda: reads.get_account(pool, tenant, led.alice, reads.CURRENT)),
        ("payment", lambda: reads.get_payment(pool, tenant, led.payment)),
        ("payment asked current", lambda: reads.get_payment(pool, tenant, led.payment, reads.CURRENT)),
        ("accounts", lambda: reads.list_accounts(pool, tenant, 10, None)),
        ("accounts after", lambda: reads.list_accounts(pool, tenant, 10, led.bob)),
        ("payments", lambda: reads.list_payments(pool, tenant, 10, None, None)),
        ("payments after", lambda: reads.list_payments(pool, tenant, 10, led.payment, None)),
        ("payments by status", lambda: reads.list_payments(pool, tenant, 10, None, "succeeded")),
        ("payments by status after", lambda: reads.list_payments(pool, tenant, 10, led.payment, "succeeded")),
        ("entries", lambda: reads.list_entries(pool, tenant, led.alice, 10, None)),
        ("entries after", lambda: reads.list_entries(pool, tenant, led.alice, 10, newest_entry)),
        ("refunds", lambda: reads.list_refunds(pool, tenant, led.payment, 10, None)),
        ("refunds after", lambda: reads.list_refunds(pool, tenant, led.payment, 10, led.refund)),
        ("events", lambda: reads.list_events(pool, tenant, 10, None, None)),
        ("events of type", lambda: reads.list_events(pool, tenant, 10, None, "payment.succeeded")),
        ("fee schedule", lambda: reads.get_fee_schedule(pool, tenant)),
    ]

    # On PostgreSQL (even with the setting on) every read works, and a stale ask is served current.
    dialect.remember(pool, Engine.POSTGRES, follower_reads=True)
    for _name, call in stale_objects + current:
        await call()
    assert await reads.get_account(pool, tenant, led.alice, reads.STALE) == await reads.get_account(
        pool, tenant, led.alice)
    account, served = await reads.get_account(pool, tenant, led.alice, reads.STALE)
    assert served == reads.CURRENT and account.balance.posted == 1_000 - 100 + 10
    payment, served = await reads.get_payment(pool, tenant, led.payment, reads.STALE)
    assert served == reads.CURRENT and payment.amount_refunded == 10

    # Marked as CockroachDB with follower reads: a single-object read asked stale sends the clause
    # (PostgreSQL rejects it: proof it was sent), and nothing else does.
    dialect.remember(pool, Engine.COCKROACH, follower_reads=True)
    for name, call in stale_objects:
        with pytest.raises(pg_errors.SyntaxError, match=r"at or near \"SYSTEM\""):
            await call()
        assert name
    for name, call in current:
        result = await call()
        if isinstance(result, tuple):
            assert result[1] == reads.CURRENT, name
    # Cursor and parent lookups stay current: unknown ids answer as always.
    with pytest.raises(ApiError) as cursor:
        await reads.list_accounts(pool, tenant, 10, missing_account)
    assert cursor.value.code == "invalid_cursor"
    with pytest.raises(ApiError) as parent:
        await reads.list_refunds(pool, tenant, missing_payment, 10, None)
    assert parent.value.code == "resource_missing"

    # Marked as CockroachDB without the operator's opt-in: a stale ask is served current.
    dialect.remember(pool, Engine.COCKROACH, follower_reads=False)
    for name, call in stale_objects:
        assert (await call())[1] == reads.CURRENT, name


async def test_a_stale_read_that_finds_nothing_is_read_again_current(
    api: Api, app_server: RunningServer, plain_pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cannot run AS OF SYSTEM TIME, so the follower-read forms are replaced by SQL it
    runs: the statement itself (a stale snapshot that holds the object), or the statement with
    ``AND false`` (a snapshot taken before the object was created)."""
    led = await _ledger(api)
    pool, tenant = plain_pool, led.tenant
    dialect.remember(pool, Engine.COCKROACH, follower_reads=True)
    missing = ids.encode(ids.ACCOUNT, uuid.uuid4())

    for query in reads.FOLLOWER_READ_OBJECTS:
        monkeypatch.setitem(reads._FOLLOWER_READ_FORM, query, query)
    account, served = await reads.get_account(pool, tenant, led.alice, reads.STALE)
    assert served == reads.STALE and account.id == led.alice
    payment, served = await reads.get_payment(pool, tenant, led.payment, reads.STALE)
    assert served == reads.STALE and payment.id == led.payment

    for query in reads.FOLLOWER_READ_OBJECTS:
        monkeypatch.setitem(reads._FOLLOWER_READ_FORM, query, query + " AND false")
    assert await reads.get_account(pool, tenant, led.alice, reads.STALE) == (account, reads.CURRENT)
    assert await reads.get_payment(pool, tenant, led.payment, reads.STALE) == (payment, reads.CURRENT)
    # Missing everywhere (or another tenant's): the usual 404, never anything about staleness.
    for ident in (missing, "acct_nonsense"):
        with pytest.raises(ApiError) as raised:
            await reads.get_account(pool, tenant, ident, reads.STALE)
        assert raised.value.code == "resource_missing" and raised.value.param == "id"
    other = ids.decode(ids.TENANT, (await new_tenant(api.http, "other")).tenant_id)
    assert other is not None
    with pytest.raises(ApiError) as raised:
        await reads.get_payment(pool, other, led.payment, reads.STALE)
    assert raised.value.code == "resource_missing"


# ---- follower reads: the Paysvc-Read-Consistency header --------------------------------------

HEADER = "Paysvc-Read-Consistency"


async def test_the_header_is_accepted_with_both_values_and_postgres_reads_current(api: Api) -> None:
    led = await _ledger(api)
    for path in (f"/v1/accounts/{led.alice}", f"/v1/payments/{led.payment}"):
        plain = await api.http.get(path, headers=api.headers)
        assert plain.status_code == 200, plain.text
        assert plain.headers[HEADER] == "current"
        for value in ("current", "stale"):
            r = await api.http.get(path, headers={**api.headers, HEADER: value})
            assert r.status_code == 200, (path, value, r.text)
            assert r.json() == plain.json(), (path, value)
            assert r.headers[HEADER] == "current", (path, value)  # PostgreSQL: always current
    # A missing object is the usual 404, asked stale or not.
    missing = ids.encode(ids.PAYMENT, uuid.uuid4())
    r = await api.http.get(f"/v1/payments/{missing}", headers={**api.headers, HEADER: "stale"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    assert HEADER not in r.headers
    # Lists and the feed do not take it: they never answer it.
    for path in ("/v1/accounts", "/v1/payments", "/v1/events", f"/v1/accounts/{led.alice}/entries"):
        r = await api.http.get(path, headers={**api.headers, HEADER: "stale"})
        assert r.status_code == 200 and HEADER not in r.headers, path


@pytest.mark.parametrize("value", ["Stale", "STALE", "fresh", "", "stale, current", "follower"])
async def test_any_other_value_is_a_400_naming_the_header(api: Api, value: str) -> None:
    account = await api.account()
    for path in (f"/v1/accounts/{account['id']}", f"/v1/payments/{ids.encode(ids.PAYMENT, uuid.uuid4())}"):
        r = await api.http.get(path, headers={**api.headers, HEADER: value})
        assert r.status_code == 400, (path, value, r.text)
        error = r.json()["error"]
        assert set(error) == {"type", "code", "message", "param", "request_id"}
        assert error["type"] == "invalid_request_error" and error["code"] == "parameter_invalid"
        assert error["param"] == HEADER
        assert HEADER in error["message"]
        assert error["request_id"] == r.headers["X-Request-Id"]


async def test_the_header_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/schema/openapi.json")).json()
    for path in ("/v1/accounts/{account_id}", "/v1/payments/{payment_id}"):
        operation = doc["paths"][path]["get"]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == HEADER]
        assert parameter["in"] == "header" and parameter["required"] is False
        assert parameter["schema"]["enum"] == ["current", "stale"]
        assert parameter["schema"]["default"] == "current"
        assert "PAYSVC_FOLLOWER_READS" in parameter["description"]
        served = operation["responses"]["200"]["headers"][HEADER]
        assert served["schema"]["enum"] == ["current", "stale"] and served["required"] is True
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/Account" if "account" in path else "/Payment")
    for path, operation in ((p, ops["get"]) for p, ops in doc["paths"].items() if "get" in ops):
        if path not in ("/v1/accounts/{account_id}", "/v1/payments/{payment_id}"):
            assert HEADER not in {p["name"] for p in operation.get("parameters", [])}, path


async def test_a_cockroach_marked_server_sends_the_clause_only_for_opted_in_single_object_gets(
    api: Api, app_server: RunningServer
) -> None:
    """A second app server with the setting on, whose pool is then marked CockroachDB: a request
    that asks for stale on a single-object GET is answered 500 (PostgreSQL refused the clause:
    proof it was sent); every other request is answered 200 from current data."""
    led = await _ledger(api)
    settings = Settings(database_url=app_server.database_url, pool_size=2, rate_limit_per_s=0,
                        expiry_sweep_interval_s=3_600, follower_reads=True)
    server, thread, base_url = await asyncio.to_thread(start_server, settings)
    try:
        pool = server.config.app.state.pool
        assert dialect.of(pool) == PoolDialect(Engine.POSTGRES, follower_reads_requested=True)
        objects = (f"/v1/accounts/{led.alice}", f"/v1/payments/{led.payment}")
        lists = ("/v1/accounts", "/v1/payments", "/v1/payments?status=succeeded", "/v1/events",
                 f"/v1/accounts/{led.alice}/entries", f"/v1/payments/{led.payment}/refunds", "/v1/fee-schedule")
        async with httpx.AsyncClient(base_url=base_url, headers=api.headers, timeout=30) as client:
            dialect.remember(pool, Engine.COCKROACH, follower_reads=True)
            for path in objects:
                r = await client.get(path, headers={HEADER: "stale"})
                assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", (path, r.text)
                for headers in ({}, {HEADER: "current"}):
                    r = await client.get(path, headers=headers)
                    assert r.status_code == 200 and r.headers[HEADER] == "current", (path, headers, r.text)
            for path in lists:
                r = await client.get(path, headers={HEADER: "stale"})
                assert r.status_code == 200, (path, r.text)

            # The operator's opt-in is needed too.
            dialect.remember(pool, Engine.COCKROACH, follower_reads=False)
            for path in objects:
                r = await client.get(path, headers={HEADER: "stale"})
                assert r.status_code == 200 and r.headers[HEADER] == "current", (path, r.text)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)


# ---- hash-sharded indexes (CockroachDB migration variants) ------------------------------------

def test_postgres_migrations_are_the_default_and_untouched() -> None:
    for migration in available():
        assert for_engine(migration, Engine.POSTGRES) == migration
        assert "USING HASH" not in migration.sql.upper()


def test_each_cockroach_variant_replaces_one_existing_index() -> None:
    variants = cockroach_variants()
    assert {v.name for v in variants} == {"idempotency_keys_by_created", "payments_open_holds"}
    shared = "\n".join(m.sql for m in available())
    cockroach = "\n".join(for_engine(m, Engine.COCKROACH).sql for m in available())
    for variant in variants:
        original = re.findall(rf"CREATE INDEX IF NOT EXISTS {variant.name} ON [^;]*;", shared)
        assert len(original) == 1, variant.name
        # Same name, table and columns; only the hash sharding is added.
        assert variant.sql == original[0].removesuffix(";") + " USING HASH;"
        assert cockroach.count(variant.sql) == 1 and original[0] not in cockroach
    # Nothing else differs.
    assert cockroach.count("USING HASH") == len(variants)
    for variant in variants:
        cockroach = cockroach.replace(variant.sql, re.sub(r" USING HASH;$", ";", variant.sql))
    assert cockroach == shared


def test_the_applied_postgres_indexes_are_plain_btrees(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
            ([v.name for v in cockroach_variants()],),
        ).fetchall())
    assert rows == {
        "idempotency_keys_by_created":
            "CREATE INDEX idempotency_keys_by_created ON public.idempotency_keys USING btree (created_at)",
        "payments_open_holds": "CREATE INDEX payments_open_holds ON public.payments USING btree (status, expires_at)",
    }


# ---- ambiguous commit (SQLSTATE 40003) ---------------------------------------------------------

# The server itself raises 40003, as CockroachDB does when it cannot tell whether a commit applied.
RAISE_AMBIGUOUS = (
    "DO $$ BEGIN RAISE EXCEPTION 'result is ambiguous (test)' USING ERRCODE = '40003'; END $$"
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = make_pool(Settings(database_url=database_url, pool_size=2), database_url)
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_server_error_is_classified_ambiguous(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(pg_errors.StatementCompletionUnknown) as raised:
            await conn.execute(RAISE_AMBIGUOUS)
    assert raised.value.sqlstate == retry.AMBIGUOUS_SQLSTATE == "40003"
    assert retry._classify(raised.value, committing=False) == "ambiguous"
    assert retry._classify(raised.value, committing=True) == "ambiguous"


async def test_ambiguous_idempotent_work_is_run_again(pool: Pool) -> None:
    attempts: list[int] = []

    async def work(conn: retry.Conn) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await conn.execute(RAISE_AMBIGUOUS)
        row = await (await conn.execute("SELECT 'done'")).fetchone()
        assert row is not None
        return str(row[0])

    before = retry.retry_counts["ambiguous"]
    policy = RetryPolicy(max_attempts=3, backoff_base_ms=1, backoff_cap_ms=1)
    assert await run_transaction(pool, work, policy=policy, idempotent=True) == "done"
    assert len(attempts) == 2
    assert retry.retry_counts["ambiguous"] == before + 1


async def test_ambiguous_non_idempotent_work_is_503_and_never_run_again(pool: Pool) -> None:
    attempts: list[int] = []

    async def work(conn: retry.Conn) -> None:
        attempts.append(1)
        await conn.execute(RAISE_AMBIGUOUS)

    before = retry.retry_counts["ambiguous"]
    policy = RetryPolicy(max_attempts=5, backoff_base_ms=1, backoff_cap_ms=1)
    with pytest.raises(ApiError) as raised:
        await run_transaction(pool, work, policy=policy, idempotent=False)
    assert raised.value.status == 503 and raised.value.code == "service_unavailable"
    assert raised.value.retry_after_s is not None and raised.value.retry_after_s >= 1
    assert "unknown" in raised.value.message
    assert len(attempts) == 1
    assert retry.retry_counts["ambiguous"] == before
