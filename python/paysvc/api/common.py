"""Small pieces every controller uses: JSON answers, Rust-core errors, documented error responses."""

from __future__ import annotations

from typing import Annotated

from litestar import Response
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, Parameter

from paysvc.errors import ErrorBody
from paysvc.ledger.engine import LedgerEngine
from paysvc.ledger.idempotency import Outcome
from paysvc.resources import encode
from paysvc.tenants import Tenant

JSON = "application/json"

Limit = Annotated[int, Parameter(ge=1, le=100, description="How many objects to return (1..100).")]
StartingAfter = Annotated[
    str | None, Parameter(description="Cursor: the id of the last object of the previous page.")
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="1..255 printable ASCII characters; makes the write safe to retry.",
    ),
]
# Handler parameters filled by dependency injection (see app.py).
TenantDep = NamedDependency[Tenant]
EngineDep = NamedDependency[LedgerEngine]


def json_response(value: object, status_code: int = 200) -> Response[bytes]:
    return Response(content=encode(value), status_code=status_code, media_type=JSON)


def outcome_response(outcome: Outcome) -> Response[bytes]:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return Response(content=outcome.body, status_code=outcome.status, media_type=JSON, headers=headers)


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


AUTH_ERRORS = {
    401: _spec("api_key_missing, api_key_invalid"),
    429: _spec("rate_limited (with Retry-After)"),
    503: _spec("service_unavailable: database unreachable (with Retry-After)"),
}
READ_ERRORS = {**AUTH_ERRORS, 400: _spec("parameter_invalid, invalid_cursor"), 404: _spec("resource_missing")}
WRITE_ERRORS = {
    **AUTH_ERRORS,
    400: _spec(
        "json_invalid, parameter_missing, parameter_unknown, parameter_invalid, amount_invalid, "
        "currency_invalid, currency_mismatch, same_account, amount_too_small, metadata_invalid, "
        "idempotency_key_missing, idempotency_key_invalid"
    ),
    413: _spec("body_too_large"),
}
IDEMPOTENT_WRITE_ERRORS = {
    **WRITE_ERRORS,
    404: _spec("resource_missing (param names the field)"),
    409: _spec("idempotency_key_in_use"),
    422: _spec("idempotency_key_reused"),
}
TRANSITION_ERRORS = {
    **WRITE_ERRORS,
    400: _spec(
        "json_invalid, parameter_unknown, parameter_invalid, amount_invalid, amount_too_small, amount_too_large, "
        "metadata_invalid, idempotency_key_missing, idempotency_key_invalid"
    ),
    404: _spec("resource_missing: no such payment"),
    409: _spec("invalid_state (not allowed in the payment's state; stored under the key), idempotency_key_in_use"),
    422: _spec("idempotency_key_reused"),
}
