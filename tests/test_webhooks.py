"""Webhooks (brief, section 7) against real HTTP receivers on loopback: routes and checks, delivery
and its signature (verified by the independent ``standardwebhooks`` package), retries on a
shortened schedule, timeouts, redirects, rotation overlap, deletion, auto-disable."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from standardwebhooks import Webhook

from conftest import Api, RunningServer, db_rows, extra_server, new_tenant
from paysvc import ids
from paysvc.torture.receiver import HANG, OK, Answer, Received, Receiver

RETRY_SCHEDULE = "1,1"  # three attempts, a second apart
DISABLE_AFTER = 3
TIMEOUT_MS = 1_000


@pytest.fixture(scope="module")
async def hooks_url(app_server: RunningServer) -> AsyncIterator[str]:
    """An app server that delivers webhooks (the session's does not), to loopback receivers."""
    settings = msgspec.structs.replace(
        app_server.settings, webhook_deliver_in_api=True, webhook_allow_private=True,
        webhook_retry_schedule_s=RETRY_SCHEDULE, webhook_timeout_ms=TIMEOUT_MS, webhook_poll_interval_ms=50,
        events_sequence_interval_ms=100, webhook_disable_after_failed_deliveries=DISABLE_AFTER,
        webhook_secret_overlap_s=3_600,
    )
    async with extra_server(settings) as url:
        yield url


@pytest.fixture
async def hooks(hooks_url: str) -> AsyncIterator[Api]:
    """A fresh tenant on the delivering server."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=hooks_url, timeout=30, limits=limits) as client:
        yield await new_tenant(client, "hooked")


async def _endpoint(api: Api, url: str, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    r = await api.post("/v1/webhook-endpoints", {"url": url, "enabled_events": events or ["*"], **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _deliveries(api: Api, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", limit=100, **params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def _eventually(check: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def _verify(secret: str, request: Received) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return verified


# ---- routes and checks ------------------------------------------------------------------------------


async def test_endpoint_lifecycle_create_get_list_update_delete(api: Api) -> None:
    created = await _endpoint(api, "https://hooks.example.com/paysvc", ["payment.succeeded", "refund.succeeded"],
                              description="ledger sync", metadata={"team": "ops"})
    assert created["object"] == "webhook_endpoint" and created["id"].startswith("we_")
    assert list(created) == ["id", "object", "url", "enabled_events", "status", "description", "metadata",
                             "secret", "created_at"]
    assert created["status"] == "enabled" and created["enabled_events"] == ["payment.succeeded", "refund.succeeded"]
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32

    fetched = (await api.get(f"/v1/webhook-endpoints/{created['id']}")).json()
    assert fetched == {**created, "secret": None}

    second = await _endpoint(api, "https://hooks.example.com/two")
    page = (await api.get("/v1/webhook-endpoints", limit=1)).json()
    assert page["object"] == "list" and page["has_more"] is True and page["data"][0]["id"] == second["id"]
    rest = (await api.get("/v1/webhook-endpoints", limit=1, starting_after=second["id"])).json()
    assert [e["id"] for e in rest["data"]] == [created["id"]] and rest["has_more"] is False

    r = await api.post(f"/v1/webhook-endpoints/{created['id']}", {
        "url": "https://hooks.example.com/v2", "enabled_events": ["*"], "status": "disabled",
        "description": None, "metadata": {"team": "", "env": "prod"},
    })
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["url"] == "https://hooks.example.com/v2" and updated["enabled_events"] == ["*"]
    assert updated["status"] == "disabled" and updated["description"] is None and updated["secret"] is None
    assert updated["metadata"] == {"env": "prod"}  # merged; "" removes a key

    r = await api.http.delete(f"/v1/webhook-endpoints/{created['id']}", headers=api.headers)
    assert r.status_code == 200 and r.json() == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    for method, path in (("GET", ""), ("POST", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("GET", "/deliveries")):
        r = await api.http.request(method, f"/v1/webhook-endpoints/{created['id']}{path}", headers=api.headers,
                                   json={} if method == "POST" else None)
        assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing", (method, path, r.text)
    listed = (await api.get("/v1/webhook-endpoints", limit=100)).json()["data"]
    assert [e["id"] for e in listed] == [second["id"]]


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"enabled_events": ["*"]}, "parameter_missing", "url"),
    ({"url": "https://hooks.example.com/x"}, "parameter_missing", "enabled_events"),
    ({"url": "http://hooks.example.com/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "ftp://hooks.example.com/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "/relative", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://" + "a" * 2040 + ".com/", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://127.0.0.1/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://10.1.2.3/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://192.168.0.10/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://169.254.169.254/latest/meta-data", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://0.0.0.0/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://224.0.0.1/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://[::1]/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://[fe80::1]/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://[fd00::1]/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://[::ffff:127.0.0.1]/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://localhost:8443/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://user:pw@hooks.example.com/x", "enabled_events": ["*"]}, "parameter_invalid", "url"),
    ({"url": "https://hooks.example.com/x", "enabled_events": []}, "parameter_invalid", "enabled_events"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["payment.created"]}, "parameter_invalid",
     "enabled_events"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["*", "payment.succeeded"]}, "parameter_invalid",
     "enabled_events"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["payment.succeeded"] * 51}, "parameter_invalid",
     "enabled_events"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["*"], "description": "é" * 1001},
     "parameter_invalid", "description"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["*"], "metadata": {"k": 1}}, "metadata_invalid",
     "metadata"),
    ({"url": "https://hooks.example.com/x", "enabled_events": ["*"], "secret": "whsec_x"}, "parameter_unknown",
     "secret"),
])
async def test_bad_endpoint_bodies_are_400_and_create_nothing(
    api: Api, app_server: RunningServer, body: dict[str, Any], code: str, param: str
) -> None:
    r = await api.post("/v1/webhook-endpoints", body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param), r.text
    assert error["request_id"] == r.headers["x-request-id"]
    tenant = ids.decode(ids.TENANT, api.tenant_id)
    assert db_rows(app_server.database_url, "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = %s",
                   (tenant,)) == [(0,)]


async def test_every_event_type_of_the_brief_is_accepted_and_an_unresolvable_host_too(api: Api) -> None:
    types = ["payment.authorized", "payment.succeeded", "payment.failed", "payment.canceled", "payment.expired",
             "payment.fraud_reported", "refund.succeeded", "review.opened", "review.closed"]
    # No DNS here: a name that does not resolve now is accepted (checked again at each attempt).
    endpoint = await _endpoint(api, "https://hooks.does-not-exist.invalid/x", types)
    assert endpoint["enabled_events"] == types


async def test_update_checks_like_create_and_retry_needs_a_failed_delivery(api: Api) -> None:
    endpoint = await _endpoint(api, "https://hooks.example.com/x")
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    for body, param in (({"url": "https://127.0.0.1/"}, "url"), ({"enabled_events": ["nope"]}, "enabled_events"),
                        ({"status": "paused"}, "status"), ({"description": "x" * 1001}, "description")):
        r = await api.post(path, body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = await api.post(f"{path}/deliveries/whd_{'0' * 32}/retry", {})
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    r = await api.get(f"{path}/deliveries", status="sent")
    assert r.status_code == 400
    r = await api.get(f"{path}/deliveries", starting_after=f"whd_{'0' * 32}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


# ---- delivery ---------------------------------------------------------------------------------------


async def test_an_event_is_delivered_signed_within_2_s_exactly_as_the_feed_lists_it(hooks: Api) -> None:
    async with Receiver() as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        funding = await hooks.account(allow_negative=True)
        customer = await hooks.account()
        committed = time.monotonic()
        r = await hooks.pay(funding["id"], customer["id"], 1_234)
        assert r.status_code == 201, r.text
        (request,) = await receiver.wait_for(1, timeout_s=10)
        assert request.at - committed < 2.0

        assert request.method == "POST" and request.path == "/hooks"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("paysvc-webhooks/")
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        signature = request.headers["webhook-signature"]
        assert signature.startswith("v1,") and " " not in signature
        payload = _verify(endpoint["secret"], request)  # the independent implementation agrees

        (event,) = await hooks.events(type="payment.succeeded")
        assert request.headers["webhook-id"] == event["id"]
        assert payload == event and payload["data"]["object"]["id"] == r.json()["id"]
        # The body is the event's JSON byte for byte as the feed encodes it (no spaces, stored data).
        listed = (await hooks.http.get("/v1/events", params={"type": "payment.succeeded"},
                                       headers=hooks.headers)).content
        assert request.body in listed

        deliveries = await _eventually(lambda: _succeeded(hooks, endpoint["id"], 1))
        (delivery,) = deliveries
        assert list(delivery) == ["id", "object", "endpoint", "event", "event_type", "status", "attempts",
                                  "last_status_code", "last_error", "next_attempt_at", "created_at", "updated_at"]
        assert delivery["object"] == "webhook_delivery" and delivery["id"].startswith("whd_")
        assert (delivery["endpoint"], delivery["event"], delivery["event_type"]) == (
            endpoint["id"], event["id"], "payment.succeeded")
        assert (delivery["attempts"], delivery["last_status_code"], delivery["last_error"],
                delivery["next_attempt_at"]) == (1, 200, None, None)
        # Only the type it listed: the deposit's payment.succeeded, no other.
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 1


async def _succeeded(api: Api, endpoint_id: str, count: int) -> list[dict[str, Any]] | None:
    data = await _deliveries(api, endpoint_id, status="succeeded")
    return data if len(data) >= count else None


async def test_types_filter_and_an_endpoint_created_after_an_event_does_not_get_it(hooks: Api) -> None:
    async with Receiver() as early, Receiver() as late:
        refunds_only = await _endpoint(hooks, early.url, ["refund.succeeded"])
        funding, customer = await hooks.funded_account(1_000)
        merchant = await hooks.account()
        paid = await hooks.pay(customer["id"], merchant["id"], 500)
        assert paid.status_code == 201
        await hooks.events()  # numbered (and deliveries made) now, before the next endpoint exists
        everything = await _endpoint(hooks, late.url)
        refund = await hooks.refund(paid.json()["id"], 100)
        assert refund.status_code == 201

        (got,) = await early.wait_for(1, timeout_s=10)
        assert _verify(refunds_only["secret"], got)["type"] == "refund.succeeded"
        (late_got,) = await late.wait_for(1, timeout_s=10)
        assert _verify(everything["secret"], late_got)["data"]["object"]["id"] == refund.json()["id"]
        await asyncio.sleep(0.5)
        assert len(early.received) == 1 and len(late.received) == 1
        assert funding["id"] != customer["id"]


async def test_failures_are_retried_on_the_schedule_then_succeed(hooks: Api) -> None:
    answers = iter([Answer(500), Answer(503, body=b"x" * 200_000)])
    async with Receiver(lambda _r: next(answers, OK)) as receiver:
        endpoint = await _endpoint(hooks, receiver.url)
        await hooks.account(allow_negative=True)
        funding, _customer = await hooks.funded_account(10)
        first, second, third = await receiver.wait_for(3, timeout_s=15)
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
        # The schedule's delays (1 s each) separate the attempts; each attempt is signed afresh.
        assert 0.9 <= second.at - first.at < 3 and 0.9 <= third.at - second.at < 3
        for request in (first, second, third):
            _verify(endpoint["secret"], request)
        (delivery,) = await _eventually(lambda: _succeeded(hooks, endpoint["id"], 1))
        assert (delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (3, 200, None)
        assert funding["id"]


async def test_exhausted_delivery_fails_then_manual_retry_gets_a_fresh_budget(hooks: Api) -> None:
    healthy = False

    def behaviour(_request: Received) -> Answer:
        return OK if healthy else Answer(500)

    async with Receiver(behaviour) as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        await hooks.funded_account(10)
        await receiver.wait_for(3, timeout_s=15)

        async def failed() -> list[dict[str, Any]]:
            return await _deliveries(hooks, endpoint["id"], status="failed")

        (delivery,) = await _eventually(failed)
        assert (delivery["attempts"], delivery["last_status_code"], delivery["next_attempt_at"]) == (3, 500, None)
        assert delivery["last_error"] == "HTTP 500 (not a 2xx answer)"
        assert await _deliveries(hooks, endpoint["id"], status="pending") == []
        await asyncio.sleep(1.5)
        assert len(receiver.received) == 3  # the schedule had two delays: three attempts, then failed

        healthy = True
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/retry"
        r = await hooks.post(path, {})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending" and r.json()["next_attempt_at"] is not None
        await receiver.wait_for(4, timeout_s=10)
        (done,) = await _eventually(lambda: _succeeded(hooks, endpoint["id"], 1))
        assert (done["id"], done["attempts"], done["last_status_code"]) == (delivery["id"], 4, 200)
        r = await hooks.post(path, {})
        assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state", r.text


async def test_a_hanging_receiver_times_out_and_a_redirect_is_not_followed(hooks: Api) -> None:
    async with Receiver(lambda _r: HANG) as hanging, Receiver() as elsewhere:
        async with Receiver(lambda _r: Answer(307, {"Location": elsewhere.url})) as redirecting:
            slow = await _endpoint(hooks, hanging.url, ["payment.succeeded"])
            moved = await _endpoint(hooks, redirecting.url, ["payment.succeeded"])
            started = time.monotonic()
            await hooks.funded_account(10)
            await hanging.wait_for(1, timeout_s=10)
            await redirecting.wait_for(1, timeout_s=10)

            async def retried(endpoint_id: str) -> dict[str, Any] | None:
                data = await _deliveries(hooks, endpoint_id)
                return data[0] if data and data[0]["attempts"] >= 1 else None

            timed_out = await _eventually(lambda: retried(slow["id"]))
            assert timed_out["status"] == "pending" and timed_out["last_status_code"] is None
            assert timed_out["last_error"] == "timed out after 1 s"
            assert time.monotonic() - started < 10
            redirected = await _eventually(lambda: retried(moved["id"]))
            assert redirected["last_status_code"] == 307 and "redirect not followed" in redirected["last_error"]
            await asyncio.sleep(0.3)
            assert elsewhere.received == []


async def test_rotation_signs_with_both_secrets_during_the_overlap(hooks: Api) -> None:
    async with Receiver() as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        r = await hooks.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {})
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
        assert (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()["secret"] is None
        await hooks.funded_account(10)
        (request,) = await receiver.wait_for(1, timeout_s=10)
        signatures = request.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
        # Receivers holding either secret verify the same request.
        assert _verify(rotated["secret"], request) == _verify(endpoint["secret"], request)
        third = (await hooks.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {})).json()["secret"]
        await hooks.funded_account(10)
        _first, request = await receiver.wait_for(2, timeout_s=10)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        _verify(third, request)
        _verify(rotated["secret"], request)
        with pytest.raises(Exception, match="No matching signature"):
            _verify(endpoint["secret"], request)  # the first secret's overlap ended with the second rotation


async def test_deleting_an_endpoint_stops_its_pending_deliveries(hooks: Api, app_server: RunningServer) -> None:
    async with Receiver(lambda _r: Answer(500)) as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        await hooks.funded_account(10)
        await receiver.wait_for(1, timeout_s=10)
        r = await hooks.http.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks.headers)
        assert r.status_code == 200, r.text
        await asyncio.sleep(2.5)  # the schedule would have made two more attempts by now
        assert len(receiver.received) == 1
        rows = db_rows(app_server.database_url,
                       "SELECT status, last_error FROM webhook_deliveries WHERE endpoint_id = %s",
                       (ids.decode(ids.WEBHOOK_ENDPOINT, endpoint["id"]),))
        assert rows == [("failed", "endpoint deleted")]


async def test_a_disabled_endpoint_gets_nothing_and_resumes_parked_deliveries_when_enabled(hooks: Api) -> None:
    async with Receiver(lambda _r: Answer(500)) as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        await hooks.funded_account(10)
        await receiver.wait_for(1, timeout_s=10)
        assert (await hooks.post(path, {"status": "disabled"})).status_code == 200
        await hooks.funded_account(10)  # while disabled: no delivery for it
        await hooks.events()
        await asyncio.sleep(2.5)
        assert len(receiver.received) == 1  # the pending one is parked, not attempted
        (parked,) = await _deliveries(hooks, endpoint["id"])
        assert parked["status"] == "pending" and parked["next_attempt_at"] is None

        receiver.behaviour = lambda _r: OK
        assert (await hooks.post(path, {"status": "enabled"})).status_code == 200
        await receiver.wait_for(2, timeout_s=10)
        (done,) = await _eventually(lambda: _succeeded(hooks, endpoint["id"], 1))
        assert done["id"] == parked["id"] and done["attempts"] == 2


async def test_an_endpoint_failing_delivery_after_delivery_is_disabled(hooks: Api) -> None:
    async with Receiver(lambda _r: Answer(500)) as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        for _ in range(DISABLE_AFTER):
            await hooks.funded_account(10)

        async def disabled() -> bool:
            r = await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")
            return bool(r.json()["status"] == "disabled")

        assert await _eventually(disabled, timeout_s=20)
        failed = await _deliveries(hooks, endpoint["id"], status="failed")
        assert len(failed) == DISABLE_AFTER and all(d["attempts"] == 3 for d in failed)
        assert len(receiver.received) == 3 * DISABLE_AFTER


async def test_metrics_show_attempts_latency_and_backlog(hooks: Api, hooks_url: str) -> None:
    async with Receiver() as receiver:
        endpoint = await _endpoint(hooks, receiver.url, ["payment.succeeded"])
        await hooks.funded_account(10)
        await _eventually(lambda: _succeeded(hooks, endpoint["id"], 1))
    async with httpx.AsyncClient(base_url=hooks_url) as client:
        text = (await client.get("/metrics")).text
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line and not line.startswith("#")}
    assert lines['paysvc_webhook_attempts_total{outcome="succeeded"}'] >= 1
    assert 'paysvc_webhook_attempts_total{outcome="retrying"}' in lines
    assert 'paysvc_webhook_attempts_total{outcome="failed"}' in lines
    assert lines["paysvc_webhook_attempt_duration_seconds_count"] >= 1
    assert lines["paysvc_webhook_backlog"] >= 0 and lines["paysvc_webhook_backlog_oldest_age_seconds"] >= 0


async def test_openapi_documents_the_webhook_routes(http: httpx.AsyncClient) -> None:
    document = (await http.get("/schema/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/webhook-endpoints"]) >= {"get", "post"}
    assert set(paths["/v1/webhook-endpoints/{endpoint_id}"]) >= {"get", "post", "delete"}
    create = paths["/v1/webhook-endpoints"]["post"]
    assert create["requestBody"]["required"] is True
    assert {"201", "400", "401"} <= set(create["responses"])
    retry = paths["/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry"]["post"]
    assert {"200", "404", "409"} <= set(retry["responses"])
    assert json.dumps(document).count("webhook_delivery") >= 1


async def test_first_attempts_go_out_within_2_s_with_the_default_intervals(app_server: RunningServer) -> None:
    """The sequencer's and the deliverer's default intervals together keep the brief's 2 s."""
    settings = msgspec.structs.replace(app_server.settings, webhook_deliver_in_api=True, webhook_allow_private=True)
    defaults = type(settings)()
    assert (settings.events_sequence_interval_ms, settings.webhook_poll_interval_ms) == (
        defaults.events_sequence_interval_ms, defaults.webhook_poll_interval_ms)
    async with extra_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client, \
            Receiver() as receiver:
        api = await new_tenant(client, "prompt")
        await _endpoint(api, receiver.url, ["payment.succeeded"])
        funding = await api.account(allow_negative=True)
        customer = await api.account()
        for n in range(5):
            committed = time.monotonic()
            r = await api.pay(funding["id"], customer["id"], 100)
            assert r.status_code == 201, r.text
            arrived = (await receiver.wait_for(n + 1, timeout_s=10))[n]
            assert arrived.at - committed < 2.0, arrived.at - committed
            await asyncio.sleep(0.37 * n)  # at different points of the intervals
