"""Test harness: a real PostgreSQL (the embedded one, started once per session, or
PAYSVC_TEST_DATABASE_URL), a fresh database per session, and the app served by uvicorn on a
loopback port in a background thread, reached with a real HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg import sql

from paysvc import ids
from paysvc.api.app import create_app
from paysvc.api.edge import uvicorn_options
from paysvc.config import Settings
from paysvc.db.embedded import EmbeddedPostgres
from paysvc.db.migrate import migrate
from paysvc.db.pool import Pool, make_pool

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


def _with_database(url: str, database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database."""
    external = os.environ.get("PAYSVC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="paysvc-test-"))
    embedded = EmbeddedPostgres(data_dir, database="postgres")
    url = embedded.start()
    with psycopg.connect(url, autocommit=True) as conn:
        # Tests do not need durability across an OS crash; they do need speed.
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield url
    finally:
        embedded.stop()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated database on the server; dropped afterwards. Yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_database(server_url, name)
    migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with fresh_database(server_url, "paysvc_test") as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    base_url: str
    settings: Settings
    database_url: str


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def extra_server(settings: Settings) -> AsyncIterator[str]:
    """Another app server with its own settings (a small pool, a rate limit, …); yields its URL."""
    server, thread, base_url = await asyncio.to_thread(start_server, settings)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)


@contextlib.asynccontextmanager
async def account_row_locked(database_url: str, account_id: str) -> AsyncIterator[None]:
    """Hold the account's row lock, so a payment touching it waits inside its transaction."""
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE",
                              (ids.decode(ids.ACCOUNT, account_id),))
        yield
        await blocker.rollback()


@pytest.fixture(scope="session")
def app_server(database_url: str) -> Iterator[RunningServer]:
    # No background expiry here (tests move expires_at and call the sweeper themselves). No webhook
    # deliverer either: tests/test_webhooks.py runs its own, with loopback receivers allowed.
    settings = Settings(database_url=database_url, admin_token=ADMIN_TOKEN, pool_size=12, rate_limit_per_s=0,
                        expiry_sweep_interval_s=3_600, webhook_deliver_in_api=False)
    server, thread, base_url = start_server(settings)
    yield RunningServer(base_url, settings, database_url)
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
async def pool(app_server: RunningServer) -> AsyncIterator[Pool]:
    """A pool of the app server's settings on its database, for tests that run SQL through paysvc's helpers."""
    p = make_pool(app_server.settings, app_server.database_url)
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture
async def http(app_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=app_server.base_url, timeout=30, limits=limits) as client:
        yield client


class Api:
    """A tenant's view of the API, with helpers that assert the happy path."""

    def __init__(self, http: httpx.AsyncClient, key: str, tenant_id: str) -> None:
        self.http = http
        self.key = key
        self.tenant_id = tenant_id
        self.headers = {"Authorization": f"Bearer {key}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.headers)

    async def post(self, path: str, json: Any = None, *, key: str | None = None,
                   content: bytes | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        if content is not None:
            return await self.http.post(path, content=content, headers={**headers, "Content-Type": "application/json"})
        return await self.http.post(path, json=json, headers=headers)

    async def put(self, path: str, json: Any) -> httpx.Response:
        return await self.http.put(path, json=json, headers=self.headers)

    async def account(self, currency: str = "USD", allow_negative: bool = False, **extra: Any) -> dict[str, Any]:
        r = await self.post("/v1/accounts", {"currency": currency, "allow_negative": allow_negative, **extra})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def pay(self, source: str, destination: str, amount: int, currency: str = "USD",
                  key: str | None = None, **extra: Any) -> httpx.Response:
        body = {"amount": amount, "currency": currency, "source": source, "destination": destination, **extra}
        return await self.post("/v1/payments", body, key=key or f"k-{uuid.uuid4().hex}")

    async def funded_account(self, amount: int, currency: str = "USD") -> tuple[dict[str, Any], dict[str, Any]]:
        """A customer account holding ``amount``, deposited from a fresh funding account."""
        funding = await self.account(currency, allow_negative=True)
        customer = await self.account(currency)
        if amount:
            r = await self.pay(funding["id"], customer["id"], amount, currency)
            assert r.status_code == 201, r.text
        return funding, customer

    async def hold(self, source: str, destination: str, amount: int, currency: str = "USD",
                   **extra: Any) -> dict[str, Any]:
        """An authorization (capture: false) that must succeed."""
        r = await self.pay(source, destination, amount, currency, capture=False, **extra)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "requires_capture"
        body: dict[str, Any] = r.json()
        return body

    async def capture(self, payment_id: str, amount: int | None = None, key: str | None = None) -> httpx.Response:
        return await self.post(f"/v1/payments/{payment_id}/capture", {} if amount is None else {"amount": amount},
                               key=key)

    async def cancel(self, payment_id: str, reason: str | None = None, key: str | None = None) -> httpx.Response:
        return await self.post(f"/v1/payments/{payment_id}/cancel", {} if reason is None else {"reason": reason},
                               key=key)

    async def refund(self, payment_id: str, amount: int | None = None, key: str | None = None,
                     **extra: Any) -> httpx.Response:
        body = {**({} if amount is None else {"amount": amount}), **extra}
        return await self.post(f"/v1/payments/{payment_id}/refunds", body, key=key or f"r-{uuid.uuid4().hex}")

    async def payment(self, payment_id: str) -> dict[str, Any]:
        r = await self.get(f"/v1/payments/{payment_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def events(self, starting_after: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Every event after ``starting_after``, paging through the feed to its end."""
        seen: list[dict[str, Any]] = []
        while True:
            query = {"limit": 100, **params}
            if starting_after is not None:
                query["starting_after"] = starting_after
            r = await self.get("/v1/events", **query)
            assert r.status_code == 200, r.text
            page = r.json()
            seen.extend(page["data"])
            if page["data"]:
                starting_after = page["data"][-1]["id"]
            if not page["has_more"]:
                return seen

    async def balance(self, account_id: str) -> dict[str, int]:
        r = await self.get(f"/v1/accounts/{account_id}")
        assert r.status_code == 200, r.text
        balance: dict[str, int] = r.json()["balance"]
        return balance


async def new_tenant(http: httpx.AsyncClient, name: str = "acme") -> Api:
    r = await http.post("/admin/v1/tenants", json={"name": name},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 201, r.text
    body = r.json()
    return Api(http, body["api_key"], body["id"])


@pytest.fixture
async def api(http: httpx.AsyncClient) -> Api:
    return await new_tenant(http)


@pytest.fixture
async def other_api(http: httpx.AsyncClient) -> Api:
    return await new_tenant(http, "globex")


def db_rows(database_url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def expire_hold(database_url: str, payment_id: str, seconds_from_now: float = -1.0) -> None:
    """Move a hold's expires_at (the minimum through the API is 60 s): past by default."""
    db_rows(database_url, "UPDATE payments SET expires_at = now() + make_interval(secs => %s) WHERE id = %s "
            "RETURNING id", (seconds_from_now, ids.decode(ids.PAYMENT, payment_id)))
