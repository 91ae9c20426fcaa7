from __future__ import annotations

import uuid
from typing import Any

import httpx

from conftest import Api, RunningServer, db_rows
from paysvc import ids

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
# Routes another issue may add: exercised when the served document has them, not required before.
OPTIONAL_ROUTES = {("POST", "/v1/payments/batch")}


async def test_another_tenants_resources_answer_404_and_do_not_leak(api: Api, other_api: Api) -> None:
    funding, theirs = await other_api.funded_account(1_000)
    their_payment = (await other_api.get("/v1/payments")).json()["data"][0]
    _, mine = await api.funded_account(1_000)

    for path in (f"/v1/accounts/{theirs['id']}", f"/v1/accounts/{theirs['id']}/entries",
                 f"/v1/payments/{their_payment['id']}"):
        r = await api.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "resource_missing"

    r = await api.pay(theirs["id"], mine["id"], 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "source"
    r = await api.pay(mine["id"], theirs["id"], 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "destination"

    my_ids = {a["id"] for a in (await api.get("/v1/accounts", limit=100)).json()["data"]}
    assert theirs["id"] not in my_ids and funding["id"] not in my_ids
    assert their_payment["id"] not in {p["id"] for p in (await api.get("/v1/payments", limit=100)).json()["data"]}
    r = await api.get("/v1/payments", starting_after=their_payment["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"

    assert await other_api.balance(theirs["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    assert await api.balance(mine["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    # Fee schedules are per tenant too.
    await other_api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 100}]})
    assert (await api.get("/v1/fee-schedule")).json() == {"rules": []}


# --- Every /v1 route, called by one tenant with the other's ids -------------------------------------

TENANT_ROWS = """
SELECT (SELECT count(*) FROM accounts WHERE tenant_id = %s),
       (SELECT count(*) FROM payments WHERE tenant_id = %s),
       (SELECT count(*) FROM entries WHERE tenant_id = %s),
       (SELECT count(*) FROM refunds WHERE tenant_id = %s),
       (SELECT count(*) FROM events WHERE tenant_id = %s),
       (SELECT count(*) FROM idempotency_keys WHERE tenant_id = %s),
       (SELECT count(*) FROM fee_rules WHERE tenant_id = %s),
       (SELECT count(*) FROM reviews WHERE tenant_id = %s),
       (SELECT count(*) FROM risk_rules WHERE tenant_id = %s),
       (SELECT count(*) FROM risk_settings WHERE tenant_id = %s),
       (SELECT count(*) FROM webhook_endpoints WHERE tenant_id = %s),
       (SELECT count(*) FROM webhook_deliveries WHERE tenant_id = %s)
"""


async def _page(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    r = await api.get(path, limit=100, **params)
    assert r.status_code == 200, r.text
    assert r.json()["has_more"] is False  # the fixtures stay small: one page is everything
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def _snapshot(api: Api, database_url: str) -> dict[str, Any]:
    """Everything the tenant can see, and how many rows it owns in each table."""
    accounts = await _page(api, "/v1/accounts")
    payments = await _page(api, "/v1/payments")
    state: dict[str, Any] = {
        "accounts": accounts,
        "payments": payments,
        "entries": {a["id"]: await _page(api, f"/v1/accounts/{a['id']}/entries") for a in accounts},
        "account_objects": {a["id"]: (await api.get(f"/v1/accounts/{a['id']}")).json() for a in accounts},
        "payment_objects": {p["id"]: await api.payment(p["id"]) for p in payments},
        "refunds": {p["id"]: await _page(api, f"/v1/payments/{p['id']}/refunds") for p in payments},
        "events": await api.events(),
        "fee_schedule": (await api.get("/v1/fee-schedule")).json(),
        "risk_settings": (await api.get("/v1/risk/settings")).json(),
        "risk_rules": (await api.get("/v1/risk/rules")).json(),
        "reviews": await _page(api, "/v1/reviews"),
    }
    endpoints = await _page(api, "/v1/webhook-endpoints")
    state["webhook_endpoints"] = endpoints
    state["webhook_endpoint_objects"] = {
        e["id"]: (await api.get(f"/v1/webhook-endpoints/{e['id']}")).json() for e in endpoints}
    state["webhook_deliveries"] = {
        e["id"]: await _page(api, f"/v1/webhook-endpoints/{e['id']}/deliveries") for e in endpoints}
    tenant = ids.decode(ids.TENANT, api.tenant_id)
    state["rows"] = db_rows(database_url, TENANT_ROWS, (tenant,) * 12)
    return state


class Probe:
    """Calls routes by their OpenAPI template and remembers which ones it covered."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.covered: set[tuple[str, str]] = set()

    async def call(self, method: str, template: str, *, params: dict[str, Any] | None = None,
                   body: Any = None, idempotency_key: str | None = None, **path_ids: str) -> httpx.Response:
        self.covered.add((method, template))
        path = template.format(**path_ids)
        headers = dict(self.api.headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return await self.api.http.request(method, path, params=params, json=body, headers=headers)

    async def expect(self, status: int, code: str, method: str, template: str, *, param: str | None = None,
                     **kwargs: Any) -> None:
        r = await self.call(method, template, **kwargs)
        assert r.status_code == status, (method, template, kwargs, r.text)
        error = r.json()["error"]
        assert error["code"] == code, (method, template, kwargs, r.text)
        if param is not None:
            assert error["param"] == param, (method, template, kwargs, r.text)


async def _v1_routes(http: httpx.AsyncClient) -> set[tuple[str, str]]:
    r = await http.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    return {
        (method.upper(), path)
        for path, operations in r.json()["paths"].items() if path.startswith("/v1/")
        for method in operations if method in HTTP_METHODS
    }


async def test_every_v1_route_refuses_another_tenants_ids_and_changes_nothing(
    app_server: RunningServer, http: httpx.AsyncClient, api: Api, other_api: Api,
) -> None:
    victim = other_api
    # The victim: a fee schedule (and so a fee account), a deposit, a captured payment with a
    # partial refund, an open hold and a canceled one, and their events.
    r = await victim.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 100, "fixed": 1}]})
    assert r.status_code == 200, r.text
    # A webhook endpoint (this server delivers nothing: its deliveries stay as they are made).
    r = await victim.post("/v1/webhook-endpoints", {"url": "https://hooks.victim.invalid/x", "enabled_events": ["*"]})
    assert r.status_code == 201, r.text
    their_endpoint = r.json()["id"]
    shared_key = f"shared-{uuid.uuid4().hex}"
    funding = await victim.account(allow_negative=True)
    customer = await victim.account()
    merchant = await victim.account()
    r = await victim.pay(funding["id"], customer["id"], 10_000, key=shared_key)
    assert r.status_code == 201, r.text
    captured = await victim.pay(customer["id"], merchant["id"], 1_000)
    assert captured.status_code == 201, captured.text
    their_captured = captured.json()["id"]
    refund = await victim.refund(their_captured, 200)
    assert refund.status_code == 201, refund.text
    their_refund = refund.json()["id"]
    their_hold = (await victim.hold(customer["id"], merchant["id"], 500))["id"]
    their_canceled = (await victim.hold(customer["id"], merchant["id"], 300))["id"]
    assert (await victim.cancel(their_canceled)).status_code == 200
    their_payments = [their_captured, their_hold, their_canceled]
    # Risk: enforce, a review rule, and a payment under review.
    r = await victim.put("/v1/risk/settings",
                         {"mode": "enforce", "thresholds": {"elevated": 100, "highest": 100}})
    assert r.status_code == 200, r.text
    r = await victim.put("/v1/risk/rules", {"rules": [{"action": "review", "predicate": ":amount: = 777"}]})
    assert r.status_code == 200, r.text
    reviewed = await victim.pay(customer["id"], merchant["id"], 777)
    assert reviewed.status_code == 201 and reviewed.json()["review"] is not None, reviewed.text
    their_review = reviewed.json()["review"]
    their_payments.append(reviewed.json()["id"])
    their_entry = (await _page(victim, f"/v1/accounts/{customer['id']}/entries"))[0]["id"]
    their_event = (await victim.events())[0]["id"]
    their_fee_account = next(a["id"] for a in await _page(victim, "/v1/accounts") if a["purpose"] == "fees")
    their_accounts = [funding["id"], customer["id"], merchant["id"], their_fee_account]
    their_delivery = (await _page(victim, f"/v1/webhook-endpoints/{their_endpoint}/deliveries"))[0]["id"]
    # Failed, so that a retry by the victim would change it.
    db_rows(app_server.database_url, "UPDATE webhook_deliveries SET status = 'failed' WHERE id = %s RETURNING id",
            (ids.decode(ids.WEBHOOK_DELIVERY, their_delivery),))

    # The attacker has its own money, so that every 404 is about the other tenant's id alone.
    my_funding, mine = await api.funded_account(5_000)
    my_other = await api.account()
    my_payment = (await api.pay(mine["id"], my_other["id"], 100)).json()["id"]
    assert (await api.refund(my_payment, 10)).status_code == 201

    before = await _snapshot(victim, app_server.database_url)
    probe = Probe(api)

    # Accounts.
    for account in their_accounts:
        await probe.expect(404, "resource_missing", "GET", "/v1/accounts/{account_id}", account_id=account)
        await probe.expect(404, "resource_missing", "GET", "/v1/accounts/{account_id}/entries", account_id=account)
        await probe.expect(400, "invalid_cursor", "GET", "/v1/accounts", params={"starting_after": account})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/accounts/{account_id}/entries",
                       account_id=mine["id"], params={"starting_after": their_entry})
    listed = await probe.call("GET", "/v1/accounts", params={"limit": 100})
    assert not {a["id"] for a in listed.json()["data"]} & set(their_accounts)
    created = await probe.call("POST", "/v1/accounts", body={"currency": "USD"})
    assert created.status_code == 201, created.text

    # Payments: ids in the body, in the path and as cursors.
    for account in their_accounts:
        body = {"amount": 10, "currency": "USD", "source": account, "destination": my_other["id"]}
        await probe.expect(404, "resource_missing", "POST", "/v1/payments", param="source", body=body,
                           idempotency_key=f"x-{uuid.uuid4().hex}")
        body = {"amount": 10, "currency": "USD", "source": mine["id"], "destination": account}
        await probe.expect(404, "resource_missing", "POST", "/v1/payments", param="destination", body=body,
                           idempotency_key=f"x-{uuid.uuid4().hex}")
    body = {"amount": 10, "currency": "USD", "source": customer["id"], "destination": merchant["id"],
            "capture": False}
    await probe.expect(404, "resource_missing", "POST", "/v1/payments", body=body,
                       idempotency_key=f"x-{uuid.uuid4().hex}")
    for payment in their_payments:
        await probe.expect(404, "resource_missing", "GET", "/v1/payments/{payment_id}", payment_id=payment)
        await probe.expect(400, "invalid_cursor", "GET", "/v1/payments", params={"starting_after": payment})
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/capture",
                           payment_id=payment, body={})
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/capture",
                           payment_id=payment, body={"amount": 1}, idempotency_key=f"x-{uuid.uuid4().hex}")
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/cancel",
                           payment_id=payment, body={})
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/cancel",
                           payment_id=payment, body={"reason": "fraudulent"}, idempotency_key=f"x-{uuid.uuid4().hex}")
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/refunds",
                           payment_id=payment, body={}, idempotency_key=f"x-{uuid.uuid4().hex}")
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/refunds",
                           payment_id=payment, body={"amount": 1}, idempotency_key=f"x-{uuid.uuid4().hex}")
        await probe.expect(404, "resource_missing", "GET", "/v1/payments/{payment_id}/refunds", payment_id=payment)
        await probe.expect(404, "resource_missing", "POST", "/v1/payments/{payment_id}/fraud-report",
                           payment_id=payment, body={"user_report": "fraudulent"})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/payments/{payment_id}/refunds",
                       payment_id=my_payment, params={"starting_after": their_refund})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/payments",
                       params={"starting_after": their_captured, "status": "succeeded"})
    listed = await probe.call("GET", "/v1/payments", params={"limit": 100})
    assert not {p["id"] for p in listed.json()["data"]} & set(their_payments)
    # Idempotency keys are per tenant: the victim's key is a fresh key here, not a replay or a 422.
    reused = await probe.call("POST", "/v1/payments", idempotency_key=shared_key,
                              body={"amount": 7, "currency": "USD", "source": mine["id"],
                                    "destination": my_other["id"]})
    assert reused.status_code == 201 and "idempotent-replayed" not in reused.headers, reused.text
    assert reused.json()["amount"] == 7 and reused.json()["source"] == mine["id"]

    # Events.
    await probe.expect(400, "invalid_cursor", "GET", "/v1/events", params={"starting_after": their_event})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/events",
                       params={"starting_after": their_event, "type": "payment.succeeded"})
    listed = await probe.call("GET", "/v1/events", params={"limit": 100})
    assert listed.status_code == 200
    my_events = listed.json()["data"]
    assert not {e["id"] for e in my_events} & {e["id"] for e in before["events"]}
    their_objects = set(their_payments) | {their_refund}
    assert not {e["data"]["object"]["id"] for e in my_events} & their_objects

    # Fee schedule: each tenant reads and replaces only its own.
    mine_before = await probe.call("GET", "/v1/fee-schedule")
    assert mine_before.json() == {"rules": []}
    r = await probe.call("PUT", "/v1/fee-schedule", body={"rules": [{"currency": "USD", "percent_bps": 5_000}]})
    assert r.status_code == 200, r.text
    r = await probe.call("PUT", "/v1/fee-schedule", body={"rules": []})
    assert r.status_code == 200 and r.json() == {"rules": []}

    # Risk: settings and rules are per tenant; the victim's review is a missing one.
    r = await probe.call("GET", "/v1/risk/settings")
    assert r.status_code == 200 and r.json()["mode"] == "shadow", r.text
    r = await probe.call("PUT", "/v1/risk/settings", body={"mode": "off"})
    assert r.status_code == 200, r.text
    r = await probe.call("GET", "/v1/risk/rules")
    assert r.status_code == 200 and r.json() == {"rules": []}, r.text
    r = await probe.call("PUT", "/v1/risk/rules", body={"rules": [{"action": "block", "predicate": ":amount: > 1"}]})
    assert r.status_code == 200, r.text
    r = await probe.call("GET", "/v1/risk/models")
    assert r.status_code == 200 and r.json()["object"] == "list", r.text
    await probe.expect(404, "resource_missing", "GET", "/v1/reviews/{review_id}", review_id=their_review)
    await probe.expect(404, "resource_missing", "POST", "/v1/reviews/{review_id}/approve", review_id=their_review)
    await probe.expect(400, "invalid_cursor", "GET", "/v1/reviews", params={"starting_after": their_review})
    listed = await probe.call("GET", "/v1/reviews", params={"limit": 100})
    assert listed.status_code == 200 and listed.json()["data"] == [], listed.text
    # Webhook endpoints and deliveries.
    mine_hook = await probe.call("POST", "/v1/webhook-endpoints",
                                 body={"url": "https://hooks.attacker.invalid/x", "enabled_events": ["*"]})
    assert mine_hook.status_code == 201, mine_hook.text
    my_endpoint = mine_hook.json()["id"]
    await probe.expect(404, "resource_missing", "GET", "/v1/webhook-endpoints/{endpoint_id}",
                       endpoint_id=their_endpoint)
    await probe.expect(404, "resource_missing", "POST", "/v1/webhook-endpoints/{endpoint_id}",
                       endpoint_id=their_endpoint, body={"status": "disabled"})
    await probe.expect(404, "resource_missing", "DELETE", "/v1/webhook-endpoints/{endpoint_id}",
                       endpoint_id=their_endpoint)
    await probe.expect(404, "resource_missing", "POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
                       endpoint_id=their_endpoint, body={})
    await probe.expect(404, "resource_missing", "GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries",
                       endpoint_id=their_endpoint)
    for endpoint in (their_endpoint, my_endpoint):
        await probe.expect(404, "resource_missing", "POST",
                           "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
                           endpoint_id=endpoint, delivery_id=their_delivery, body={})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/webhook-endpoints",
                       params={"starting_after": their_endpoint})
    await probe.expect(400, "invalid_cursor", "GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries",
                       endpoint_id=my_endpoint, params={"starting_after": their_delivery})
    listed = await probe.call("GET", "/v1/webhook-endpoints", params={"limit": 100})
    assert [e["id"] for e in listed.json()["data"]] == [my_endpoint]

    # Batch payments (when the route exists): each item answers 404 on its own.
    routes = await _v1_routes(http)
    if ("POST", "/v1/payments/batch") in routes:
        items = [{"amount": 10, "currency": "USD", "source": account, "destination": my_other["id"],
                  "idempotency_key": f"x-{uuid.uuid4().hex}"} for account in their_accounts]
        items += [{"amount": 10, "currency": "USD", "source": mine["id"], "destination": account,
                   "idempotency_key": f"x-{uuid.uuid4().hex}"} for account in their_accounts]
        r = await probe.call("POST", "/v1/payments/batch", body={"payments": items})
        assert r.status_code == 200, r.text
        for item in r.json()["data"]:
            assert item["status"] == 404 and item["body"]["error"]["code"] == "resource_missing", item

    # Nothing the victim can see, and no row it owns, changed.
    after = await _snapshot(victim, app_server.database_url)
    assert after == before
    assert (await victim.get("/v1/fee-schedule")).json()["rules"][0]["percent_bps"] == 100
    # The attacker's own money is where it was, less its own payments.
    assert await api.balance(mine["id"]) == {"posted": 5_000 - 100 + 10 - 7, "pending": 0,
                                             "available": 5_000 - 100 + 10 - 7}
    assert my_funding["id"] != mine["id"]

    # Every /v1 route the app serves was called above: a new route must be added here.
    missing = routes - probe.covered
    assert not missing, f"routes without a tenant-isolation check: {sorted(missing)}"
    unknown = probe.covered - routes - OPTIONAL_ROUTES
    assert not unknown, f"checked routes the app does not serve: {sorted(unknown)}"
