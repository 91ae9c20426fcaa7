"""Observability: ``GET /metrics`` (Prometheus text format 0.0.4) scraped over HTTP from the test server,
and the request log (one record per request, JSON when not on a terminal, level from PAYSVC_LOG_LEVEL).

The test server runs in this process, so its counters also hold what earlier tests did: every
assertion on a counter compares two scrapes around the requests it makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pty
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from psycopg import sql

from conftest import ADMIN_TOKEN, Api, RunningServer, _with_database, account_row_locked, extra_server, free_port
from paysvc import metrics
from paysvc.config import Settings
from paysvc.logs import JsonFormatter

FAMILIES = {
    "paysvc_http_requests_total": "counter",
    "paysvc_http_request_duration_seconds": "histogram",
    "paysvc_payments_total": "counter",
    "paysvc_db_retries_total": "counter",
    "paysvc_db_pool_connections": "gauge",
    "paysvc_db_pool_requests_waiting": "gauge",
    "paysvc_idempotency_replays_total": "counter",
    "paysvc_group_commit_batch_size": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
}
LOG_FIELDS = {"request_id", "tenant_id", "method", "route", "path", "status", "latency_ms", "retries"}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def parse(text: str) -> Scrape:
    """A strict reader of the 0.0.4 text format: every line is a HELP, a TYPE or a sample of a family
    whose TYPE came before it; label values are escaped; no series twice."""
    scrape = Scrape()
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and help_text and name not in helped, line
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helped and name not in scrape.types, line
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            scrape.types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in scrape.types or scrape.types.get(family) == "histogram", f"sample before its TYPE: {line}"
        labels: list[tuple[str, str]] = []
        if label_text:
            position = 0
            while position < len(label_text):
                label = _LABEL.match(label_text, position)
                assert label, f"bad labels in {line!r}"
                labels.append((label.group(1), re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                                      label.group(2))))
                position = label.end()
                if position < len(label_text):
                    assert label_text[position] == ",", line
                    position += 1
        key = (name, tuple(sorted(labels)))
        assert key not in scrape.samples, f"series twice: {line}"
        scrape.samples[key] = float(value)
    return scrape


async def scrape(http: httpx.AsyncClient) -> Scrape:
    r = await http.get("/metrics")  # no API key
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.text)


def check_histogram(scrape: Scrape, name: str, labels: dict[str, str], bounds: tuple[float, ...]) -> float:
    """The buckets are cumulative, end at +Inf and equal _count; returns _count."""
    counts = [scrape.value(f"{name}_bucket", **labels, le=repr(float(b))) for b in bounds]
    total = scrape.value(f"{name}_bucket", **labels, le="+Inf")
    assert counts == sorted(counts) and counts[-1] <= total, (name, labels, counts, total)
    assert total == scrape.value(f"{name}_count", **labels)
    return total


# ---- the document --------------------------------------------------------------------------------


async def test_metrics_need_no_key_and_show_every_family(http: httpx.AsyncClient) -> None:
    await http.get("/healthz")
    first = await scrape(http)
    for name, kind in FAMILIES.items():
        assert first.types.get(name) == kind, name
    assert first.value("process_resident_memory_bytes") > 1_000_000
    for reason in ("40001", "40P01", "connection", "ambiguous"):
        assert ("paysvc_db_retries_total", (("sqlstate", reason),)) in first.samples
    # An API key is neither needed nor looked at.
    r = await http.get("/metrics", headers={"Authorization": "Bearer sk_not_a_key"})
    assert r.status_code == 200 and r.text.startswith("# HELP ")
    # The scrape itself is a request like any other.
    second = await scrape(http)
    labels = {"method": "GET", "route": "/metrics", "status": "200"}
    assert second.value("paysvc_http_requests_total", **labels) >= 2
    assert second.value("paysvc_http_requests_total", **labels) - first.value("paysvc_http_requests_total",
                                                                              **labels) == 2


async def test_metrics_route_is_in_the_openapi_document_as_public_text(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/schema/openapi.json")).json()
    operation = doc["paths"]["/metrics"]["get"]
    assert operation["security"] == []
    assert list(operation["responses"]["200"]["content"]) == [metrics.CONTENT_TYPE]


def test_label_values_are_escaped() -> None:
    route = 'odd "route"\\with\na newline'
    metrics.record_request("GET", route, 299, 0.003)
    metrics.record_request("BREW", route, 299, 20.0)  # an unknown method is "other"; above every bucket
    scrape = parse(metrics.render(pool_stats=None, retries={}))
    assert scrape.value("paysvc_http_requests_total", method="GET", route=route, status="299") == 1
    assert scrape.value("paysvc_http_requests_total", method="other", route=route, status="299") == 1
    labels = {"method": "other", "route": route, "status": "299"}
    assert check_histogram(scrape, "paysvc_http_request_duration_seconds", labels, metrics.LATENCY_BUCKETS_S) == 1
    assert scrape.value("paysvc_http_request_duration_seconds_bucket", **labels, le="10.0") == 0
    assert scrape.value("paysvc_http_request_duration_seconds_sum", **labels) == 20.0
    assert "paysvc_db_pool_connections" not in scrape.types  # no pool, no pool gauges


# ---- HTTP requests -------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_and_status(api: Api, http: httpx.AsyncClient) -> None:
    before = await scrape(http)
    missing = f"pay_{uuid.uuid4().hex}"
    assert (await api.get(f"/v1/payments/{missing}")).status_code == 404
    assert (await api.post(f"/v1/payments/{missing}/capture", {}, key="x")).status_code == 404
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get(f"/no/such/{missing}")).status_code == 404
    assert (await http.delete("/healthz")).status_code == 405
    assert (await api.post("/v1/accounts", content=b"{" + b" " * (70 * 1024) + b"}")).status_code == 413
    assert (await http.get("/v1/accounts")).status_code == 401
    after = await scrape(http)

    def delta(method: str, route: str, status: int) -> float:
        labels = {"method": method, "route": route, "status": str(status)}
        return after.value("paysvc_http_requests_total", **labels) - before.value(
            "paysvc_http_requests_total", **labels)

    assert delta("GET", "/v1/payments/{payment_id}", 404) == 1
    assert delta("POST", "/v1/payments/{payment_id}/capture", 404) == 1
    assert delta("GET", "/healthz", 200) == 2
    assert delta("GET", "unmatched", 404) == 1
    assert delta("DELETE", "unmatched", 405) == 1
    assert delta("POST", "/v1/accounts", 413) == 1
    assert delta("GET", "/v1/accounts", 401) == 1
    for labels in after.series("paysvc_http_requests_total"):
        assert missing not in dict(labels)["route"], "a raw path in a label"
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    count = check_histogram(after, "paysvc_http_request_duration_seconds", labels, metrics.LATENCY_BUCKETS_S)
    assert count == after.value("paysvc_http_requests_total", **labels)
    assert after.value("paysvc_http_request_duration_seconds_sum", **labels) > before.value(
        "paysvc_http_request_duration_seconds_sum", **labels)


# ---- database: pool gauges, retries --------------------------------------------------------------


async def test_pool_gauges_show_connections_in_use_and_requests_waiting(app_server: RunningServer) -> None:
    # The background jobs (expiry sweep, events numbering) use the same one-connection pool: run them
    # rarely, so that "idle" is not raced by one of them holding the connection for a moment.
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=1,
                        pool_acquire_timeout_ms=10_000, rate_limit_per_s=0, expiry_sweep_interval_s=3_600,
                        events_sequence_interval_ms=60_000, webhook_deliver_in_api=False)
    async with extra_server(settings) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        r = await http.post("/admin/v1/tenants", json={"name": "pool"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 201, r.text
        api = Api(http, r.json()["api_key"], r.json()["id"])
        _, alice = await api.funded_account(100)
        bob = await api.account()
        idle = await scrape(http)
        for _ in range(40):  # a background job that started before the settings' interval may still hold it
            if idle.value("paysvc_db_pool_connections", state="in_use") == 0:
                break
            await asyncio.sleep(0.05)
            idle = await scrape(http)
        assert idle.value("paysvc_db_pool_connections", state="in_use") == 0
        assert idle.value("paysvc_db_pool_connections", state="idle") == 1
        assert idle.value("paysvc_db_pool_requests_waiting") == 0
        paying = reading = None
        try:
            async with account_row_locked(app_server.database_url, alice["id"]):
                # The payment holds the only connection, waiting for the row lock; the read waits for it
                # (and so may the background jobs: the events sequencer runs every second).
                paying = asyncio.create_task(api.pay(alice["id"], bob["id"], 1))
                reading = asyncio.create_task(api.get("/v1/accounts"))
                busy = idle
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    busy = await scrape(http)
                    if busy.value("paysvc_db_pool_requests_waiting") >= 1:
                        break
                assert busy.value("paysvc_db_pool_connections", state="in_use") == 1
                assert busy.value("paysvc_db_pool_connections", state="idle") == 0
                assert busy.value("paysvc_db_pool_requests_waiting") >= 1
            assert (await paying).status_code == 201
            assert (await reading).status_code == 200
        finally:
            for task in (paying, reading):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(t for t in (paying, reading) if t is not None), return_exceptions=True)
        after = await scrape(http)
        assert after.value("paysvc_db_pool_connections", state="in_use") + after.value(
            "paysvc_db_pool_connections", state="idle") == 1


@contextlib.contextmanager
def serialization_failure_once(database_url: str, marker: str) -> Iterator[None]:
    """The next INSERT of an account whose metadata has ``fault: marker`` fails with a real SQLSTATE
    40001 from PostgreSQL, once (a sequence counts the attempts: it is not rolled back)."""
    name = f"test_fault_{uuid.uuid4().hex[:12]}"
    ident = sql.Identifier(name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(ident))
        conn.execute(sql.SQL(
            "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.metadata->>'fault' = {marker} AND nextval({seq}) = 1 THEN "
            "RAISE EXCEPTION 'injected by test_metrics' USING ERRCODE = 'serialization_failure'; END IF; "
            "RETURN NEW; END $$").format(fn=ident, marker=sql.Literal(marker), seq=sql.Literal(name)))
        conn.execute(sql.SQL("CREATE TRIGGER {} BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION {}()")
                     .format(ident, ident))
        try:
            yield
        finally:
            conn.execute(sql.SQL("DROP TRIGGER {} ON accounts").format(ident))
            conn.execute(sql.SQL("DROP FUNCTION {}()").format(ident))
            conn.execute(sql.SQL("DROP SEQUENCE {}").format(ident))


async def test_a_retried_transaction_is_counted_by_sqlstate_and_in_its_request_log_line(
    api: Api, http: httpx.AsyncClient, app_server: RunningServer, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="paysvc.request")
    marker = uuid.uuid4().hex
    before = await scrape(http)
    with serialization_failure_once(app_server.database_url, marker):
        r = await api.post("/v1/accounts", {"currency": "USD", "metadata": {"fault": marker}})
        assert r.status_code == 201, r.text
        plain = await api.post("/v1/accounts", {"currency": "USD"})
        assert plain.status_code == 201
    after = await scrape(http)
    assert after.value("paysvc_db_retries_total", sqlstate="40001") - before.value(
        "paysvc_db_retries_total", sqlstate="40001") == 1

    lines = {rec.request_id: json.loads(JsonFormatter().format(rec))  # type: ignore[attr-defined]
             for rec in caplog.records if rec.name == "paysvc.request"}
    line = lines[r.headers["x-request-id"]]
    assert LOG_FIELDS <= set(line)
    assert line["level"] == "info" and line["logger"] == "paysvc.request"
    assert (line["method"], line["route"], line["path"], line["status"]) == ("POST", "/v1/accounts",
                                                                             "/v1/accounts", 201)
    assert line["tenant_id"] == api.tenant_id
    assert line["retries"] == 1
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] > 0
    assert lines[plain.headers["x-request-id"]]["retries"] == 0


async def test_request_log_line_fields(api: Api, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="paysvc.request")
    missing = f"acct_{uuid.uuid4().hex}"
    owned = await api.get(f"/v1/accounts/{missing}")
    anonymous = await http.get("/healthz?verbose=1")  # an unknown parameter: 400 parameter_unknown
    unrouted = await http.get(f"/nowhere/{missing}")
    lines = {rec.request_id: json.loads(JsonFormatter().format(rec))  # type: ignore[attr-defined]
             for rec in caplog.records if rec.name == "paysvc.request"}
    line = lines[owned.headers["x-request-id"]]
    assert line["request_id"] == owned.json()["error"]["request_id"]
    assert (line["route"], line["path"], line["status"], line["tenant_id"]) == (
        "/v1/accounts/{account_id}", f"/v1/accounts/{missing}", 404, api.tenant_id)
    line = lines[anonymous.headers["x-request-id"]]
    assert (line["route"], line["path"], line["status"], line["tenant_id"], line["retries"]) == (
        "/healthz", "/healthz", 400, None, 0)  # no query string
    line = lines[unrouted.headers["x-request-id"]]
    assert (line["route"], line["status"], line["tenant_id"]) == ("unmatched", 404, None)
    assert unrouted.json()["error"]["request_id"] == unrouted.headers["x-request-id"]
    assert unrouted.headers.get_list("x-request-id") == [line["request_id"]]  # one header, not two


# ---- payments, idempotency replays, group commit (record_* calls wired in the ledger) -----------


async def test_payments_by_outcome_replays_and_group_commit_batches(api: Api, http: httpx.AsyncClient) -> None:
    funding = await api.account(allow_negative=True)
    alice = await api.account()
    bob = await api.account()
    accounts = [await api.account() for _ in range(10)]
    before = await scrape(http)

    deposit = await api.pay(funding["id"], alice["id"], 1_000)
    assert deposit.status_code == 201 and deposit.json()["status"] == "succeeded"
    hold = await api.pay(alice["id"], bob["id"], 100, capture=False)
    assert hold.status_code == 201 and hold.json()["status"] == "requires_capture"
    declined = await api.pay(alice["id"], bob["id"], 1_000_000)
    assert declined.status_code == 402
    key = f"metrics-{uuid.uuid4().hex}"
    paid = await api.pay(alice["id"], bob["id"], 10, key=key)
    assert paid.status_code == 201 and "idempotent-replayed" not in paid.headers
    replay = await api.pay(alice["id"], bob["id"], 10, key=key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    together = await asyncio.gather(*(api.pay(funding["id"], a["id"], 5) for a in accounts))
    assert all(r.status_code == 201 for r in together)
    after = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("paysvc_payments_total", outcome="succeeded") == 12  # deposit, paid, 10 together
    assert delta("paysvc_payments_total", outcome="requires_capture") == 1
    assert delta("paysvc_payments_total", outcome="failed") == 1  # the decline (insufficient_funds)
    assert delta("paysvc_idempotency_replays_total") == 1
    # Every payment request went through the group committer: 15 answered (the replay included),
    # in at least one and at most 15 batches.
    batches = check_histogram(after, "paysvc_group_commit_batch_size", {}, metrics.BATCH_SIZE_BUCKETS)
    new_batches = batches - before.value("paysvc_group_commit_batch_size_count")
    assert delta("paysvc_group_commit_batch_size_sum") == 15
    assert 1 <= new_batches <= 15


# ---- logging: PAYSVC_LOG_LEVEL end to end, JSON or text ------------------------------------------


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    """An empty database of its own (``paysvc serve`` migrates it), so no other test's rows are touched."""
    name = f"paysvc_metrics_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _serve_and_collect_log(database_url: str, level: str) -> tuple[list[str], list[str]]:
    """Run ``paysvc serve --workers 2`` at ``level``, make a few requests, stop it; its stderr lines and
    the request ids it answered."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYSVC_")}
    env.update({"PAYSVC_DATABASE_URL": database_url, "PAYSVC_LOG_LEVEL": level,
                "PAYSVC_EXPIRY_SWEEP_INTERVAL_S": "3600"})
    proc = subprocess.Popen([sys.executable, "-m", "paysvc.cli", "serve", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    answered: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "serve exited early"
            assert time.monotonic() < deadline, "serve did not answer in 60 s"
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(8):  # new connections: both workers get some
            r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert r.status_code == 200
            answered.append(r.headers["x-request-id"])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    return stderr.decode().splitlines(), answered


@pytest.mark.timeout(180)
def test_serve_logs_one_json_line_per_request_at_the_level_of_paysvc_log_level(scratch_database: str) -> None:
    lines, answered = _serve_and_collect_log(scratch_database, "info")
    records = [json.loads(line) for line in lines]  # not on a terminal: every line is JSON
    requests = {r["request_id"]: r for r in records if r.get("logger") == "paysvc.request"}
    assert set(answered) <= set(requests)
    for request_id in answered:
        line = requests[request_id]
        assert LOG_FIELDS <= set(line) and line["level"] == "info"
        assert (line["method"], line["route"], line["path"], line["status"], line["tenant_id"],
                line["retries"]) == ("GET", "/healthz", "/healthz", 200, None, 0)
    lines, answered = _serve_and_collect_log(scratch_database, "WARNING")
    assert answered
    assert not [line for line in lines if '"paysvc.request"' in line or "/healthz" in line]


def test_an_unknown_log_level_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "paysvc.cli", "migrate"], capture_output=True, text=True,
                          env={**os.environ, "PAYSVC_LOG_LEVEL": "loud"}, timeout=60, check=False)
    assert done.returncode == 2
    assert "PAYSVC_LOG_LEVEL" in done.stderr and "Traceback" not in done.stderr


def test_logs_are_text_on_a_terminal() -> None:
    code = ("import logging; from paysvc.logs import configure_logging; configure_logging('INFO'); "
            "logging.getLogger('paysvc.request').info('GET /healthz 200 0.10ms req_x', "
            "extra={'request_id': 'req_x', 'status': 200})")
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", code], stderr=terminal, stdout=subprocess.DEVNULL,
                              timeout=60, check=False)
        os.close(terminal)
        output = b""
        with contextlib.suppress(OSError):  # EIO once the child's side is closed and read
            while chunk := os.read(controller, 4096):
                output += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    text = output.decode()
    assert re.search(r"INFO +paysvc\.request: GET /healthz 200 0\.10ms req_x", text), text
    assert not text.lstrip().startswith("{")
