"""The synchronous client: ``Client(api_key).payments.create(...)``."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from paysvc_client import _calls as c
from paysvc_client import types as t
from paysvc_client._core import DEFAULT_BASE_URL, Call, Core, ListCall, Request, item_id, read

T = TypeVar("T")
U = TypeVar("U")


class Page(Generic[T]):
    """One page of a list. Iterating it gives its items; ``auto_paging_iter()`` gives every item of
    this page and of the pages after it, fetched as they are reached (``starting_after``)."""

    object = "list"

    def __init__(self, client: Client, call: ListCall[T], data: list[T], has_more: bool) -> None:
        self._client = client
        self._call = call
        self.data = data
        self.has_more = has_more

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Page(data=<{len(self.data)} items>, has_more={self.has_more})"

    def next_page(self) -> Page[T] | None:
        if not self.has_more or not self.data:
            return None
        return self._client._page(self._call.after(item_id(self.data[-1])))

    def auto_paging_iter(self) -> Iterator[T]:
        page: Page[T] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()


class _Resource:
    def __init__(self, client: Client) -> None:
        self._client = client


class Accounts(_Resource):
    def create(self, *, currency: str, allow_negative: bool | None = None, metadata: t.Metadata | None = None,
               idempotency_key: str | None = None) -> t.Account:
        return self._client._run(c.accounts_create(currency, allow_negative, metadata, idempotency_key))

    def retrieve(self, account_id: str) -> t.Account:
        return self._client._run(c.accounts_retrieve(account_id))

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Page[t.Account]:
        return self._client._page(c.accounts_list(limit, starting_after))

    def entries(self, account_id: str, *, limit: int | None = None,
                starting_after: str | None = None) -> Page[t.Entry]:
        return self._client._page(c.accounts_entries(account_id, limit, starting_after))


class Payments(_Resource):
    def create(self, *, amount: int, currency: str, source: str, destination: str, capture: bool | None = None,
               description: str | None = None, metadata: t.Metadata | None = None,
               expires_in_s: int | None = None, idempotency_key: str | None = None) -> t.Payment:
        return self._client._run(c.payments_create(amount, currency, source, destination, capture, description,
                                                   metadata, expires_in_s, idempotency_key))

    def retrieve(self, payment_id: str) -> t.Payment:
        return self._client._run(c.payments_retrieve(payment_id))

    def list(self, *, limit: int | None = None, starting_after: str | None = None,
             status: t.PaymentStatus | None = None) -> Page[t.Payment]:
        return self._client._page(c.payments_list(limit, starting_after, status))

    def capture(self, payment_id: str, *, amount: int | None = None, idempotency_key: str | None = None) -> t.Payment:
        return self._client._run(c.payments_capture(payment_id, amount, idempotency_key))

    def cancel(self, payment_id: str, *, reason: t.CancelReason | None = None,
               idempotency_key: str | None = None) -> t.Payment:
        return self._client._run(c.payments_cancel(payment_id, reason, idempotency_key))

    def refund(self, payment_id: str, *, amount: int | None = None, metadata: t.Metadata | None = None,
               idempotency_key: str | None = None) -> t.Refund:
        return self._client._run(c.payments_refund(payment_id, amount, metadata, idempotency_key))

    def refunds(self, payment_id: str, *, limit: int | None = None,
                starting_after: str | None = None) -> Page[t.Refund]:
        return self._client._page(c.payments_refunds(payment_id, limit, starting_after))

    def batch(self, payments: Sequence[t.PaymentParams | dict[str, Any]]) -> builtins.list[t.BatchItem]:
        return self._client._run(c.payments_batch(payments))

    def fraud_report(self, payment_id: str, *, user_report: t.UserReport) -> t.Payment:
        return self._client._run(c.payments_fraud_report(payment_id, user_report))


class Events(_Resource):
    def list(self, *, limit: int | None = None, starting_after: str | None = None,
             type: str | None = None) -> Page[t.Event]:
        return self._client._page(c.events_list(limit, starting_after, type))


class FeeSchedules(_Resource):
    def get(self) -> t.FeeSchedule:
        return self._client._run(c.fee_schedule_get())

    def put(self, rules: Sequence[t.FeeRuleParams | dict[str, Any]]) -> t.FeeSchedule:
        return self._client._run(c.fee_schedule_put(rules))


class WebhookEndpoints(_Resource):
    def create(self, *, url: str, enabled_events: Sequence[str], description: str | None = None,
               metadata: t.Metadata | None = None) -> t.WebhookEndpoint:
        return self._client._run(c.webhook_endpoints_create(url, enabled_events, description, metadata))

    def retrieve(self, endpoint_id: str) -> t.WebhookEndpoint:
        return self._client._run(c.webhook_endpoints_retrieve(endpoint_id))

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Page[t.WebhookEndpoint]:
        return self._client._page(c.webhook_endpoints_list(limit, starting_after))

    def update(self, endpoint_id: str, *, url: str | None = None, enabled_events: Sequence[str] | None = None,
               status: t.WebhookEndpointStatus | None = None, description: str | None = None,
               metadata: t.Metadata | None = None) -> t.WebhookEndpoint:
        return self._client._run(c.webhook_endpoints_update(endpoint_id, url, enabled_events, status, description,
                                                            metadata))

    def delete(self, endpoint_id: str) -> t.DeletedWebhookEndpoint:
        return self._client._run(c.webhook_endpoints_delete(endpoint_id))

    def rotate_secret(self, endpoint_id: str) -> t.WebhookEndpoint:
        return self._client._run(c.webhook_endpoints_rotate_secret(endpoint_id))

    def deliveries(self, endpoint_id: str, *, limit: int | None = None, starting_after: str | None = None,
                   status: t.DeliveryStatus | None = None) -> Page[t.WebhookDelivery]:
        return self._client._page(c.webhook_endpoints_deliveries(endpoint_id, limit, starting_after, status))

    def retry_delivery(self, endpoint_id: str, delivery_id: str) -> t.WebhookDelivery:
        return self._client._run(c.webhook_endpoints_retry_delivery(endpoint_id, delivery_id))


class Risk(_Resource):
    def settings_get(self) -> t.RiskSettings:
        return self._client._run(c.risk_settings_get())

    def settings_put(self, *, mode: t.RiskMode, thresholds: t.RiskThresholds | dict[str, int] | None = None,
                     champion: str | None = None, challenger: t.RiskChallenger | dict[str, Any] | None = None,
                     shadow_models: Sequence[str] | None = None) -> t.RiskSettings:
        return self._client._run(c.risk_settings_put(mode, thresholds, champion, challenger, shadow_models))

    def rules_get(self) -> t.RiskRules:
        return self._client._run(c.risk_rules_get())

    def rules_put(self, rules: Sequence[t.RiskRuleParams | dict[str, Any]]) -> t.RiskRules:
        return self._client._run(c.risk_rules_put(rules))

    def models(self) -> Page[t.RiskModel]:
        return self._client._page(c.risk_models())


class Reviews(_Resource):
    def list(self, *, limit: int | None = None, starting_after: str | None = None,
             open: bool | None = None) -> Page[t.Review]:
        return self._client._page(c.reviews_list(limit, starting_after, open))

    def retrieve(self, review_id: str) -> t.Review:
        return self._client._run(c.reviews_retrieve(review_id))

    def approve(self, review_id: str) -> t.Review:
        return self._client._run(c.reviews_approve(review_id))


class Client:
    """A tenant's synchronous client.

    ``api_key`` (default ``$PAYSVC_API_KEY``) authenticates ``/v1`` calls; ``admin_token`` (default
    ``$PAYSVC_ADMIN_TOKEN``) is only for :meth:`create_tenant`. Requests that fail with a connection
    error, a timeout, 409 ``idempotency_key_in_use``, 429 or 503 are sent again, with the same
    idempotency key, up to ``max_retries`` times, after a capped exponential backoff with jitter
    (or what ``Retry-After`` says, up to ``max_retry_after_s``). Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        admin_token: str | None = None,
        max_retries: int = 2,
        timeout_s: float = 30.0,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._core = Core(api_key, base_url=base_url, admin_token=admin_token, max_retries=max_retries,
                          timeout_s=timeout_s, initial_backoff_s=initial_backoff_s, max_backoff_s=max_backoff_s,
                          max_retry_after_s=max_retry_after_s)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.accounts = Accounts(self)
        self.payments = Payments(self)
        self.events = Events(self)
        self.fee_schedule = FeeSchedules(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.risk = Risk(self)
        self.reviews = Reviews(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def with_api_key(self, api_key: str) -> Client:
        """A client with the same options and HTTP connections, for another tenant's key."""
        core = self._core
        return Client(api_key, base_url=core.base_url, admin_token=core.admin_token, max_retries=core.max_retries,
                      timeout_s=core.timeout_s, initial_backoff_s=core.initial_backoff_s,
                      max_backoff_s=core.max_backoff_s, max_retry_after_s=core.max_retry_after_s,
                      http_client=self._http)

    def create_tenant(self, name: str) -> t.Tenant:
        """``POST /admin/v1/tenants`` with the admin token: a tenant and its API key (shown once)."""
        return self._run(c.create_tenant(name))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- sending ----

    def _send(self, request: Request) -> bytes:
        core = self._core
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    request.method, core.base_url + request.path, params=request.params, content=request.body,
                    headers=core.headers(request), timeout=core.timeout_s,
                )
            except httpx.TransportError as error:
                delay_s = core.retry_after_exception(request, error, attempt)
                if delay_s is None:
                    raise core.connection_error(request, error) from error
            else:
                delay_s = core.retry_after_response(request, response, attempt)
                if delay_s is None:
                    return core.result(response)
            time.sleep(delay_s)
            attempt += 1

    def _run(self, call: Call[U]) -> U:
        return read(call.decode, self._send(call.request))

    def _page(self, call: ListCall[U]) -> Page[U]:
        data, has_more = read(call.decode, self._send(call.request))
        return Page(self, call, data, has_more)


__all__ = ["DEFAULT_BASE_URL", "Client", "Page"]
