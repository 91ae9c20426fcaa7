"""The OpenAPI document: Litestar's, plus request bodies from our msgspec structs.

Bodies are decoded by hand (strict msgspec, our own error codes), so Litestar does not see them;
each handler names its body struct in ``opt["request_body"]`` and this module adds it, once.
The ``Idempotency-Key`` header is likewise checked by the Rust core (after the body, with its own
codes), so Litestar only sees an optional string: this module documents its real form, and marks it
required where the handler says so in ``opt["idempotency_key_required"]``. A handler with
``opt["public"]`` needs no key: its operation says so with an empty ``security``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

import paysvc

REF = "#/components/schemas/{name}"
_PATH_PARAM_TYPE = re.compile(r"\{(\w+):\w+\}")  # "/v1/payments/{payment_id:str}" -> "{payment_id}"
IDEMPOTENCY_KEY = "Idempotency-Key"
# 1..255 printable ASCII characters, space included (brief, section 2b).
IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"}


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="paysvc",
        version=paysvc.__version__,
        description=(
            "Payments on a double-entry ledger. Amounts are integers in the currency's minor unit. "
            "Every write is idempotent: send an Idempotency-Key header."
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin()],
        components=Components(security_schemes={
            "apiKey": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer <api key>"),
            "adminToken": SecurityScheme(
                type="http", scheme="bearer", description="Authorization: Bearer $PAYSVC_ADMIN_TOKEN"
            ),
        }),
        security=[{"apiKey": []}],
    )


def add_request_bodies(app: Litestar) -> None:
    document = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()  # cached dict: edited in place
    bodies: list[tuple[str, str, type]] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            path = _PATH_PARAM_TYPE.sub(r"{\1}", route.path)
            for method in handler.http_methods:
                operation = document.get("paths", {}).get(path, {}).get(method.lower())
                if operation is not None:
                    _document_idempotency_key(operation, bool(handler.opt.get("idempotency_key_required")))
                    if handler.opt.get("public"):
                        operation["security"] = []
            struct = handler.opt.get("request_body")
            if struct is None:
                continue
            for method in handler.http_methods:
                bodies.append((path, method.lower(), struct))
    if not bodies:
        return
    (refs, components) = msgspec.json.schema_components([b[2] for b in bodies], ref_template=REF)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        schemas.setdefault(name, schema)
    for (path, method, struct), ref in zip(bodies, refs, strict=True):
        operation = document.get("paths", {}).get(path, {}).get(method)
        assert operation is not None, f"no OpenAPI operation for {method} {path}"
        # A body whose fields all have defaults may be left out (capture, cancel, refund).
        required = any(field.required for field in msgspec.structs.fields(struct))
        operation["requestBody"] = {"required": required, "content": {"application/json": {"schema": ref}}}


def _document_idempotency_key(operation: dict[str, Any], required: bool) -> None:
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_KEY:
            parameter["schema"] = {**IDEMPOTENCY_KEY_SCHEMA, "description": parameter.get("description", "")}
            parameter["required"] = required
