"""Webhook endpoints and their deliveries (brief, section 7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from paysvc.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    EngineDep,
    Limit,
    StartingAfter,
    TenantDep,
    _spec,
    json_response,
)
from paysvc.api.decode import decode_body, decode_optional_body
from paysvc.config import Settings
from paysvc.webhooks import store
from paysvc.webhooks.model import (
    DeliveryStatus,
    EndpointCreate,
    EndpointUpdate,
    EndpointUpdateDoc,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointDeleted,
    WebhookEndpointList,
)

ENDPOINT_WRITE_ERRORS = {
    **WRITE_ERRORS,
    400: _spec("json_invalid, parameter_missing, parameter_unknown, parameter_invalid (url, enabled_events, "
               "description, status), metadata_invalid"),
}
MISSING = {404: _spec("resource_missing: no such webhook endpoint")}


def _settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]

    @post(
        "/",
        status_code=201,
        summary="Create a webhook endpoint (the answer carries its signing secret, shown here and on rotation only)",
        opt={"request_body": EndpointCreate},
        responses={201: ResponseSpec(WebhookEndpoint, description="The new endpoint, with secret"),
                   **ENDPOINT_WRITE_ERRORS},
    )
    async def create(self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        body = decode_body(await request.body(), EndpointCreate)
        endpoint = await store.create_endpoint(engine.pool, tenant.id, body, _settings(request).webhook_allow_private)
        return json_response(endpoint, 201)

    @get(
        "/",
        summary="List webhook endpoints, newest first",
        responses={200: ResponseSpec(WebhookEndpointList, description="A page of endpoints"), **READ_ERRORS},
    )
    async def list_endpoints(
        self, tenant: TenantDep, engine: EngineDep, limit: Limit = 10, starting_after: StartingAfter = None
    ) -> Response[bytes]:
        return json_response(await store.list_endpoints(engine.pool, tenant.id, limit, starting_after))

    @get(
        "/{endpoint_id:str}",
        summary="Retrieve a webhook endpoint (secret is null)",
        responses={200: ResponseSpec(WebhookEndpoint, description="The endpoint"), **READ_ERRORS},
    )
    async def retrieve(self, endpoint_id: FromPath[str], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        return json_response(await store.get_endpoint(engine.pool, tenant.id, endpoint_id))

    @post(
        "/{endpoint_id:str}",
        status_code=200,
        summary="Update a webhook endpoint (any of url, enabled_events, status, description, metadata)",
        description="metadata merges into the stored metadata; a key set to \"\" is removed. Enabling a "
                    "disabled endpoint resumes its pending deliveries.",
        opt={"request_body": EndpointUpdateDoc},
        responses={200: ResponseSpec(WebhookEndpoint, description="The endpoint"), **ENDPOINT_WRITE_ERRORS,
                   **MISSING},
    )
    async def update(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[str], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        body = decode_optional_body(await request.body(), EndpointUpdate)
        endpoint = await store.update_endpoint(engine.pool, engine.config.retry, tenant.id, endpoint_id, body,
                                               _settings(request).webhook_allow_private)
        return json_response(endpoint)

    @delete(
        "/{endpoint_id:str}",
        status_code=200,
        summary="Delete a webhook endpoint; its pending deliveries stop (they end failed, 'endpoint deleted')",
        responses={200: ResponseSpec(WebhookEndpointDeleted, description="The deleted endpoint's id"),
                   **READ_ERRORS},
    )
    async def remove(self, endpoint_id: FromPath[str], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        return json_response(await store.delete_endpoint(engine.pool, engine.config.retry, tenant.id, endpoint_id))

    @post(
        "/{endpoint_id:str}/rotate-secret",
        status_code=200,
        summary="Rotate the signing secret; the old one keeps signing beside it for PAYSVC_WEBHOOK_SECRET_OVERLAP_S",
        responses={200: ResponseSpec(WebhookEndpoint, description="The endpoint, with its new secret"),
                   **READ_ERRORS},
    )
    async def rotate_secret(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[str], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        overlap = timedelta(seconds=_settings(request).webhook_secret_overlap_s)
        endpoint = await store.rotate_secret(engine.pool, engine.config.retry, tenant.id, endpoint_id, overlap)
        return json_response(endpoint)

    @get(
        "/{endpoint_id:str}/deliveries",
        summary="List an endpoint's deliveries, newest first",
        responses={200: ResponseSpec(WebhookDeliveryList, description="A page of deliveries"), **READ_ERRORS},
    )
    async def deliveries(
        self, endpoint_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        limit: Limit = 10, starting_after: StartingAfter = None,
        status: Annotated[DeliveryStatus | None, Parameter(description="Only deliveries in this status.")] = None,
    ) -> Response[bytes]:
        return json_response(
            await store.list_deliveries(engine.pool, tenant.id, endpoint_id, limit, starting_after, status)
        )

    @post(
        "/{endpoint_id:str}/deliveries/{delivery_id:str}/retry",
        status_code=200,
        summary="Retry a failed delivery: pending again, due now, with a fresh attempt budget",
        responses={200: ResponseSpec(WebhookDelivery, description="The delivery, pending"), **READ_ERRORS,
                   404: _spec("resource_missing: no such webhook endpoint or delivery"),
                   409: _spec("invalid_state: the delivery has not failed")},
    )
    async def retry(
        self, endpoint_id: FromPath[str], delivery_id: FromPath[str], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        return json_response(
            await store.retry_delivery(engine.pool, engine.config.retry, tenant.id, endpoint_id, delivery_id)
        )
