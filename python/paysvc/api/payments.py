"""Payments: create (capture or hold), get, list; capture, cancel; refunds."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from paysvc import _native, reads
from paysvc.api.common import (
    IDEMPOTENT_WRITE_ERRORS,
    READ_ERRORS,
    TRANSITION_ERRORS,
    WRITE_ERRORS,
    EngineDep,
    IdempotencyKey,
    Limit,
    ReadConsistency,
    ReadConsistencyOperation,
    StartingAfter,
    TenantDep,
    _spec,
    json_response,
    outcome_response,
    read_response,
)
from paysvc.api.decode import decode_body, decode_optional_body
from paysvc.api.schemas import (
    PaymentBatch,
    PaymentBatchDoc,
    PaymentBatchItem,
    PaymentCancel,
    PaymentCapture,
    PaymentCreate,
    RefundCreate,
)
from paysvc.errors import ApiError, from_core
from paysvc.resources import (
    BatchItemResult,
    BatchResult,
    BatchResultDoc,
    Payment,
    PaymentList,
    PaymentStatus,
    Refund,
    RefundList,
)
from paysvc.tenants import Tenant

PAYMENTS_PATH = "/v1/payments"
BATCH_PATH = "/v1/payments/batch"
MAX_BATCH_ITEMS = 1_000


class PaymentController(Controller):
    path = PAYMENTS_PATH
    tags = ["payments"]

    @post(
        "/",
        status_code=201,
        summary="Create a payment (capture: true moves the money now; false places a hold)",
        opt={"request_body": PaymentCreate, "idempotency_key_required": True},
        responses={
            201: ResponseSpec(Payment, description="The payment"),
            **IDEMPOTENT_WRITE_ERRORS,
            402: _spec("insufficient_funds, or payment_blocked (risk, brief section 8): the payment is recorded as "
                       "failed; error.payment is its id"),
        },
    )
    async def create(
        self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        plan = _payment_plan(decode_body(await request.body(), PaymentCreate), tenant, idempotency_key)
        assert idempotency_key is not None  # checked by prepare_payment
        request_id = request.scope["paysvc.request_id"]  # type: ignore[typeddict-item]
        return outcome_response(await engine.create_payment(tenant, plan, idempotency_key, request_id))

    @post(
        "/batch",
        status_code=200,
        summary="Create up to 1000 payments, each with its own idempotency_key, answered item by item",
        description=(
            "Each item is what POST /v1/payments takes, plus its idempotency_key; it gets exactly the "
            "status and body that endpoint would answer, in request order. Items are independent: a "
            "declined or invalid item does not fail the others. Bodies up to 1 MiB."
        ),
        opt={"request_body": PaymentBatchDoc},
        responses={200: ResponseSpec(BatchResultDoc, description="One result per item, in order"),
                   **WRITE_ERRORS, 400: _spec("json_invalid, parameter_missing, parameter_invalid (payments)")},
    )
    async def create_batch(
        self, request: Request[Any, Any, Any], tenant: TenantDep, engine: EngineDep
    ) -> Response[bytes]:
        batch = decode_body(await request.body(), PaymentBatch)
        if not 1 <= len(batch.payments) <= MAX_BATCH_ITEMS:
            raise ApiError("parameter_invalid", f"payments must hold 1 to {MAX_BATCH_ITEMS} items.",
                           param="payments")
        request_id: str = request.scope["paysvc.request_id"]  # type: ignore[typeddict-item]

        # Check every item first; then apply them in waves, the n-th use of a key in the n-th wave, so
        # a key given twice is answered as if sent twice in order (a replay, or 422), never "in use".
        prepared: list[tuple[_native.PaymentPlan, str] | ApiError] = []
        for raw in batch.payments:
            try:
                item = decode_body(bytes(raw), PaymentBatchItem)
                plan = _payment_plan(item, tenant, item.idempotency_key)
                assert item.idempotency_key is not None  # checked by prepare_payment
                prepared.append((plan, item.idempotency_key))
            except ApiError as error:
                prepared.append(error)
        waves: list[list[int]] = []
        uses: dict[str, int] = {}
        for index, entry in enumerate(prepared):
            if not isinstance(entry, ApiError):
                wave = uses[entry[1]] = uses.get(entry[1], -1) + 1
                while len(waves) <= wave:
                    waves.append([])
                waves[wave].append(index)

        async def apply(index: int) -> None:
            entry = prepared[index]
            assert not isinstance(entry, ApiError)
            try:
                outcome = await engine.create_payment(tenant, entry[0], entry[1], request_id)
            except ApiError as error:
                prepared[index] = error
            else:
                results[index] = BatchItemResult(status=outcome.status, body=msgspec.Raw(outcome.body))

        results: list[BatchItemResult | None] = [None] * len(prepared)
        for wave_items in waves:
            await asyncio.gather(*(apply(index) for index in wave_items))
        data = []
        for entry, result in zip(prepared, results, strict=True):
            if isinstance(entry, ApiError):
                result = BatchItemResult(status=entry.status, body=msgspec.Raw(entry.body(request_id)))
            assert result is not None
            data.append(result)
        return json_response(BatchResult(data=data))

    @get(
        "/{payment_id:str}",
        summary="Retrieve a payment",
        description="Current by default; Paysvc-Read-Consistency: stale may answer a payment a few seconds old.",
        responses={200: ResponseSpec(Payment, description="The payment"), **READ_ERRORS},
        operation_class=ReadConsistencyOperation,
    )
    async def retrieve(
        self, payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        read_consistency: ReadConsistency = reads.CURRENT,
    ) -> Response[bytes]:
        return read_response(*await reads.get_payment(engine.pool, tenant.id, payment_id, read_consistency))

    @get(
        "/",
        summary="List payments, newest first",
        responses={200: ResponseSpec(PaymentList, description="A page of payments"), **READ_ERRORS},
    )
    async def list_payments(
        self, tenant: TenantDep, engine: EngineDep, limit: Limit = 10, starting_after: StartingAfter = None,
        status: Annotated[PaymentStatus | None, Parameter(description="Only payments in this status.")] = None,
    ) -> Response[bytes]:
        return json_response(await reads.list_payments(engine.pool, tenant.id, limit, starting_after, status))

    @post(
        "/{payment_id:str}/capture",
        status_code=200,
        summary="Capture a hold: all of it, or a smaller amount (the rest is released)",
        opt={"request_body": PaymentCapture},
        responses={200: ResponseSpec(Payment, description="The payment, succeeded"), **TRANSITION_ERRORS},
    )
    async def capture(
        self, request: Request[Any, Any, Any], payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        body = decode_optional_body(await request.body(), PaymentCapture)
        try:
            plan = _native.prepare_capture(
                path=request.url.path, amount=body.amount, idempotency_key=idempotency_key
            )
        except _native.CoreError as exc:
            raise from_core(exc) from None
        request_id = request.scope["paysvc.request_id"]  # type: ignore[typeddict-item]
        return outcome_response(await engine.capture(tenant, payment_id, plan, idempotency_key, request_id))

    @post(
        "/{payment_id:str}/cancel",
        status_code=200,
        summary="Cancel a hold: the held amount is released",
        opt={"request_body": PaymentCancel},
        responses={200: ResponseSpec(Payment, description="The payment, canceled"), **TRANSITION_ERRORS},
    )
    async def cancel(
        self, request: Request[Any, Any, Any], payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        body = decode_optional_body(await request.body(), PaymentCancel)
        try:
            plan = _native.prepare_cancel(path=request.url.path, reason=body.reason, idempotency_key=idempotency_key)
        except _native.CoreError as exc:
            raise from_core(exc) from None
        request_id = request.scope["paysvc.request_id"]  # type: ignore[typeddict-item]
        return outcome_response(await engine.cancel(tenant, payment_id, plan, idempotency_key, request_id))

    @post(
        "/{payment_id:str}/refunds",
        status_code=201,
        summary="Refund a captured payment, in full or in part (the fee is kept)",
        opt={"request_body": RefundCreate, "idempotency_key_required": True},
        responses={
            201: ResponseSpec(Refund, description="The refund"),
            **TRANSITION_ERRORS,
            402: _spec("insufficient_funds: the destination cannot pay the refund back; error.payment is the payment"),
        },
    )
    async def refund(
        self, request: Request[Any, Any, Any], payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        body = decode_optional_body(await request.body(), RefundCreate)
        try:
            plan = _native.prepare_refund(
                path=request.url.path, amount=body.amount, metadata=body.metadata,
                idempotency_key=idempotency_key, require_idempotency_key=True,
            )
        except _native.CoreError as exc:
            raise from_core(exc) from None
        assert idempotency_key is not None  # checked by prepare_refund
        request_id = request.scope["paysvc.request_id"]  # type: ignore[typeddict-item]
        return outcome_response(await engine.refund(tenant, payment_id, plan, idempotency_key, request_id))

    @get(
        "/{payment_id:str}/refunds",
        summary="List a payment's refunds, newest first",
        responses={200: ResponseSpec(RefundList, description="A page of refunds"), **READ_ERRORS},
    )
    async def list_refunds(
        self, payment_id: FromPath[str], tenant: TenantDep, engine: EngineDep, limit: Limit = 10,
        starting_after: StartingAfter = None,
    ) -> Response[bytes]:
        return json_response(await reads.list_refunds(engine.pool, tenant.id, payment_id, limit, starting_after))


def _payment_plan(body: PaymentCreate, tenant: Tenant, idempotency_key: str | None) -> _native.PaymentPlan:
    """Check a payment request in the Rust core (fee, fingerprint over the single endpoint's path)."""
    try:
        return _native.prepare_payment(
            path=PAYMENTS_PATH,
            amount=body.amount,
            currency=body.currency,
            source=body.source,
            destination=body.destination,
            capture=body.capture,
            description=body.description,
            metadata=body.metadata,
            expires_in_s=body.expires_in_s,
            fee_rule=tenant.fee_rule(body.currency),
            idempotency_key=idempotency_key,
            require_idempotency_key=True,
        )
    except _native.CoreError as exc:
        raise from_core(exc) from None
