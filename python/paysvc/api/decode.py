"""Strict JSON body decoding with Stripe-style error codes and the offending field in ``param``."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from paysvc.errors import ApiError

T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder[object]] = {}
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`")
# A wrong type in these fields gets the field's own code.
_FIELD_CODES = {"amount": "amount_invalid", "currency": "currency_invalid", "metadata": "metadata_invalid"}


def decode_body(raw: bytes, struct: type[T]) -> T:
    if not raw.strip():
        raise ApiError("json_invalid", "The request body must be a JSON object.")
    decoder = _decoders.get(struct)
    if decoder is None:
        decoder = _decoders[struct] = msgspec.json.Decoder(struct, strict=True)
    try:
        return decoder.decode(raw)  # type: ignore[return-value]
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError("json_invalid", f"The request body is not valid JSON: {exc}") from None


def decode_optional_body(raw: bytes, struct: type[T]) -> T:
    """Like decode_body, but an empty body means every field takes its default."""
    return decode_body(raw if raw.strip() else b"{}", struct)


def _validation_error(text: str) -> ApiError:
    at = _AT.search(text)
    path = at.group("path") if at else ""
    message = text[: at.start()] if at else text
    prefix = _param(path)
    missing = _MISSING.match(message)
    if missing:
        param = _join(prefix, missing.group("field"))
        return ApiError("parameter_missing", f"Missing required parameter: {param}.", param=param)
    unknown = _UNKNOWN.match(message)
    if unknown:
        param = _join(prefix, unknown.group("field"))
        return ApiError("parameter_unknown", f"Received unknown parameter: {param}.", param=param)
    if not prefix:
        return ApiError("json_invalid", f"The request body must be a JSON object ({message}).")
    field = prefix.split(".")[-1].split("[")[0]
    code = _FIELD_CODES.get(field, "parameter_invalid")
    return ApiError(code, f"Invalid {prefix}: {message}.", param=prefix)


def _param(path: str) -> str:
    # "$.metadata[...]" -> "metadata"; "$.rules[0].fixed" -> "rules[0].fixed"
    return path.removeprefix(".").replace("[...]", "")


def _join(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field
