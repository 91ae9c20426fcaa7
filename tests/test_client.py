"""paysvc-client (clients/python) against the real served app and PostgreSQL, and its retry rules
against a scripted HTTP server on loopback (so a 503, a 429 or a dropped connection happen on cue).

Webhook and risk routes (brief sections 7 and 8) are tested when the served app has them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from conftest import ADMIN_TOKEN, RunningServer, extra_server, free_port
from paysvc.config import Settings
from paysvc_client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    AuthenticationError,
    Client,
    FeeRuleParams,
    IdempotencyError,
    InvalidRequestError,
    PaymentError,
    PaymentParams,
    RateLimitError,
    Webhook,
    WebhookVerificationError,
)
from paysvc_client import types as t

# ---- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi_paths(app_server: RunningServer) -> set[str]:
    r = httpx.get(app_server.base_url + "/schema/openapi.json", timeout=30)
    assert r.status_code == 200
    return set(r.json()["paths"])


def _needs(paths: set[str], path: str) -> None:
    if path not in paths:
        pytest.skip(f"the served app has no {path} yet (another branch builds it)")


@pytest.fixture
def admin(app_server: RunningServer) -> Iterator[Client]:
    with Client(base_url=app_server.base_url, admin_token=ADMIN_TOKEN) as client:
        yield client


@pytest.fixture
def client(admin: Client) -> Client:
    """A fresh tenant's client (sharing the admin client's connections)."""
    return admin.with_api_key(admin.create_tenant("sdk-" + uuid.uuid4().hex[:8]).api_key)


def _funded(client: Client, amount: int, currency: str = "USD") -> tuple[t.Account, t.Account]:
    funding = client.accounts.create(currency=currency, allow_negative=True)
    customer = client.accounts.create(currency=currency)
    client.payments.create(amount=amount, currency=currency, source=funding.id, destination=customer.id)
    return funding, customer


# ---- the README walk-through, sync and async -------------------------------------------------------


def test_walkthrough_sync(admin: Client) -> None:
    tenant = admin.create_tenant("acme")
    assert tenant.id and tenant.api_key
    client = admin.with_api_key(tenant.api_key)

    schedule = client.fee_schedule.put([FeeRuleParams(currency="USD", percent_bps=290, fixed=30)])
    rules = [(r.currency, r.percent_bps, r.fixed, r.min, r.max) for r in schedule.rules]
    assert rules == [("USD", 290, 30, None, None)]
    assert client.fee_schedule.get() == schedule

    funding = client.accounts.create(currency="usd", allow_negative=True, metadata={"role": "funding"})
    alice = client.accounts.create(currency="USD")
    bob = client.accounts.create(currency="USD")
    assert funding.currency == "USD" and funding.metadata == {"role": "funding"} and alice.purpose == "general"

    deposit = client.payments.create(amount=10_000, currency="USD", source=funding.id, destination=alice.id)
    assert deposit.status == "succeeded" and deposit.fee == 30 + 290 and deposit.net == 10_000 - 320
    assert client.accounts.retrieve(alice.id).balance == t.Balance(posted=9_680, pending=0, available=9_680)

    paid = client.payments.create(amount=1_000, currency="USD", source=alice.id, destination=bob.id,
                                  description="coffee beans", metadata={"order": "42"})
    assert isinstance(paid.amount, int) and paid.amount_captured == 1_000 and paid.fee == 59
    assert paid.created_at.tzinfo is not None and paid.expires_at is None

    hold = client.payments.create(amount=2_000, currency="USD", source=alice.id, destination=bob.id, capture=False,
                                  expires_in_s=3_600)
    assert hold.status == "requires_capture" and hold.fee is None and hold.expires_at is not None
    assert client.accounts.retrieve(alice.id).balance.pending == 2_000
    captured = client.payments.capture(hold.id, amount=1_500)
    assert captured.status == "succeeded" and captured.amount_captured == 1_500
    assert client.accounts.retrieve(alice.id).balance.pending == 0

    refund = client.payments.refund(paid.id, amount=400, metadata={"why": "broken"})
    assert (refund.object, refund.payment, refund.amount, refund.status) == ("refund", paid.id, 400, "succeeded")
    assert [r.id for r in client.payments.refunds(paid.id)] == [refund.id]
    assert client.payments.retrieve(paid.id).amount_refunded == 400

    to_cancel = client.payments.create(amount=100, currency="USD", source=alice.id, destination=bob.id, capture=False)
    canceled = client.payments.cancel(to_cancel.id, reason="duplicate")
    assert canceled.status == "canceled" and canceled.cancellation_reason == "duplicate"

    entries = list(client.accounts.entries(bob.id, limit=2).auto_paging_iter())
    assert [e.kind for e in entries] == ["refund", "payment", "payment"]
    assert [e.amount for e in entries] == [-400, 1_500 - 74, 1_000 - 59]
    assert entries[0].balance_after == 1_000 - 59 + 1_500 - 74 - 400

    accounts = list(client.accounts.list(limit=1).auto_paging_iter())
    assert {a.id for a in accounts} == {funding.id, alice.id, bob.id, *(a.id for a in accounts if a.purpose == "fees")}
    assert sum(a.purpose == "fees" for a in accounts) == 1

    events = list(client.events.list(limit=2).auto_paging_iter())
    assert events[0].type == "payment.succeeded" and isinstance(events[0].data.object, t.Payment)
    assert events[0].data.object.id == deposit.id
    refunded = [e for e in events if e.type == "refund.succeeded"]
    assert len(refunded) == 1 and isinstance(refunded[0].data.object, t.Refund)
    only = list(client.events.list(type="payment.canceled").auto_paging_iter())
    assert [e.data.object.id for e in only if isinstance(e.data.object, t.Payment)] == [to_cancel.id]

    with pytest.raises(PaymentError) as declined:
        client.payments.create(amount=1_000_000, currency="USD", source=alice.id, destination=bob.id)
    assert declined.value.code == "insufficient_funds" and declined.value.payment is not None
    failed = client.payments.retrieve(declined.value.payment)
    assert failed.status == "failed" and failed.failure_code == "insufficient_funds"
    assert [p.id for p in client.payments.list(status="failed")] == [failed.id]


def test_readme_walkthrough_runs(app_server: RunningServer, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).parent.parent / "clients" / "python" / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("PAYSVC_BASE_URL", app_server.base_url)
    monkeypatch.setenv("PAYSVC_ADMIN_TOKEN", ADMIN_TOKEN)
    exec(compile(code, "clients/python/README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "declined: insufficient_funds request req_" in out
    assert "refund.succeeded" in out and "Balance(posted=" in out


async def test_walkthrough_async(app_server: RunningServer) -> None:
    async with AsyncClient(base_url=app_server.base_url, admin_token=ADMIN_TOKEN) as admin:
        tenant = await admin.create_tenant("acme-async")
        client = admin.with_api_key(tenant.api_key)
        funding = await client.accounts.create(currency="JPY", allow_negative=True)
        alice = await client.accounts.create(currency="JPY")
        bob = await client.accounts.create(currency="JPY")
        await client.payments.create(amount=5_000, currency="JPY", source=funding.id, destination=alice.id)
        hold = await client.payments.create(amount=1_200, currency="JPY", source=alice.id, destination=bob.id,
                                            capture=False)
        captured = await client.payments.capture(hold.id)
        assert captured.status == "succeeded" and captured.amount_captured == 1_200 and captured.fee == 0
        refund = await client.payments.refund(hold.id)
        assert refund.amount == 1_200
        assert (await client.accounts.retrieve(alice.id)).balance.available == 5_000
        page = await client.payments.list(limit=1)
        assert len(page) == 1 and page.has_more
        seen = [p.id async for p in page.auto_paging_iter()]
        assert seen == [hold.id, (await client.payments.list(limit=2)).data[1].id]
        assert [e.type async for e in (await client.events.list(limit=1)).auto_paging_iter()] == [
            "payment.succeeded", "payment.authorized", "payment.succeeded", "refund.succeeded"]
        with pytest.raises(InvalidRequestError) as missing:
            await client.payments.retrieve("pay_doesnotexist")
        assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
        assert (await client.fee_schedule.get()).rules == []


# ---- pagination, idempotency, typed errors, batch against the real server ---------------------------


def test_auto_paging_follows_starting_after_across_pages(client: Client) -> None:
    created = [client.accounts.create(currency="EUR").id for _ in range(7)]
    first = client.accounts.list(limit=3)
    assert len(first.data) == 3 and first.has_more
    second = first.next_page()
    assert second is not None and [a.id for a in second] == created[::-1][3:6]
    assert [a.id for a in first.auto_paging_iter()] == created[::-1]
    assert [a.id for a in client.accounts.list(limit=100).auto_paging_iter()] == created[::-1]


async def test_async_auto_paging_over_pages(app_server: RunningServer) -> None:
    async with AsyncClient(base_url=app_server.base_url, admin_token=ADMIN_TOKEN) as admin:
        client = admin.with_api_key((await admin.create_tenant("pages")).api_key)
        created = [(await client.accounts.create(currency="GBP")).id for _ in range(5)]
        page = await client.accounts.list(limit=2)
        assert [a.id async for a in page.auto_paging_iter()] == created[::-1]


def test_explicit_idempotency_key_replays_and_reuse_is_typed(client: Client) -> None:
    _, customer = _funded(client, 1_000)
    other = client.accounts.create(currency="USD")
    key = "order-" + uuid.uuid4().hex
    first = client.payments.create(amount=100, currency="USD", source=customer.id, destination=other.id,
                                   idempotency_key=key)
    again = client.payments.create(amount=100, currency="USD", source=customer.id, destination=other.id,
                                   idempotency_key=key)
    assert again == first
    assert client.accounts.retrieve(customer.id).balance.posted == 900
    with pytest.raises(IdempotencyError) as reused:
        client.payments.create(amount=101, currency="USD", source=customer.id, destination=other.id,
                               idempotency_key=key)
    assert (reused.value.http_status, reused.value.type, reused.value.code) == (422, "idempotency_error",
                                                                                  "idempotency_key_reused")
    # Without a key, each logical call gets its own: two calls, two payments.
    a = client.payments.create(amount=1, currency="USD", source=customer.id, destination=other.id)
    b = client.payments.create(amount=1, currency="USD", source=customer.id, destination=other.id)
    assert a.id != b.id


def test_errors_carry_status_type_code_param_and_request_id(client: Client, app_server: RunningServer) -> None:
    with pytest.raises(InvalidRequestError) as bad:
        client.accounts.create(currency="XYZ")
    e = bad.value
    assert (e.http_status, e.type, e.code, e.param) == (400, "invalid_request_error", "currency_invalid", "currency")
    assert e.request_id is not None and e.request_id.startswith("req_") and e.message
    assert e.payment is None and "currency_invalid" in str(e)

    _, customer = _funded(client, 50)
    with pytest.raises(InvalidRequestError) as missing:
        client.payments.create(amount=10, currency="USD", source=customer.id, destination="acct_nope")
    assert (missing.value.http_status, missing.value.code, missing.value.param) == (404, "resource_missing",
                                                                                    "destination")
    paid = client.payments.create(amount=10, currency="USD", source=customer.id,
                                  destination=client.accounts.create(currency="USD").id)
    with pytest.raises(InvalidRequestError) as state:
        client.payments.cancel(paid.id)
    assert (state.value.http_status, state.value.code) == (409, "invalid_state")
    with pytest.raises(InvalidRequestError) as too_large:
        client.payments.refund(paid.id, amount=11)
    assert (too_large.value.http_status, too_large.value.code) == (400, "amount_too_large")

    with Client("sk_wrong", base_url=app_server.base_url) as stranger, pytest.raises(AuthenticationError) as auth:
        stranger.accounts.list()
    assert (auth.value.http_status, auth.value.type, auth.value.code) == (401, "authentication_error",
                                                                           "api_key_invalid")


def test_batch_items_are_typed_payments_or_errors(client: Client) -> None:
    _, customer = _funded(client, 300)
    shop = client.accounts.create(currency="USD")
    key = "batch-" + uuid.uuid4().hex
    items = client.payments.batch([
        PaymentParams(amount=200, currency="USD", source=customer.id, destination=shop.id, idempotency_key=key),
        {"amount": 200, "currency": "USD", "source": customer.id, "destination": shop.id},
        PaymentParams(amount=0, currency="USD", source=customer.id, destination=shop.id),
    ])
    assert [i.status for i in items] == [201, 402, 400]
    assert items[0].payment is not None and items[0].payment.amount == 200 and items[0].error is None
    assert items[1].error is not None and items[1].error.code == "insufficient_funds" and items[1].error.payment
    assert items[2].error is not None and items[2].error.code == "amount_invalid"
    # The caller's key was used: sending it alone replays the first item.
    replay = client.payments.create(amount=200, currency="USD", source=customer.id, destination=shop.id,
                                    idempotency_key=key)
    assert replay.id == items[0].payment.id


async def test_real_rate_limit_is_waited_out_with_the_same_keys(app_server: RunningServer) -> None:
    settings = Settings(database_url=app_server.database_url, admin_token=ADMIN_TOKEN, pool_size=2,
                        rate_limit_per_s=2)
    async with extra_server(settings) as base_url, AsyncClient(base_url=base_url, admin_token=ADMIN_TOKEN) as admin:
        key = (await admin.create_tenant("limited")).api_key
        client = admin.with_api_key(key)
        async with AsyncClient(key, base_url=base_url, max_retries=0) as impatient:
            with pytest.raises(RateLimitError) as limited:
                for _ in range(4):
                    await impatient.accounts.list()
        assert limited.value.code == "rate_limited" and (limited.value.retry_after_s or 0) >= 1
        funding = await client.accounts.create(currency="USD", allow_negative=True)
        customer = await client.accounts.create(currency="USD")
        started = time.monotonic()
        paid = [await client.payments.create(amount=10, currency="USD", source=funding.id, destination=customer.id)
                for _ in range(4)]
        assert time.monotonic() - started >= 0.9  # some waited for Retry-After instead of failing
        assert len({p.id for p in paid}) == 4
        assert (await client.accounts.retrieve(customer.id)).balance.posted == 40  # no payment twice


# ---- retries, against a scripted server ------------------------------------------------------------

DROP = "drop"  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at_s: float


@dataclass
class Script:
    """Answers to send in order (status, headers, JSON body) or DROP; the last one repeats."""

    answers: list[tuple[int, dict[str, str], Any] | str]
    seen: list[Seen] = field(default_factory=list)


def _error(code: str, kind: str, status: int) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": code, "param": None, "request_id": "req_script"}}


PAYMENT = {"id": "pay_1", "object": "payment", "amount": 100, "amount_captured": 100, "amount_refunded": 0,
           "fee": 0, "net": 100, "currency": "USD", "source": "acct_a", "destination": "acct_b",
           "status": "succeeded", "failure_code": None, "cancellation_reason": None, "description": None,
           "metadata": {}, "created_at": "2026-01-02T03:04:05.123456Z", "expires_at": None,
           "a_field_from_the_future": {"x": 1}}


@contextlib.contextmanager
def scripted(script: Script) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                    time.monotonic()))
            index = min(len(script.seen), len(script.answers)) - 1
            answer = script.answers[index]
            if answer == DROP:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            assert not isinstance(answer, str)
            status, headers, body = answer
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Request-Id", "req_header")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _fast(base_url: str, **options: Any) -> Client:
    return Client("sk_test", base_url=base_url, initial_backoff_s=0.01, max_backoff_s=0.05, timeout_s=5, **options)


def _pay(client: Client, **extra: Any) -> t.Payment:
    return client.payments.create(amount=100, currency="USD", source="acct_a", destination="acct_b", **extra)


def test_one_idempotency_key_across_retries_on_503_409_in_use_and_dropped_connections() -> None:
    script = Script([
        (503, {"Retry-After": "0"}, _error("service_unavailable", "api_error", 503)),
        (409, {}, _error("idempotency_key_in_use", "idempotency_error", 409)),
        DROP,
        (201, {}, PAYMENT),
    ])
    with scripted(script) as url, _fast(url, max_retries=3) as client:
        payment = _pay(client)
    assert payment.id == "pay_1" and payment.created_at.year == 2026  # the unknown field is ignored
    keys = [s.headers.get("idempotency-key") for s in script.seen]
    assert len(keys) == 4 and keys[0] is not None and len(set(keys)) == 1
    assert uuid.UUID(keys[0]).version == 4
    assert all(s.headers["authorization"] == "Bearer sk_test" for s in script.seen)

    # The next logical call gets a new key; a caller's key is sent as given.
    script2 = Script([(201, {}, PAYMENT)])
    with scripted(script2) as url, _fast(url) as client:
        _pay(client)
        _pay(client, idempotency_key="mine-1")
    assert script2.seen[0].headers["idempotency-key"] not in (keys[0], "mine-1")
    assert script2.seen[1].headers["idempotency-key"] == "mine-1"


def test_retry_after_is_honoured_on_429() -> None:
    script = Script([(429, {"Retry-After": "1"}, _error("rate_limited", "rate_limit_error", 429)),
                     (200, {}, {"object": "list", "data": [], "has_more": False})])
    with scripted(script) as url, _fast(url) as client:
        assert client.accounts.list().data == []
    assert len(script.seen) == 2
    assert script.seen[1].at_s - script.seen[0].at_s >= 0.95  # backoff alone would be <= 0.05 s


def test_no_retry_on_400_and_other_4xx() -> None:
    for status, code, kind, exc in [(400, "parameter_invalid", "invalid_request_error", InvalidRequestError),
                                    (402, "insufficient_funds", "payment_error", PaymentError),
                                    (404, "resource_missing", "invalid_request_error", InvalidRequestError),
                                    (409, "invalid_state", "invalid_request_error", InvalidRequestError),
                                    (422, "idempotency_key_reused", "idempotency_error", IdempotencyError)]:
        script = Script([(status, {}, _error(code, kind, status)), (201, {}, PAYMENT)])
        with scripted(script) as url, _fast(url) as client, pytest.raises(exc) as raised:
            _pay(client)
        assert len(script.seen) == 1, status
        assert (raised.value.http_status, raised.value.code, raised.value.request_id) == (status, code, "req_script")


def test_retries_stop_at_max_retries_with_the_last_error() -> None:
    script = Script([(503, {}, _error("service_unavailable", "api_error", 503))])
    with scripted(script) as url, _fast(url, max_retries=2) as client, pytest.raises(APIError) as raised:
        _pay(client)
    assert len(script.seen) == 3 and raised.value.code == "service_unavailable"

    script = Script([(429, {}, _error("rate_limited", "rate_limit_error", 429))])
    with scripted(script) as url, _fast(url, max_retries=0) as client, pytest.raises(RateLimitError):
        client.accounts.list()
    assert len(script.seen) == 1


def test_a_write_without_idempotency_is_not_resent_after_a_dropped_answer() -> None:
    # Creating a webhook endpoint takes no key: the dropped request may have created one.
    script = Script([DROP, (201, {}, {})])
    with scripted(script) as url, _fast(url) as client, pytest.raises(APIConnectionError):
        client.webhook_endpoints.create(url="https://hooks.example.com/x", enabled_events=["*"])
    assert len(script.seen) == 1


def test_unreachable_server_is_a_connection_error() -> None:
    with _fast(f"http://127.0.0.1:{free_port()}", max_retries=1) as client, pytest.raises(APIConnectionError):
        client.accounts.list()


def test_an_answer_that_is_not_an_api_error_is_typed_by_status() -> None:
    script = Script([(500, {}, "<html>oops</html>")])
    with scripted(script) as url, _fast(url) as client, pytest.raises(APIError) as raised:
        client.accounts.list()
    assert raised.value.http_status == 500 and raised.value.code is None and raised.value.request_id == "req_header"

    script = Script([(200, {}, {"id": "pay_1", "object": "payment"})])  # a 2xx of the wrong shape
    with scripted(script) as url, _fast(url) as client, pytest.raises(APIError) as unreadable:
        client.payments.retrieve("pay_1")
    assert "shape" in unreadable.value.message


async def test_async_client_retries_with_the_same_key() -> None:
    script = Script([(503, {"Retry-After": "0"}, _error("service_unavailable", "api_error", 503)), DROP,
                     (201, {}, PAYMENT)])
    with scripted(script) as url:
        async with AsyncClient("sk_test", base_url=url, initial_backoff_s=0.01, max_backoff_s=0.05) as client:
            payment = await client.payments.capture("pay_1", amount=100)
            assert payment.amount == 100
            with pytest.raises(InvalidRequestError):
                script.answers.append((400, {}, _error("parameter_invalid", "invalid_request_error", 400)))
                await client.payments.capture("pay_1")
    keys = {s.headers.get("idempotency-key") for s in script.seen[:3]}
    assert len(keys) == 1 and None not in keys and script.seen[0].path == "/v1/payments/pay_1/capture"
    assert len(script.seen) == 4


# ---- webhook signature verification (independent HMAC in the test) ---------------------------------


def _secret() -> tuple[str, bytes]:
    key = secrets.token_bytes(32)
    return "whsec_" + base64.b64encode(key).decode(), key


def _signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, webhook_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


EVENT = json.dumps({"id": "evt_1", "object": "event", "type": "refund.succeeded",
                    "created_at": "2026-01-02T03:04:05Z",
                    "data": {"object": {"id": "re_1", "object": "refund", "payment": "pay_1", "amount": 5,
                                        "status": "succeeded", "metadata": {}, "created_at": "2026-01-02T03:04:05Z"}}},
                   separators=(",", ":")).encode()


def test_webhook_verification_accepts_a_valid_signature_among_several() -> None:
    secret, key = _secret()
    _, old_key = _secret()
    now = str(int(time.time()))
    both = f"{_signature(old_key, 'evt_1', now, EVENT)} {_signature(key, 'evt_1', now, EVENT)}"
    headers = {"Webhook-Id": "evt_1", "Webhook-Timestamp": now, "Webhook-Signature": both}
    event = Webhook(secret).verify(EVENT, headers)
    assert event.id == "evt_1" and isinstance(event.data.object, t.Refund) and event.data.object.amount == 5
    # The receiver may hold both secrets during its own rotation.
    assert Webhook([_secret()[0], secret]).verify(EVENT.decode(), headers).type == "refund.succeeded"


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp_old", "timestamp_future", "secret", "missing",
                                    "version", "garbage_timestamp"])
def test_webhook_verification_refuses(tamper: str) -> None:
    secret, key = _secret()
    ts = int(time.time())
    body = EVENT
    webhook_id = "evt_1"
    if tamper == "timestamp_old":
        ts -= 301
    if tamper == "timestamp_future":
        ts += 301
    signature = _signature(_secret()[1] if tamper == "secret" else key, webhook_id, str(ts), body)
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    if tamper == "body":
        body = body.replace(b'"amount":5', b'"amount":50')
    if tamper == "id":
        headers["webhook-id"] = "evt_2"
    if tamper == "missing":
        del headers["webhook-signature"]
    if tamper == "version":
        headers["webhook-signature"] = signature.replace("v1,", "v2,")
    if tamper == "garbage_timestamp":
        headers["webhook-timestamp"] = "soon"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_webhook_tolerance_is_configurable() -> None:
    secret, key = _secret()
    ts = str(int(time.time()) - 600)
    headers = {"webhook-id": "evt_1", "webhook-timestamp": ts, "webhook-signature": _signature(key, "evt_1", ts, EVENT)}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(EVENT, headers)
    assert Webhook(secret, tolerance_s=900).verify(EVENT, headers).id == "evt_1"


# ---- webhook endpoints and risk routes (sections 7 and 8), once the served app has them -------------


def test_webhook_endpoint_routes(client: Client, openapi_paths: set[str]) -> None:
    _needs(openapi_paths, "/v1/webhook-endpoints")
    created = client.webhook_endpoints.create(url="https://hooks.example.com/paysvc",
                                              enabled_events=["payment.succeeded"], description="orders",
                                              metadata={"team": "billing"})
    assert created.id.startswith("we_") and created.secret is not None and created.secret.startswith("whsec_")
    assert created.status == "enabled" and created.enabled_events == ["payment.succeeded"]
    fetched = client.webhook_endpoints.retrieve(created.id)
    assert fetched.secret is None and fetched.url == created.url
    second = client.webhook_endpoints.create(url="https://hooks.example.com/two", enabled_events=["*"])
    assert [e.id for e in client.webhook_endpoints.list(limit=1).auto_paging_iter()] == [second.id, created.id]
    updated = client.webhook_endpoints.update(created.id, status="disabled", enabled_events=["*"])
    assert updated.status == "disabled" and updated.enabled_events == ["*"] and updated.description == "orders"
    rotated = client.webhook_endpoints.rotate_secret(second.id)
    assert rotated.secret is not None and rotated.secret != second.secret

    # The session's server delivers nothing (deliveries are made by a delivering process, see the
    # next test), so here the list is checked for shape and a missing delivery for its 404.
    page = client.webhook_endpoints.deliveries(second.id, limit=10, status="pending")
    assert all(d.endpoint == second.id and d.object == "webhook_delivery" for d in page)
    with pytest.raises(InvalidRequestError) as no_delivery:
        client.webhook_endpoints.retry_delivery(second.id, "whd_missing")
    assert (no_delivery.value.http_status, no_delivery.value.code) == (404, "resource_missing")
    with pytest.raises(InvalidRequestError) as bad:
        client.webhook_endpoints.create(url="ftp://hooks.example.com/x", enabled_events=["*"])
    assert (bad.value.code, bad.value.param) == ("parameter_invalid", "url")

    deleted = client.webhook_endpoints.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(InvalidRequestError) as gone:
        client.webhook_endpoints.retrieve(created.id)
    assert gone.value.http_status == 404


@dataclass
class _Received:
    body: bytes
    headers: dict[str, str]


@contextlib.contextmanager
def _receiver() -> Iterator[tuple[str, list[_Received], threading.Event]]:
    received: list[_Received] = []
    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(_Received(body, dict(self.headers.items())))
            arrived.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, arrived
    finally:
        server.shutdown()
        server.server_close()


async def test_a_real_delivery_verifies_with_the_helper(app_server: RunningServer, openapi_paths: set[str]) -> None:
    _needs(openapi_paths, "/v1/webhook-endpoints")
    fields = {"webhook_deliver_in_api": True, "webhook_allow_private": True}
    if not all(hasattr(app_server.settings, name) for name in fields):
        pytest.skip("the settings have no webhook delivery options")
    settings = msgspec.structs.replace(app_server.settings, **fields)
    with _receiver() as (hook_url, received, arrived):
        async with extra_server(settings) as base_url, AsyncClient(base_url=base_url, admin_token=ADMIN_TOKEN) as admin:
            client = admin.with_api_key((await admin.create_tenant("hooked")).api_key)
            endpoint = await client.webhook_endpoints.create(url=hook_url, enabled_events=["payment.succeeded"])
            assert endpoint.secret is not None
            funding = await client.accounts.create(currency="USD", allow_negative=True)
            customer = await client.accounts.create(currency="USD")
            payment = await client.payments.create(amount=10, currency="USD", source=funding.id,
                                                   destination=customer.id)
            await asyncio.to_thread(arrived.wait, 15)
            delivered: list[t.WebhookDelivery] = []
            for _ in range(300):  # the delivery row is updated just after the receiver answers
                delivered = (await client.webhook_endpoints.deliveries(endpoint.id, status="succeeded")).data
                if delivered:
                    break
                await asyncio.sleep(0.05)
            assert [d.event_type for d in delivered] == ["payment.succeeded"] and delivered[0].attempts == 1
            with pytest.raises(InvalidRequestError) as not_failed:
                await client.webhook_endpoints.retry_delivery(endpoint.id, delivered[0].id)
            assert not_failed.value.code == "invalid_state"
    assert received, "no delivery within 15 s"
    event = Webhook(endpoint.secret).verify(received[0].body, received[0].headers)
    assert event.type == "payment.succeeded" and isinstance(event.data.object, t.Payment)
    assert event.data.object.id == payment.id
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret()[0]).verify(received[0].body, received[0].headers)


def test_risk_settings_rules_models_reviews_and_fraud_reports(client: Client, openapi_paths: set[str]) -> None:
    _needs(openapi_paths, "/v1/risk/settings")
    defaults = client.risk.settings_get()
    assert defaults.mode == "shadow" and defaults.thresholds == t.RiskThresholds(elevated=65, highest=75)
    models = list(client.risk.models().auto_paging_iter())
    assert len(models) >= 2 and all(m.object == "risk_model" for m in models)
    challenger = next(m.id for m in models if m.id != defaults.champion)
    settings = client.risk.settings_put(mode="enforce", thresholds={"elevated": 90, "highest": 100},
                                        challenger={"model": challenger, "percent": 0})
    assert settings.mode == "enforce" and settings.challenger == t.RiskChallenger(model=challenger, percent=0)
    assert client.risk.settings_get() == settings
    with pytest.raises(InvalidRequestError) as unknown_model:
        client.risk.settings_put(mode="enforce", champion="no-such-model")
    assert unknown_model.value.code == "parameter_invalid"

    _, customer = _funded(client, 10_000)  # before the rules, so the deposit is not reviewed
    shop = client.accounts.create(currency="USD")
    rules = client.risk.rules_put([{"action": "review", "predicate": ":amount: >= 700"},
                                   {"action": "block", "predicate": ":amount: = 666"}])
    assert [r.action for r in rules.rules] == ["review", "block"] and all(r.id.startswith("rule_") for r in rules.rules)
    assert client.risk.rules_get() == rules
    with pytest.raises(InvalidRequestError) as bad_rule:
        client.risk.rules_put([{"action": "block", "predicate": ":amount: >"}])
    assert bad_rule.value.param == "rules[0].predicate"

    with pytest.raises(PaymentError) as blocked:
        client.payments.create(amount=666, currency="USD", source=customer.id, destination=shop.id)
    assert blocked.value.code == "payment_blocked" and blocked.value.payment is not None
    reviewed = client.payments.create(amount=800, currency="USD", source=customer.id, destination=shop.id)
    assert reviewed.outcome is not None and reviewed.outcome.type == "manual_review" and reviewed.review is not None
    review = client.reviews.retrieve(reviewed.review)
    assert review.open and review.payment == reviewed.id and review.rule is not None
    assert [r.id for r in client.reviews.list(open=True).auto_paging_iter()] == [review.id]
    approved = client.reviews.approve(review.id)
    assert not approved.open and approved.closed_reason == "approved"
    with pytest.raises(InvalidRequestError) as closed:
        client.reviews.approve(review.id)
    assert closed.value.code == "invalid_state"
    assert list(client.reviews.list(open=True)) == []

    reported = client.payments.fraud_report(reviewed.id, user_report="fraudulent")
    assert reported.fraud_details is not None and reported.fraud_details.user_report == "fraudulent"
    types_seen = {e.type for e in client.events.list(limit=100).auto_paging_iter()}
    assert {"review.opened", "review.closed", "payment.fraud_reported"} <= types_seen
    review_events = [e for e in client.events.list(type="review.opened").auto_paging_iter()]
    assert isinstance(review_events[0].data.object, t.Review)
