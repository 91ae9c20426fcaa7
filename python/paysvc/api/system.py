"""Admin (tenant creation), health and metrics endpoints."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from paysvc import admin, metrics
from paysvc.api.auth import check_admin
from paysvc.api.common import WRITE_ERRORS, _spec, json_response
from paysvc.api.decode import decode_body
from paysvc.api.schemas import TenantCreate
from paysvc.db.pool import Pool
from paysvc.db.retry import retry_counts
from paysvc.errors import service_unavailable
from paysvc.resources import Health, Readiness, TenantCreated


@post(
    "/admin/v1/tenants",
    status_code=201,
    tags=["admin"],
    summary="Create a tenant and its first API key (shown once); needs PAYSVC_ADMIN_TOKEN",
    opt={"request_body": TenantCreate},
    security=[{"adminToken": []}],
    responses={201: ResponseSpec(TenantCreated, description="The tenant and its API key"), **WRITE_ERRORS},
)
async def create_tenant(request: Request[Any, Any, State]) -> Response[bytes]:
    check_admin(request)
    body = decode_body(await request.body(), TenantCreate)
    name = admin.validate_tenant_name(body.name)
    pool: Pool = request.app.state.pool
    async with pool.connection() as conn:
        created = await admin.create_tenant(conn, name)
    return json_response(created, 201)


@get(
    "/healthz",
    tags=["health"],
    summary="Liveness: the process answers",
    opt={"public": True},
    responses={200: ResponseSpec(Health, description="The process answers")},
)
async def healthz() -> Response[bytes]:
    return json_response(Health())


@get(
    "/readyz",
    tags=["health"],
    summary="Readiness: the database answers",
    opt={"public": True},
    responses={
        200: ResponseSpec(Readiness, description="The database answers"),
        503: _spec("service_unavailable: the database is not reachable (with Retry-After)"),
    },
)
async def readyz(request: Request[Any, Any, State]) -> Response[bytes]:
    pool: Pool = request.app.state.pool
    try:
        async with pool.connection(timeout=1.0) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        raise service_unavailable("The database is not reachable.") from exc
    return json_response(Readiness())


@get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics of this API process (text exposition format 0.0.4); scrape every process",
    opt={"public": True},
    media_type=metrics.CONTENT_TYPE,
    responses={200: ResponseSpec(str, description="Prometheus text exposition format 0.0.4",
                                 media_type=metrics.CONTENT_TYPE, generate_examples=False)},
)
async def metrics_endpoint(request: Request[Any, Any, State]) -> Response[bytes]:
    """Counters are per process (paysvc.metrics): behind a load balancer, scrape each process."""
    pool: Pool | None = getattr(request.app.state, "pool", None)
    text = metrics.render(pool_stats=None if pool is None else pool.get_stats(), retries=retry_counts)
    return Response(content=text.encode(), media_type=metrics.CONTENT_TYPE,
                    headers={"content-type": metrics.CONTENT_TYPE})
