"""Small pieces every controller uses: JSON answers, Rust-core errors, documented error responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, get_args

from litestar import Response
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import HeaderParameter, Parameter

from paysvc.errors import ErrorBody
from paysvc.ledger.engine import LedgerEngine
from paysvc.ledger.idempotency import Outcome
from paysvc.reads import Consistency
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

# Opt-in stale reads of single-object GETs (brief, section 2b; reads.py). The request header asks,
# the response header of the same name says what served the answer. Any other value is 400
# parameter_invalid with param "Paysvc-Read-Consistency" (Litestar validates it: errors_http.py).
READ_CONSISTENCY = "Paysvc-Read-Consistency"
ReadConsistency = Annotated[
    Consistency,
    HeaderParameter(
        name=READ_CONSISTENCY,
        required=False,
        description=(
            "current (default): the object as of now. stale: the object may be a few seconds old "
            "(about 4 to 5 s), read from the nearest replica; honoured only on CockroachDB when the operator "
            "enabled PAYSVC_FOLLOWER_READS, otherwise the read is current. An object the stale read "
            "does not find yet is read current, so staleness never causes a 404. The response's "
            "Paysvc-Read-Consistency header says which one was served."
        ),
    ),
]


@dataclass
class ReadConsistencyOperation(Operation):
    """The OpenAPI operation of a single-object GET: its 200 answer documents the
    Paysvc-Read-Consistency response header. (Litestar's ``response_headers`` only reach its own
    success response, which the handler's ``ResponseSpec`` for 200 replaces.)"""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.headers = {**(ok.headers or {}), READ_CONSISTENCY: OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING, enum=list(get_args(Consistency))),
                description="The consistency this answer was read at: stale only when a follower read served it.",
                required=True,
            )}


# Handler parameters filled by dependency injection (see app.py).
TenantDep = NamedDependency[Tenant]
EngineDep = NamedDependency[LedgerEngine]


def json_response(value: object, status_code: int = 200) -> Response[bytes]:
    return Response(content=encode(value), status_code=status_code, media_type=JSON)


def read_response(value: object, served: Consistency) -> Response[bytes]:
    """A single-object GET's answer, with the consistency that served it."""
    return Response(content=encode(value), status_code=200, media_type=JSON, headers={READ_CONSISTENCY: served})


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
READ_ERRORS = {**AUTH_ERRORS, 400: _spec("parameter_invalid (also a repeated query parameter), parameter_unknown, "
                                         "invalid_cursor"), 404: _spec("resource_missing")}
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
