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
from typing import Any, TypeVar
from urllib.parse import unquote_plus

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


# Query strings. Litestar reads query parameters leniently: an integer may come as "1e2" or "5.0",
# a repeated parameter keeps its last value and an unknown one is ignored. The API reads them
# strictly, from what each route handler declares (its kwargs model, dependencies' parameters
# included), so a new route gets the same rules: an undeclared name is 400 parameter_unknown, a
# name given twice (unless declared as a list) and an integer not written as plain ASCII digits are
# 400 parameter_invalid. Litestar then applies each parameter's own type and bounds.
_DIGITS = re.compile(r"0|[1-9][0-9]*")


class QuerySpec(msgspec.Struct, frozen=True):
    integers: dict[str, bool]  # wire name -> whether its values are integers
    repeatable: frozenset[str]  # wire names declared as lists
    authenticated: bool  # the handler depends on the tenant: checked after authentication (api/auth.py)


_query_specs: dict[int, tuple[object, QuerySpec]] = {}  # id(route handler) -> (the handler, its spec)


def query_spec(scope: Any) -> QuerySpec | None:
    """The query parameters the scope's route handler declares; None before routing."""
    handler = scope.get("route_handler")
    if handler is None:
        return None
    known = _query_specs.get(id(handler))
    if known is None or known[0] is not handler:
        _learn_routes(scope["app"])
        known = _query_specs.get(id(handler))
        if known is None or known[0] is not handler:  # not one of the app's routes (never seen so far)
            return None
    return known[1]


def _learn_routes(app: Any) -> None:
    for route in app.routes:
        for handler, kwargs_model in getattr(route, "route_handler_map", {}).values():
            params = handler.parsed_fn_signature.parameters
            integers: dict[str, bool] = {}
            repeatable: set[str] = set()
            for param in kwargs_model.expected_query_params:
                field = params.get(param.field_name)
                integers[param.field_alias] = field is not None and _is_int(field)
                if param.is_sequence:
                    repeatable.add(param.field_alias)
            dependencies = {dep.key for batch in kwargs_model.dependency_batches for dep in batch}
            spec = QuerySpec(integers, frozenset(repeatable), "tenant" in dependencies)
            _query_specs[id(handler)] = (handler, spec)


def _is_int(field: Any) -> bool:
    if field.is_optional:
        return any(_is_int(inner) for inner in field.inner_types if not inner.is_none_type)
    return bool(field.is_subclass_of(int) and not field.is_subclass_of(bool))


def check_query(scope: Any) -> None:
    """Raises the first fault of the request's query string, in the order of the string."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return
    spec = query_spec(scope)
    if spec is None:
        return
    seen: set[str] = set()
    for part in raw.split(b"&"):
        if not part:
            continue
        name_raw, _, value_raw = part.partition(b"=")
        name = unquote_plus(name_raw.decode("latin-1"), errors="replace")
        integer = spec.integers.get(name)
        if integer is None:
            raise ApiError("parameter_unknown", f"Received unknown parameter: {name}.", param=name)
        if name in seen and name not in spec.repeatable:
            raise ApiError("parameter_invalid", f"Invalid {name}: the parameter is given more than once.",
                           param=name)
        seen.add(name)
        if integer:
            value = unquote_plus(value_raw.decode("latin-1"), errors="replace")
            if not _DIGITS.fullmatch(value):
                raise ApiError("parameter_invalid",
                               f"Invalid {name}: expected an integer in plain ASCII digits, got {value!r}.",
                               param=name)
