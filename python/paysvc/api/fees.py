"""The tenant's fee schedule."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec

from paysvc import _native, reads
from paysvc.api.common import READ_ERRORS, WRITE_ERRORS, EngineDep, TenantDep, json_response
from paysvc.api.decode import decode_body
from paysvc.api.schemas import FeeScheduleIn
from paysvc.errors import from_core
from paysvc.resources import FeeScheduleOut


class FeeScheduleController(Controller):
    path = "/v1/fee-schedule"
    tags = ["fees"]

    @put(
        "/",
        summary="Replace the fee schedule (creates each currency's fee account with its first rule)",
        opt={"request_body": FeeScheduleIn},
        responses={200: ResponseSpec(FeeScheduleOut, description="The schedule"), **WRITE_ERRORS},
    )
    async def replace(self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        body = decode_body(await request.body(), FeeScheduleIn)
        try:
            rules = _native.prepare_fee_schedule(
                [(r.currency, r.percent_bps, r.fixed, r.min, r.max) for r in body.rules]
            )
        except _native.CoreError as exc:
            raise from_core(exc) from None
        return json_response(await engine.put_fee_schedule(tenant, rules))

    @get(
        "/",
        summary="The fee schedule",
        responses={200: ResponseSpec(FeeScheduleOut, description="The schedule"), **READ_ERRORS},
    )
    async def retrieve(self, tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        return json_response(await reads.get_fee_schedule(engine.pool, tenant.id))
