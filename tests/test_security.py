"""Security checks: request limits (body size, list limits, per-key rate limit), no SQL built by
string formatting, and no secret in any log line."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import (
    ADMIN_TOKEN,
    Api,
    RunningServer,
    account_row_locked,
    extra_server,
    new_tenant,
    start_server,
)
from paysvc import admin, ids
from paysvc.config import Settings
from paysvc.logs import JsonFormatter, TextFormatter, add_secret, redact

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "paysvc"
MAX_BODY = 64 * 1024
BATCH = ("POST", "/v1/payments/batch")  # its own body limit (1 MiB), per the brief
BATCH_MAX_BODY = 1024 * 1024


async def _routes(http: httpx.AsyncClient) -> dict[tuple[str, str], dict[str, Any]]:
    r = await http.get("/schema/openapi.json")
    assert r.status_code == 200
    return {
        (method.upper(), path): operation
        for path, operations in r.json()["paths"].items()
        for method, operation in operations.items() if method in {"get", "post", "put", "patch", "delete"}
    }


def _fill(template: str, **values: str) -> str:
    names = ("account_id", "payment_id", "endpoint_id", "delivery_id")
    return template.format(**{name: values.get(name, f"x_{name}") for name in names})


def _error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


# --- Limits ---------------------------------------------------------------------------------------

async def test_every_body_over_the_limit_is_413_before_authentication(http: httpx.AsyncClient, api: Api) -> None:
    routes = await _routes(http)
    writes = [route for route in routes if route[0] in {"POST", "PUT", "PATCH"}]
    assert ("POST", "/admin/v1/tenants") in writes and ("PUT", "/v1/fee-schedule") in writes
    payment_id = ids.encode(ids.PAYMENT, uuid.uuid4())
    for method, template in writes:
        limit = BATCH_MAX_BODY if (method, template) == BATCH else MAX_BODY
        path = _fill(template, payment_id=payment_id, account_id=ids.encode(ids.ACCOUNT, uuid.uuid4()))
        big = b'{"metadata": {"k": "' + b"x" * limit + b'"}}'
        for headers in ({}, {"Authorization": "Bearer sk_not-a-real-key"}, api.headers):
            r = await http.request(method, path, content=big, headers={**headers, "Idempotency-Key": "big"})
            assert r.status_code == 413 and _error_code(r) == "body_too_large", (method, template, r.text)
            assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
        # Exactly at the limit is not too large: without a key it gets as far as authentication.
        r = await http.request(method, path, content=b" " * limit)
        assert r.status_code == 401, (method, template, r.text)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 1):
            yield b" " * 1024

    r = await http.put("/v1/fee-schedule", content=chunks(), headers=api.headers)
    assert r.status_code == 413 and _error_code(r) == "body_too_large"


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000000000000000000000", "ten", "1.5", ""])
async def test_limit_outside_1_to_100_is_400_on_every_list_route(http: httpx.AsyncClient, api: Api,
                                                                 limit: str) -> None:
    routes = await _routes(http)
    lists = {route for route, operation in routes.items()
             if route[0] == "GET" and any(p["name"] == "limit" for p in operation.get("parameters", []))}
    assert lists >= {("GET", "/v1/accounts"), ("GET", "/v1/accounts/{account_id}/entries"), ("GET", "/v1/payments"),
                     ("GET", "/v1/payments/{payment_id}/refunds"), ("GET", "/v1/events")}
    _, account = await api.funded_account(100)
    payment = (await api.get("/v1/payments")).json()["data"][0]["id"]
    endpoint = (await api.post("/v1/webhook-endpoints", {"url": "https://hooks.example.invalid/x",
                                                         "enabled_events": ["*"]})).json()["id"]
    for _, template in sorted(lists):
        path = _fill(template, account_id=account["id"], payment_id=payment, endpoint_id=endpoint)
        r = await api.get(path, limit=limit)
        assert r.status_code == 400, (template, limit, r.text)
        assert r.json()["error"]["code"] == "parameter_invalid" and r.json()["error"]["param"] == "limit"
        for good in (1, 100):
            r = await api.get(path, limit=good)
            assert r.status_code == 200, (template, good, r.text)


def _insert_key(database_url: str, tenant_id: str) -> str:
    key, row = admin.new_key_row(ids.decode(ids.TENANT, tenant_id))  # type: ignore[arg-type]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(admin.INSERT_KEY, row)
    return key


async def test_rate_limit_is_per_key_answers_429_with_retry_after_and_stores_nothing(
    app_server: RunningServer, http: httpx.AsyncClient,
) -> None:
    # The tenant and its accounts are made through the unlimited test server (same database).
    unlimited = await new_tenant(http, "throttled")
    _, alice = await unlimited.funded_account(1_000)
    bob = await unlimited.account()
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=2,
                        rate_limit_per_s=2, expiry_sweep_interval_s=3_600)
    async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as limited_http:
        api = Api(limited_http, unlimited.key, unlimited.tenant_id)
        same_tenant = Api(limited_http, _insert_key(app_server.database_url, api.tenant_id), api.tenant_id)

        answers = [await api.get("/v1/accounts") for _ in range(4)]
        limited = [r for r in answers if r.status_code == 429]
        assert limited, [r.status_code for r in answers]
        r = limited[0]
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
        assert error["request_id"] == r.headers["x-request-id"]
        retry_after = int(r.headers["retry-after"])
        assert 1 <= retry_after <= 2

        # A write refused for the rate stores nothing under its idempotency key.
        key = f"throttled-{uuid.uuid4().hex}"
        refused = await api.pay(alice["id"], bob["id"], 10, key=key)
        assert refused.status_code == 429 and _error_code(refused) == "rate_limited"
        # The limit is per key: another key of the same tenant, and an unknown key, are unaffected.
        assert (await same_tenant.get("/v1/accounts")).status_code == 200
        bad = await limited_http.get("/v1/accounts", headers={"Authorization": "Bearer sk_" + "x" * 43})
        assert bad.status_code == 401 and _error_code(bad) == "api_key_invalid"

        await asyncio.sleep(retry_after)
        accepted = await api.pay(alice["id"], bob["id"], 10, key=key)
        assert accepted.status_code == 201, accepted.text
        assert "idempotent-replayed" not in accepted.headers
        assert await api.balance(bob["id"]) == {"posted": 10, "pending": 0, "available": 10}


# --- No SQL built by string formatting --------------------------------------------------------------

SQL_METHODS = {"execute", "executemany", "stream", "copy"}
SAFE_RECEIVERS = {"SQL"}  # psycopg.sql.SQL(...).format(...) / .join(...): composition that quotes for us


def _is_sql_composition(node: ast.expr) -> bool:
    """``sql.SQL("…")`` or ``SQL("…")`` (psycopg's composable), with a literal template."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in SAFE_RECEIVERS


class _SqlFormattingFinder(ast.NodeVisitor):
    def __init__(self, tree: ast.AST) -> None:
        self.assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.assigned.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                # query += … is string building, whatever the right-hand side.
                self.assigned.setdefault(node.target.id, []).append(ast.BinOp(node.target, ast.Add(), node.value))
        self.problems: list[tuple[int, str]] = []

    def unsafe(self, node: ast.expr, seen: frozenset[str] = frozenset()) -> str | None:
        if isinstance(node, ast.JoinedStr):
            return "an f-string"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            return "a % or + expression"
        if isinstance(node, ast.IfExp):
            return self.unsafe(node.body, seen) or self.unsafe(node.orelse, seen)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"format", "join", "replace"}:
                if _is_sql_composition(func.value):
                    return self.unsafe(func.value, seen)
                return f"a .{func.attr}(...) call"
            if _is_sql_composition(node) and node.args:
                return self.unsafe(node.args[0], seen)  # sql.SQL(f"…") is as bad as an f-string
        if isinstance(node, ast.Name) and node.id not in seen:
            for value in self.assigned.get(node.id, ()):
                problem = self.unsafe(value, seen | {node.id})
                if problem:
                    return f"{problem} (through {node.id})"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS and node.args:
            problem = self.unsafe(node.args[0])
            if problem:
                self.problems.append((node.lineno, f".{node.func.attr}() gets {problem}"))
        self.generic_visit(node)


def sql_formatting_problems(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    finder = _SqlFormattingFinder(tree)
    finder.visit(tree)
    return finder.problems


@pytest.mark.parametrize("snippet", [
    'conn.execute(f"SELECT * FROM t WHERE id = {x}")',
    'conn.execute("SELECT * FROM t WHERE id = %s" % x)',
    'conn.execute("SELECT * FROM t WHERE id = " + x)',
    'conn.execute("SELECT * FROM {}".format(table))',
    'cur.executemany("INSERT INTO {} VALUES (%s)".format(t), rows)',
    'conn.stream(f"SELECT {col} FROM t")',
    'q = f"SELECT {x}"\nconn.execute(q)',
    'q = "SELECT 1"\nq += x\nconn.execute(q, ())',
    'conn.execute(A if x else "SELECT " + y)',
    'conn.execute(sql.SQL(f"SELECT {x}"))',
    'conn.execute(", ".join(cols))',
])
def test_the_sql_formatting_check_catches(snippet: str) -> None:
    assert sql_formatting_problems(snippet), snippet


@pytest.mark.parametrize("snippet", [
    'conn.execute("SELECT 1 FROM t WHERE id = %s", (x,))',
    'conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))',
    'conn.execute(SQL("SELECT {} FROM t").format(Identifier(c)))',
    'conn.execute(sql.SQL(", ").join(parts))',
    'conn.execute(QUERY_A if after else QUERY_B, params)',
    'conn.execute(migration.sql.encode("utf-8"))',
    'print("%d rows" % n)',
])
def test_the_sql_formatting_check_allows(snippet: str) -> None:
    assert not sql_formatting_problems(snippet), snippet


def test_no_sql_is_built_by_string_formatting() -> None:
    """Every statement is a literal with %s placeholders (or psycopg.sql composition). Ruff's S608
    (hardcoded-sql-expression) is on for the same reason; this also catches what S608 lets through
    (a query built into a variable first, .join, sql.SQL over an f-string)."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    problems = [f"{path.relative_to(ROOT)}:{line}: {message}"
                for path in files for line, message in sql_formatting_problems(path.read_text("utf-8"))]
    assert not problems, "\n".join(problems)


def test_ruff_s608_is_on() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["ruff"]["lint"]
    assert "S" in lint["select"] or "S608" in lint["select"]
    assert "S608" not in lint.get("ignore", []) and "S" not in lint.get("ignore", [])
    for ignored in lint.get("per-file-ignores", {}).values():
        assert "S608" not in ignored and "S" not in ignored


# --- Nothing secret in logs -------------------------------------------------------------------------

class _Capture(logging.Handler):
    """Every record, and every line our two formatters would write for it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.json, self.text = JsonFormatter(), TextFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines += [self.json.format(record), self.text.format(record)]

    def raw(self, record: logging.LogRecord) -> str:
        text = record.getMessage() + " " + " ".join(f"{k}={v}" for k, v in record.__dict__.items())
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        return text


@contextmanager
def _captured_logs() -> Iterator[_Capture]:
    capture = _Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def _url_with_password(url: str) -> tuple[str, str]:
    """The test database's URL with a password in it (trust authentication ignores it), and that
    password (the real one, if the URL had one already)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    password = str(info.get("password") or f"pw-{secrets.token_hex(12)}")
    info["password"] = password
    return psycopg.conninfo.make_conninfo("", **info), password


def _assert_absent(capture: _Capture, secrets_: dict[str, str], *, raw: bool) -> None:
    for name, secret in secrets_.items():
        for line in capture.lines:
            assert secret not in line, f"{name} in a log line: {line}"
        if raw:
            for record in capture.records:
                assert secret not in capture.raw(record), f"{name} in a log record: {capture.raw(record)}"


async def test_no_secret_reaches_the_logs(app_server: RunningServer) -> None:
    admin_token = f"adm-{secrets.token_hex(16)}"
    wrong_token = f"adm-{secrets.token_hex(16)}"
    url, password = _url_with_password(app_server.database_url)
    settings = Settings(database_url=url, admin_token=admin_token, pool_size=1, pool_acquire_timeout_ms=200,
                        rate_limit_per_s=0, expiry_sweep_interval_s=3_600)
    invalid_key = admin.new_api_key()
    idempotency_key = f"idem-{secrets.token_hex(16)}"
    with _captured_logs() as capture:
        async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            bearer = {"Authorization": f"Bearer {admin_token}"}
            r = await http.post("/admin/v1/tenants", json={"name": "logged"}, headers=bearer)
            assert r.status_code == 201, r.text
            api = Api(http, r.json()["api_key"], r.json()["id"])
            r = await http.post("/admin/v1/tenants", json={"name": "x"},
                                headers={"Authorization": f"Bearer {wrong_token}"})
            assert r.status_code == 401
            _, alice = await api.funded_account(100)
            bob = await api.account()
            for _ in range(2):  # the second is a replay
                r = await api.pay(alice["id"], bob["id"], 10, key=idempotency_key, metadata={"k": "v"})
                assert r.status_code == 201, r.text
            assert (await api.pay(alice["id"], bob["id"], 11, key=idempotency_key)).status_code == 422
            r = await http.get("/v1/accounts", headers={"Authorization": f"Bearer {invalid_key}"})
            assert r.status_code == 401
            r = await http.get("/v1/accounts", headers={"Authorization": f"Bearer {invalid_key}x{password}"})
            assert r.status_code == 401
            assert (await api.get(f"/v1/accounts/{alice['id']}/entries", limit=0)).status_code == 400
            assert (await api.get("/v1/payments/pay_nope")).status_code == 404
            assert (await api.post("/v1/accounts", content=b"{" + b" " * MAX_BODY)).status_code == 413
            # The database unavailable path (the only pooled connection is busy) logs a warning.
            async with account_row_locked(app_server.database_url, alice["id"]):
                stuck = asyncio.create_task(api.pay(alice["id"], bob["id"], 1, key=f"stuck-{idempotency_key}"))
                await asyncio.sleep(0.5)
                assert (await api.get("/v1/accounts")).status_code == 503
            assert (await stuck).status_code == 201

    assert any(record.name == "paysvc.request" for record in capture.records)  # the capture works
    assert any(record.name == "paysvc.errors" for record in capture.records)
    secrets_ = {"API key": api.key, "API key (past its prefix)": api.key[admin.KEY_PREFIX_SHOWN:],
                "admin token": admin_token, "wrong admin token": wrong_token, "invalid key": invalid_key,
                "database password": password, "idempotency key": idempotency_key}
    _assert_absent(capture, secrets_, raw=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # uvicorn's sys.exit(3)
async def test_a_malformed_database_url_does_not_log_its_password() -> None:
    """libpq repeats a malformed URL in its error, and psycopg's pool logs it while connecting;
    the log formatters mask it."""
    password = f"pw-{secrets.token_hex(12)}"
    settings = Settings(database_url=f"postgresql://paysvc:{password}@[::1/paysvc", admin_token=ADMIN_TOKEN,
                        connect_timeout_s=1)
    with _captured_logs() as capture:
        started = time.monotonic()
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(start_server, settings)
        assert time.monotonic() - started < 30
    assert capture.records
    _assert_absent(capture, {"database password": password}, raw=False)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_crash_at_startup_does_not_print_the_database_password() -> None:
    password = f"pw-{secrets.token_hex(12)}"
    done = _run(["-m", "paysvc.cli", "migrate"], {"PAYSVC_DATABASE_URL": f"postgresql://u:{password}@[::1/db"})
    assert done.returncode != 0
    assert "uncaught exception" in done.stderr and "ProgrammingError" in done.stderr
    assert password not in done.stderr + done.stdout


def test_configured_logging_masks_the_admin_token_and_database_password() -> None:
    token, password = f"adm-{secrets.token_hex(16)}", f"pw-{secrets.token_hex(12)}"
    script = (
        "import logging, os\n"
        "from paysvc.logs import configure_logging\n"
        "configure_logging()\n"
        "log = logging.getLogger('probe')\n"
        "log.warning('token %s url %s', os.environ['PAYSVC_ADMIN_TOKEN'], os.environ['PAYSVC_DATABASE_URL'])\n"
        "log.warning('bare %s', os.environ['PASSWORD_ALONE'])\n"
    )
    done = _run(["-c", script], {"PAYSVC_ADMIN_TOKEN": token, "PASSWORD_ALONE": password,
                                 "PAYSVC_DATABASE_URL": f"host=db user=paysvc password={password} dbname=p"})
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["logger"] for line in lines] == ["probe", "probe"]
    assert token not in done.stderr and password not in done.stderr
    assert lines[1]["msg"] == "bare ***"


@pytest.mark.parametrize(("text", "hidden"), [
    ("postgresql://paysvc:s3cr3t-pw@db:26257/paysvc?sslmode=require", "s3cr3t-pw"),
    ('in URI: "postgresql://u:s3cr3t-pw@[bad/db"', "s3cr3t-pw"),
    ("postgres://u:p@ss-w0rd@host/db", "ss-w0rd"),
    ("host=db user=u password=s3cr3t-pw dbname=x", "s3cr3t-pw"),
    ("host=db password='s3 cr3t pw' dbname=x", "cr3t"),
    ("postgresql://u@h/db?password=s3cr3t-pw&sslmode=verify-full", "s3cr3t-pw"),
    ("key sk_AbCdEfGh1234567890_-abcdefghijklmnopqrstuvw", "1234567890_-abc"),
    ("Authorization: Bearer some-admin-token-123", "some-admin-token-123"),
])
def test_redact(text: str, hidden: str) -> None:
    assert hidden not in redact(text)


def test_redact_keeps_what_support_needs() -> None:
    assert redact("sk_AbCdEfGh1234567890abcdefghijklmnopqrstuvwxy") == "sk_AbCdEfGh***"
    assert redact("postgresql://paysvc:pw@db:26257/paysvc") == "postgresql://paysvc:***@db:26257/paysvc"
    assert redact("GET /v1/payments/pay_0123 200 1.20ms") == "GET /v1/payments/pay_0123 200 1.20ms"
    add_secret("registered-secret-value")
    assert redact("x registered-secret-value y") == "x *** y"
