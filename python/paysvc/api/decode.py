"""Strict JSON body decoding with Stripe-style error codes and the offending field in ``param``.

A repeated object key, at any level, is 400 ``json_invalid`` (``param`` names it): parsers disagree on
which of the two values counts, so a gateway or a log could read another request than the one
executed. msgspec keeps the last value silently; the Rust core scans the text for repeats
(``_native.first_duplicate_key``) once msgspec has accepted it.

Strings may hold any Unicode text but U+0000: PostgreSQL stores neither a NUL in ``text`` nor
``\\u0000`` in ``jsonb``, so a body holding one is a 400 here (with the field's own code, as for a
wrong type) rather than a failed insert and a 500.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from paysvc import _native
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
        value: T = decoder.decode(raw)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        _reject_duplicates(raw)  # valid JSON: a repeated key is the first fault, as a syntax error would be
        raise _validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError("json_invalid", f"The request body is not valid JSON: {exc}") from None
    _reject_duplicates(raw)
    if _NUL_ESCAPE in raw:  # a NUL can only come in as this escape (a raw one is invalid JSON)
        _reject_nul(value, "")
    return value


def decode_optional_body(raw: bytes, struct: type[T]) -> T:
    """Like decode_body, but an empty body means every field takes its default."""
    return decode_body(raw if raw.strip() else b"{}", struct)


_NUL_ESCAPE = b"\\u0000"


def _reject_duplicates(raw: bytes) -> None:
    duplicate = _native.first_duplicate_key(raw)
    if duplicate is not None:
        raise ApiError("json_invalid", f"The request body repeats the key {duplicate}: send each key once.",
                       param=duplicate)


def _reject_nul(value: object, param: str) -> None:
    """Raises for the first string holding U+0000 (in a key or a value), naming its field."""
    if isinstance(value, str):
        if "\x00" in value:
            raise _nul_error(param)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _reject_nul(getattr(value, name), _join(param, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, param)
            _reject_nul(item, param)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, f"{param}[{index}]")


def _nul_error(param: str) -> ApiError:
    field = param.split(".")[-1].split("[")[0]
    message = f"Invalid {param}: text must not contain the NUL character (U+0000)."
    return ApiError(_FIELD_CODES.get(field, "parameter_invalid"), message, param=param)


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
