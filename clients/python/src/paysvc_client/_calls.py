"""Every route of the API as a function that builds its request (path, query, body, idempotency key)
and names how to read its answer. The sync and async resources are thin wrappers over these, so
both send exactly the same requests.

Idempotency keys: a write that accepts one gets one per logical call (the caller's, or a fresh
uuid4), built here once, so the client's own retries send the same key again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from paysvc_client import types as t
from paysvc_client._core import (
    Call,
    ListCall,
    Request,
    body,
    decode_batch,
    decode_event,
    decoder,
    new_idempotency_key,
    query,
    segment,
)

_account = decoder(t.Account)
_payment = decoder(t.Payment)
_refund = decoder(t.Refund)
_entry = decoder(t.Entry)
_fees = decoder(t.FeeSchedule)
_tenant = decoder(t.Tenant)
_endpoint = decoder(t.WebhookEndpoint)
_deleted = decoder(t.DeletedWebhookEndpoint)
_delivery = decoder(t.WebhookDelivery)
_risk_settings = decoder(t.RiskSettings)
_risk_rules = decoder(t.RiskRules)
_risk_model = decoder(t.RiskModel)
_review = decoder(t.Review)


def _keyed_post(path: str, fields: dict[str, Any], idempotency_key: str | None, decode: Any) -> Call[Any]:
    key = idempotency_key if idempotency_key is not None else new_idempotency_key()
    return Call(Request("POST", path, body=body(fields), idempotency_key=key), decode)


def _list(path: str, item: Any, **params: object) -> ListCall[Any]:
    return ListCall(Request("GET", path, params=query(params)), item)


# ---- admin ---------------------------------------------------------------------------------------

def create_tenant(name: str) -> Call[t.Tenant]:
    # Not repeatable: a second tenant would be created if the first request got through unanswered.
    return Call(Request("POST", "/admin/v1/tenants", body=body({"name": name}), admin=True, repeatable=False), _tenant)


# ---- accounts ------------------------------------------------------------------------------------

def accounts_create(currency: str, allow_negative: bool | None, metadata: t.Metadata | None,
                    idempotency_key: str | None) -> Call[t.Account]:
    fields = {"currency": currency, "allow_negative": allow_negative, "metadata": metadata}
    return _keyed_post("/v1/accounts", fields, idempotency_key, _account)


def accounts_retrieve(account_id: str) -> Call[t.Account]:
    return Call(Request("GET", f"/v1/accounts/{segment(account_id)}"), _account)


def accounts_list(limit: int | None, starting_after: str | None) -> ListCall[t.Account]:
    return _list("/v1/accounts", _account, limit=limit, starting_after=starting_after)


def accounts_entries(account_id: str, limit: int | None, starting_after: str | None) -> ListCall[t.Entry]:
    return _list(f"/v1/accounts/{segment(account_id)}/entries", _entry, limit=limit, starting_after=starting_after)


# ---- payments ------------------------------------------------------------------------------------

def payments_create(amount: int, currency: str, source: str, destination: str, capture: bool | None,
                    description: str | None, metadata: t.Metadata | None, expires_in_s: int | None,
                    idempotency_key: str | None) -> Call[t.Payment]:
    fields = {"amount": amount, "currency": currency, "source": source, "destination": destination,
              "capture": capture, "description": description, "metadata": metadata, "expires_in_s": expires_in_s}
    return _keyed_post("/v1/payments", fields, idempotency_key, _payment)


def payments_retrieve(payment_id: str) -> Call[t.Payment]:
    return Call(Request("GET", f"/v1/payments/{segment(payment_id)}"), _payment)


def payments_list(limit: int | None, starting_after: str | None, status: str | None) -> ListCall[t.Payment]:
    return _list("/v1/payments", _payment, limit=limit, starting_after=starting_after, status=status)


def payments_capture(payment_id: str, amount: int | None, idempotency_key: str | None) -> Call[t.Payment]:
    return _keyed_post(f"/v1/payments/{segment(payment_id)}/capture", {"amount": amount}, idempotency_key, _payment)


def payments_cancel(payment_id: str, reason: str | None, idempotency_key: str | None) -> Call[t.Payment]:
    return _keyed_post(f"/v1/payments/{segment(payment_id)}/cancel", {"reason": reason}, idempotency_key, _payment)


def payments_refund(payment_id: str, amount: int | None, metadata: t.Metadata | None,
                    idempotency_key: str | None) -> Call[t.Refund]:
    fields = {"amount": amount, "metadata": metadata}
    return _keyed_post(f"/v1/payments/{segment(payment_id)}/refunds", fields, idempotency_key, _refund)


def payments_refunds(payment_id: str, limit: int | None, starting_after: str | None) -> ListCall[t.Refund]:
    return _list(f"/v1/payments/{segment(payment_id)}/refunds", _refund, limit=limit, starting_after=starting_after)


def payments_batch(payments: Sequence[t.PaymentParams | dict[str, Any]]) -> Call[list[t.BatchItem]]:
    """Each item gets its own idempotency key (its own, or a fresh one), fixed before the first send,
    so resending the whole batch replays the items that were applied."""
    items: list[dict[str, Any]] = []
    for item in payments:
        fields = msgspec.to_builtins(item) if isinstance(item, t.PaymentParams) else dict(item)
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.setdefault("idempotency_key", new_idempotency_key())
        items.append(fields)
    return Call(Request("POST", "/v1/payments/batch", body=body({"payments": items})), decode_batch)


def payments_fraud_report(payment_id: str, user_report: str) -> Call[t.Payment]:
    # Setting the same label twice leaves the same label: repeatable.
    return Call(Request("POST", f"/v1/payments/{segment(payment_id)}/fraud-report",
                        body=body({"user_report": user_report})), _payment)


# ---- events and fees -----------------------------------------------------------------------------

def events_list(limit: int | None, starting_after: str | None, type: str | None) -> ListCall[t.Event]:
    return _list("/v1/events", decode_event, limit=limit, starting_after=starting_after, type=type)


def fee_schedule_get() -> Call[t.FeeSchedule]:
    return Call(Request("GET", "/v1/fee-schedule"), _fees)


def fee_schedule_put(rules: Sequence[t.FeeRuleParams | dict[str, Any]]) -> Call[t.FeeSchedule]:
    return Call(Request("PUT", "/v1/fee-schedule", body=body({"rules": _builtins(rules)})), _fees)


def _builtins(items: Sequence[msgspec.Struct | dict[str, Any]]) -> list[Any]:
    return [msgspec.to_builtins(i) if isinstance(i, msgspec.Struct) else dict(i) for i in items]


# ---- webhook endpoints (brief section 7) ---------------------------------------------------------

_WE = "/v1/webhook-endpoints"


def webhook_endpoints_create(url: str, enabled_events: Sequence[str], description: str | None,
                             metadata: t.Metadata | None) -> Call[t.WebhookEndpoint]:
    fields = {"url": url, "enabled_events": list(enabled_events), "description": description, "metadata": metadata}
    # The route takes no idempotency key: a create whose request may have arrived is not resent.
    return Call(Request("POST", _WE, body=body(fields), repeatable=False), _endpoint)


def webhook_endpoints_retrieve(endpoint_id: str) -> Call[t.WebhookEndpoint]:
    return Call(Request("GET", f"{_WE}/{segment(endpoint_id)}"), _endpoint)


def webhook_endpoints_list(limit: int | None, starting_after: str | None) -> ListCall[t.WebhookEndpoint]:
    return _list(_WE, _endpoint, limit=limit, starting_after=starting_after)


def webhook_endpoints_update(endpoint_id: str, url: str | None, enabled_events: Sequence[str] | None,
                             status: str | None, description: str | None,
                             metadata: t.Metadata | None) -> Call[t.WebhookEndpoint]:
    fields = {"url": url, "enabled_events": None if enabled_events is None else list(enabled_events),
              "status": status, "description": description, "metadata": metadata}
    # Setting fields to given values twice is setting them once: repeatable.
    return Call(Request("POST", f"{_WE}/{segment(endpoint_id)}", body=body(fields)), _endpoint)


def webhook_endpoints_delete(endpoint_id: str) -> Call[t.DeletedWebhookEndpoint]:
    return Call(Request("DELETE", f"{_WE}/{segment(endpoint_id)}"), _deleted)


def webhook_endpoints_rotate_secret(endpoint_id: str) -> Call[t.WebhookEndpoint]:
    # Not repeatable: a second rotation would retire the secret the first one returned.
    return Call(Request("POST", f"{_WE}/{segment(endpoint_id)}/rotate-secret", body=b"{}", repeatable=False),
                _endpoint)


def webhook_endpoints_deliveries(endpoint_id: str, limit: int | None, starting_after: str | None,
                                 status: str | None) -> ListCall[t.WebhookDelivery]:
    return _list(f"{_WE}/{segment(endpoint_id)}/deliveries", _delivery, limit=limit,
                 starting_after=starting_after, status=status)


def webhook_endpoints_retry_delivery(endpoint_id: str, delivery_id: str) -> Call[t.WebhookDelivery]:
    path = f"{_WE}/{segment(endpoint_id)}/deliveries/{segment(delivery_id)}/retry"
    # A resend after the first went through would be 409 invalid_state, not a second retry.
    return Call(Request("POST", path, body=b"{}", repeatable=False), _delivery)


# ---- risk and reviews (brief section 8) ----------------------------------------------------------

def risk_settings_get() -> Call[t.RiskSettings]:
    return Call(Request("GET", "/v1/risk/settings"), _risk_settings)


def risk_settings_put(mode: str, thresholds: t.RiskThresholds | dict[str, int] | None, champion: str | None,
                      challenger: t.RiskChallenger | dict[str, Any] | None,
                      shadow_models: Sequence[str] | None) -> Call[t.RiskSettings]:
    # PUT replaces the settings: a field left out (None) takes the server's default.
    fields: dict[str, Any] = {
        "mode": mode,
        "thresholds": None if thresholds is None else msgspec.to_builtins(thresholds),
        "champion": champion,
        "challenger": None if challenger is None else msgspec.to_builtins(challenger),
        "shadow_models": None if shadow_models is None else list(shadow_models),
    }
    return Call(Request("PUT", "/v1/risk/settings", body=body(fields)), _risk_settings)


def risk_rules_get() -> Call[t.RiskRules]:
    return Call(Request("GET", "/v1/risk/rules"), _risk_rules)


def risk_rules_put(rules: Sequence[t.RiskRuleParams | dict[str, Any]]) -> Call[t.RiskRules]:
    return Call(Request("PUT", "/v1/risk/rules", body=body({"rules": _builtins(rules)})), _risk_rules)


def risk_models() -> ListCall[t.RiskModel]:
    return _list("/v1/risk/models", _risk_model)


def reviews_list(limit: int | None, starting_after: str | None, open: bool | None) -> ListCall[t.Review]:
    return _list("/v1/reviews", _review, limit=limit, starting_after=starting_after, open=open)


def reviews_retrieve(review_id: str) -> Call[t.Review]:
    return Call(Request("GET", f"/v1/reviews/{segment(review_id)}"), _review)


def reviews_approve(review_id: str) -> Call[t.Review]:
    # A resend after the first went through would be 409 invalid_state.
    return Call(Request("POST", f"/v1/reviews/{segment(review_id)}/approve", body=b"{}", repeatable=False),
                _review)
