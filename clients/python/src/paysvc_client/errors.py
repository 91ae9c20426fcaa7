"""Exceptions, one per error ``type`` of the brief's section 3.

Every API error carries what the answer said: ``http_status``, ``type``, ``code``, ``param``,
``message``, ``request_id`` (the body's, else the ``X-Request-Id`` header) and ``payment`` (the
declined payment's id on a 402). ``retry_after_s`` is the ``Retry-After`` header, when sent.
"""

from __future__ import annotations


class PaysvcError(Exception):
    """Base of every exception this client raises."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        payment: str | None = None,
        retry_after_s: float | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.payment = payment
        self.retry_after_s = retry_after_s
        self.body = body

    def __str__(self) -> str:
        parts = [f"{self.http_status}" if self.http_status is not None else None, self.code,
                 f"param={self.param}" if self.param else None,
                 f"request_id={self.request_id}" if self.request_id else None]
        prefix = " ".join(p for p in parts if p)
        return f"({prefix}) {self.message}" if prefix else self.message

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(http_status={self.http_status!r}, code={self.code!r}, "
                f"param={self.param!r}, request_id={self.request_id!r}, message={self.message!r})")


class APIConnectionError(PaysvcError):
    """The server could not be reached, or did not answer in time (after the client's retries)."""


class InvalidRequestError(PaysvcError):
    """``invalid_request_error``: 400, 404, 409 ``invalid_state``, 413 and other 4xx."""


class AuthenticationError(PaysvcError):
    """``authentication_error``: 401, a missing or wrong API key (or admin token)."""


class PaymentError(PaysvcError):
    """``payment_error``: 402 ``insufficient_funds`` or ``payment_blocked``; ``.payment`` is the
    id of the recorded (failed) payment, or of the payment a refund was refused for."""


class IdempotencyError(PaysvcError):
    """``idempotency_error``: 409 ``idempotency_key_in_use`` (after retries) or 422
    ``idempotency_key_reused``."""


class RateLimitError(PaysvcError):
    """``rate_limit_error``: 429 (after retries)."""


class APIError(PaysvcError):
    """``api_error``: 5xx, or an answer this client cannot read."""


class WebhookVerificationError(PaysvcError):
    """A webhook's signature, timestamp or headers do not verify."""


ERROR_TYPES: dict[str, type[PaysvcError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "payment_error": PaymentError,
    "idempotency_error": IdempotencyError,
    "rate_limit_error": RateLimitError,
    "api_error": APIError,
}


def error_class(error_type: str | None, http_status: int) -> type[PaysvcError]:
    """The exception for an error answer: by its ``type``, else (an unknown or missing type) by status."""
    if error_type in ERROR_TYPES:
        return ERROR_TYPES[error_type]
    if http_status == 401:
        return AuthenticationError
    if http_status == 402:
        return PaymentError
    if http_status == 429:
        return RateLimitError
    if http_status >= 500:
        return APIError
    if 400 <= http_status < 500:
        return InvalidRequestError
    return APIError
