"""Risk (brief section 8): the tenant's settings and rules, the models this service scores with, and
fraud reports on payments."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from paysvc.api.common import READ_ERRORS, TRANSITION_ERRORS, WRITE_ERRORS, EngineDep, TenantDep, json_response
from paysvc.api.decode import decode_body
from paysvc.ledger.engine import LedgerEngine
from paysvc.resources import Payment, RiskModelList, RiskRules, RiskSettings, UserReport
from paysvc.risk import store
from paysvc.risk.cache import RiskCache
from paysvc.risk.settings import RiskRulesIn, RiskSettingsIn, check_rules, check_settings


class FraudReportIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_report: UserReport


def _risk(engine: LedgerEngine) -> RiskCache:
    assert engine.risk is not None, "the API's engine always has its risk cache"
    return engine.risk


class RiskController(Controller):
    path = "/v1/risk"
    tags = ["risk"]

    @get("/settings", summary="The risk settings (mode, thresholds, models)",
         responses={200: ResponseSpec(RiskSettings, description="The settings"), **READ_ERRORS})
    async def get_settings(self, tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        settings, _ = await store.read_settings(engine.pool, tenant.id)
        return json_response(settings)

    @put(
        "/settings",
        summary="Replace the risk settings (an omitted field takes its default)",
        description="Seen by every API process within a second.",
        opt={"request_body": RiskSettingsIn},
        responses={200: ResponseSpec(RiskSettings, description="The settings"), **WRITE_ERRORS},
    )
    async def put_settings(
        self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        risk = _risk(engine)
        settings = check_settings(decode_body(await request.body(), RiskSettingsIn), risk.models)
        await store.write_settings(engine.pool, engine.config.retry, tenant.id, settings)
        risk.forget(tenant.id)
        return json_response(settings)

    @get("/rules", summary="The risk rules, in order",
         responses={200: ResponseSpec(RiskRules, description="The rules"), **READ_ERRORS})
    async def get_rules(self, tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        _, rules = await store.read_settings(engine.pool, tenant.id)
        return json_response(rules)

    @put(
        "/rules",
        summary="Replace the risk rules (at most 100; each gets an id, in the order sent)",
        description="A predicate that does not parse or type-check is 400 parameter_invalid, "
                    "param rules[<index>].predicate. Seen by every API process within a second.",
        opt={"request_body": RiskRulesIn},
        responses={200: ResponseSpec(RiskRules, description="The rules"), **WRITE_ERRORS},
    )
    async def put_rules(
        self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        rules = check_rules(decode_body(await request.body(), RiskRulesIn))
        await store.write_rules(engine.pool, engine.config.retry, tenant.id, rules)
        _risk(engine).forget(tenant.id)
        return json_response(rules)

    @get("/models", summary="The risk models this service can score with",
         responses={200: ResponseSpec(RiskModelList, description="The models"), **READ_ERRORS})
    async def list_models(self, tenant: TenantDep, engine: EngineDep) -> Response[bytes]:
        del tenant
        return json_response(RiskModelList(data=_risk(engine).models.listed(), has_more=False))


@post(
    "/v1/payments/{payment_id:str}/fraud-report",
    status_code=200,
    tags=["risk"],
    summary="Report a payment as fraudulent or safe (a label for training); emits payment.fraud_reported",
    opt={"request_body": FraudReportIn},
    responses={200: ResponseSpec(Payment, description="The payment, with fraud_details"), **TRANSITION_ERRORS},
)
async def fraud_report(
    request: Request[Any, Any, Any], payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep
) -> Response[bytes]:
    body = decode_body(await request.body(), FraudReportIn)
    payment = await store.report_fraud(engine.pool, engine.config.retry, tenant.id, payment_id, body.user_report)
    return json_response(payment)
