from __future__ import annotations

import httpx

ROUTES = {
    ("/v1/accounts", "post"), ("/v1/accounts", "get"), ("/v1/accounts/{account_id}", "get"),
    ("/v1/accounts/{account_id}/entries", "get"), ("/v1/payments", "post"), ("/v1/payments", "get"),
    ("/v1/payments/{payment_id}", "get"), ("/v1/fee-schedule", "put"), ("/v1/fee-schedule", "get"),
    ("/admin/v1/tenants", "post"), ("/healthz", "get"), ("/readyz", "get"),
    ("/v1/payments/{payment_id}/capture", "post"), ("/v1/payments/{payment_id}/cancel", "post"),
    ("/v1/payments/{payment_id}/refunds", "post"), ("/v1/payments/{payment_id}/refunds", "get"),
    ("/v1/events", "get"),
}


async def test_openapi_document_describes_every_route_with_errors(http: httpx.AsyncClient) -> None:
    r = await http.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    found = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert ROUTES <= found, ROUTES - found
    create = doc["paths"]["/v1/payments"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaymentCreate"}
    assert {"201", "400", "401", "402", "404", "409", "413", "422", "429", "503"} <= set(create["responses"])
    parameters = {p["name"] for p in create.get("parameters", [])}
    assert "Idempotency-Key" in parameters
    schemas = doc["components"]["schemas"]
    assert {"PaymentCreate", "AccountCreate", "FeeScheduleIn", "Payment", "Account", "ErrorBody"} <= set(schemas)
    assert set(schemas["PaymentCreate"]["required"]) == {"amount", "currency", "source", "destination"}
    refund = doc["paths"]["/v1/payments/{payment_id}/refunds"]["post"]
    assert {"201", "400", "402", "404", "409", "422"} <= set(refund["responses"])
    assert refund["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RefundCreate"}
    events = doc["paths"]["/v1/events"]["get"]
    assert {p["name"] for p in events["parameters"]} >= {"limit", "starting_after", "type"}
    assert {"Refund", "RefundList", "PaymentCapture", "PaymentCancel"} <= set(schemas)
    for path, method in ROUTES - {("/healthz", "get")}:
        assert doc["paths"][path][method]["responses"], (path, method)


async def test_health_endpoints_need_no_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}
