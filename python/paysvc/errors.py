"""Every error the API answers, in one shape: ``{"error": {type, code, message, param, request_id}}``.

Codes and statuses follow the design brief, section 3. Handlers raise :class:`ApiError`; the
exception handlers in :mod:`paysvc.api.errors_http` turn it into a response.
"""

from __future__ import annotations

from typing import Final, Protocol

import msgspec

INVALID_REQUEST: Final = "invalid_request_error"
AUTHENTICATION: Final = "authentication_error"
PAYMENT: Final = "payment_error"
IDEMPOTENCY: Final = "idempotency_error"
RATE_LIMIT: Final = "rate_limit_error"
API: Final = "api_error"

# code -> (HTTP status, type). One table: the status and family of a code never vary.
CODES: Final[dict[str, tuple[int, str]]] = {
    "parameter_invalid": (400, INVALID_REQUEST),
    "parameter_missing": (400, INVALID_REQUEST),
    "parameter_unknown": (400, INVALID_REQUEST),
    "json_invalid": (400, INVALID_REQUEST),
    "amount_invalid": (400, INVALID_REQUEST),
    "currency_invalid": (400, INVALID_REQUEST),
    "currency_mismatch": (400, INVALID_REQUEST),
    "same_account": (400, INVALID_REQUEST),
    "amount_too_small": (400, INVALID_REQUEST),
    "amount_too_large": (400, INVALID_REQUEST),
    "metadata_invalid": (400, INVALID_REQUEST),
    "idempotency_key_missing": (400, INVALID_REQUEST),
    "idempotency_key_invalid": (400, INVALID_REQUEST),
    "invalid_cursor": (400, INVALID_REQUEST),
    "api_key_missing": (401, AUTHENTICATION),
    "api_key_invalid": (401, AUTHENTICATION),
    "insufficient_funds": (402, PAYMENT),
    "payment_blocked": (402, PAYMENT),
    "resource_missing": (404, INVALID_REQUEST),
    "method_not_allowed": (405, INVALID_REQUEST),
    "invalid_state": (409, INVALID_REQUEST),
    "idempotency_key_in_use": (409, IDEMPOTENCY),
    "body_too_large": (413, INVALID_REQUEST),
    "header_too_large": (431, INVALID_REQUEST),
    "idempotency_key_reused": (422, IDEMPOTENCY),
    "rate_limited": (429, RATE_LIMIT),
    "internal_error": (500, API),
    "transfer_encoding_unsupported": (501, INVALID_REQUEST),
    "service_unavailable": (503, API),
}


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """The error shape. ``param`` is always present (null when no field is at fault); ``payment``
    only on 402 answers."""

    type: str
    code: str
    message: str
    param: str | None
    request_id: str
    payment: str | None = None  # only on 402 answers: the declined payment (or the refunded one)


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class ApiError(Exception):
    """An error answer. ``code`` picks status and type from :data:`CODES`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        payment: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        assert code in CODES, f"unknown error code {code!r}"
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.payment = payment
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return CODES[self.code][0]

    @property
    def type(self) -> str:
        return CODES[self.code][1]

    def body(self, request_id: str) -> bytes:
        return encode_error(self.code, self.message, self.param, request_id, self.payment)


_encoder = msgspec.json.Encoder()


def encode_error(
    code: str, message: str, param: str | None, request_id: str, payment: str | None = None
) -> bytes:
    detail = ErrorDetail(type=CODES[code][1], code=code, message=message, param=param,
                         request_id=request_id, payment=payment)
    return _encoder.encode(ErrorBody(error=detail))


class CoreErrorLike(Protocol):
    """``paysvc._native.CoreError``: a rejected input with the API's code, field and message."""

    @property
    def code(self) -> str: ...
    @property
    def param(self) -> str | None: ...
    @property
    def message(self) -> str: ...


def from_core(error: CoreErrorLike) -> ApiError:
    return ApiError(error.code, error.message, param=error.param)


def invalid_state(message: str) -> ApiError:
    return ApiError("invalid_state", message)


def not_found(kind: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError("resource_missing", f"No such {kind}: '{ident}'", param=param)


def invalid_cursor(ident: str) -> ApiError:
    return ApiError(
        "invalid_cursor",
        f"starting_after '{ident}' does not name an object in this list",
        param="starting_after",
    )


def service_unavailable(message: str = "The service is temporarily unavailable; retry shortly.") -> ApiError:
    return ApiError("service_unavailable", message, retry_after_s=1)
