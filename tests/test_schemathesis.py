"""Schemathesis against the OpenAPI document the running app serves (``/schema/openapi.json``).

Every operation of the document gets a bounded number of generated requests (schemathesis' examples,
coverage and fuzzing phases; valid requests and, in negative mode, requests that break the schema),
sent over HTTP to the test server. Each call carries the credential its operation documents: a real API
key of a seeded tenant, the admin token, or nothing for the public health endpoints. Every answer must
not be a 5xx, must have a documented status code and content type, and its body must match the schema
documented for that status.

Path ids and a few body fields (accounts, currency, amount) are drawn from the seeded tenant's real
objects part of the time, so that operations on one object (capture, cancel, refunds, entries) and
payments get past their 404s and 400s and reach the ledger.

Generation is derandomized (the same requests on every run, in CI too) and keeps no example database.
``PAYSVC_SCHEMATHESIS_EXAMPLES`` raises the number of examples per operation for a deeper local run.
What such runs found is pinned at the end of the file, so that the bounded run need not find it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import ADMIN_TOKEN, RunningServer

MAX_EXAMPLES = int(os.environ.get("PAYSVC_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Seed:
    """A tenant with a fee rule, funded accounts, captured payments (one partly refunded) and holds."""

    key: str
    path_ids: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> ids that exist
    body_values: dict[str, list[Any]] = field(default_factory=dict)  # body field -> values that pass the checks


def _seed(base_url: str) -> Seed:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        r = http.post("/admin/v1/tenants", json={"name": "schemathesis"},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = http.post(path, json=body, headers={**auth, "Idempotency-Key": f"seed-{uuid.uuid4().hex}"})
            assert r.status_code in (200, 201), r.text
            answer: dict[str, Any] = r.json()
            return answer

        r = http.put("/v1/fee-schedule", json={"rules": [{"currency": "USD", "percent_bps": 290, "fixed": 30}]},
                     headers=auth)
        assert r.status_code == 200, r.text
        funding = post("/v1/accounts", {"currency": "USD", "allow_negative": True})
        customers = [post("/v1/accounts", {"currency": "USD"}) for _ in range(2)]
        accounts = [funding["id"], *(c["id"] for c in customers)]
        payments = [  # deposits: captured, refundable
            post("/v1/payments", {"amount": 1_000_000, "currency": "USD", "source": funding["id"],
                                  "destination": customer["id"]})
            for customer in customers
        ]
        payments += [  # holds: capturable, cancelable
            post("/v1/payments", {"amount": 5_000, "currency": "USD", "source": customers[0]["id"],
                                  "destination": customers[1]["id"], "capture": False})
            for _ in range(3)
        ]
        post(f"/v1/payments/{payments[0]['id']}/refunds", {"amount": 100})
    return Seed(
        key=key,
        path_ids={"account_id": accounts, "payment_id": [p["id"] for p in payments]},
        body_values={"source": accounts, "destination": accounts, "currency": ["USD", "usd", "JPY"],
                     "amount": [1, 100, 5_000]},
    )


@pytest.fixture(scope="session")
def seed(app_server: RunningServer) -> Seed:
    return _seed(app_server.base_url)


def _sometimes(value: Any, known: list[Any] | None) -> st.SearchStrategy[Any]:
    """The generated value, or one of the known ones."""
    return st.sampled_from([value, *known]) if known else st.just(value)


@pytest.fixture(scope="session")
def api_schema(app_server: RunningServer, seed: Seed) -> Any:
    schema = schemathesis.openapi.from_url(app_server.base_url + "/schema/openapi.json")
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
        if not isinstance(path_parameters, dict) or not path_parameters:
            return st.just(path_parameters)
        return st.fixed_dictionaries({name: _sometimes(value, seed.path_ids.get(name))
                                      for name, value in path_parameters.items()})

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        if not isinstance(body, dict) or not body:
            return st.just(body)
        return st.fixed_dictionaries({name: _sometimes(value, seed.body_values.get(name))
                                      for name, value in body.items()})

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _pytest_node_id_shim(request: pytest.FixtureRequest) -> None:
    """schemathesis' ``from_fixture`` (4.32) renames the running item through ``node._nodeid``, which
    pytest 9.2 no longer has (the id moved to ``_id``): give it the attribute to read and write.
    Harmless where it exists already."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _credential(case: Any, seed: Seed) -> dict[str, str]:
    """The Authorization header the operation documents (the document's default: the API key)."""
    security = case.operation.definition.raw.get("security", [{"apiKey": []}])
    schemes = {name for requirement in security for name in requirement}
    if not schemes:
        return {}
    token = ADMIN_TOKEN if "adminToken" in schemes else seed.key
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_served_document(case: Any, seed: Seed) -> None:
    case.call_and_validate(headers=_credential(case, seed), checks=CHECKS)


# --- every phase, both modes, every check -------------------------------------------------------
# schemathesis' own runner: the examples, coverage and fuzzing phases, then the stateful phase (chains
# of calls following the links it infers between operations), in positive and negative mode, with
# every check it has. Bounded by examples per operation and a time budget. The failures it reports
# that are the document being less precise than the API (a schema-valid request the API refuses with
# a 400 its rules explain) are accepted in schemathesis-baseline.json, each listed with its reason in
# the comment below; any other failure fails the test.
#
# Accepted (each entry of the baseline carries its reason): ST202 "schema-valid request rejected"
# where the document is less precise than the brief (amount 0, currency "", cancel reason "",
# starting_after "", an empty batch: all 400s the brief defines), 402 insufficient_funds (the ledger
# declining, not the data refused), and 422 idempotency_key_reused where the generator sends one
# Idempotency-Key with different bodies; ST201 for a batch item with an
# unknown property, which the batch answers 200 with that item's 400 in its place, as the brief defines;
# and the same kind of ST202 on the webhook and risk routes (starting_after "", an empty
# enabled_events or url, a rule action or predicate outside the language, an unknown model id).
BASELINE = Path(__file__).with_name("schemathesis-baseline.json")
FULL_RUN_EXAMPLES = int(os.environ.get("PAYSVC_SCHEMATHESIS_FULL_EXAMPLES", "10"))
FULL_RUN_BUDGET_S = int(os.environ.get("PAYSVC_SCHEMATHESIS_FULL_BUDGET_S", "150"))


@pytest.mark.slow
@pytest.mark.timeout(FULL_RUN_BUDGET_S + 240)
def test_every_phase_and_check_finds_nothing_beyond_the_baseline(app_server: RunningServer, seed: Seed,
                                                                 tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", app_server.base_url + "/schema/openapi.json",
         "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all", "--checks", "all",
         "--max-examples", str(FULL_RUN_EXAMPLES), "--max-time", str(FULL_RUN_BUDGET_S),
         "--generation-deterministic", "--continue-on-failure", "--no-color", "--baseline", str(BASELINE),
         "--header", f"Authorization: Bearer {seed.key}"],
        capture_output=True, text=True, timeout=FULL_RUN_BUDGET_S + 200, check=False,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


# --- what schemathesis found, pinned -------------------------------------------------------------
# A NUL (U+0000) in a string of a body was a 500: PostgreSQL stores it neither in text nor in jsonb.
# (Found with more examples than the bounded run above makes, so each case is pinned here.)

NUL_CASES = [
    ("/v1/accounts", {"currency": "usd", "metadata": {"k\x00": "v"}}, "metadata_invalid", "metadata"),
    ("/v1/accounts", {"currency": "usd", "metadata": {"k": "v\x00"}}, "metadata_invalid", "metadata"),
    ("/v1/payments", {"amount": 100, "currency": "usd", "source": "{account}", "destination": "{other}",
                      "description": "a\x00b"}, "parameter_invalid", "description"),
    ("/v1/payments/{payment}/refunds", {"amount": 1, "metadata": {"\x00": ""}}, "metadata_invalid", "metadata"),
    ("/v1/payments/{payment}/cancel", {"reason": "\x00"}, "parameter_invalid", "reason"),
    ("/admin/v1/tenants", {"name": "acme\x00"}, "parameter_invalid", "name"),
]


@pytest.mark.parametrize(("path", "body", "code", "param"), NUL_CASES)
def test_a_nul_in_a_body_is_a_400_not_a_500(app_server: RunningServer, seed: Seed, path: str, body: dict[str, Any],
                                            code: str, param: str) -> None:
    ids = {"account": seed.path_ids["account_id"][1], "other": seed.path_ids["account_id"][2],
           "payment": seed.path_ids["payment_id"][0]}
    token = ADMIN_TOKEN if path.startswith("/admin/") else seed.key
    body = {k: v.format(**ids) if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()}
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        r = http.post(path.format(**ids), json=body,
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"nul-{uuid.uuid4().hex}"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)


def test_an_escaped_backslash_before_u0000_is_just_text(app_server: RunningServer, seed: Seed) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        r = http.post("/v1/accounts", content=rb'{"currency": "usd", "metadata": {"k": "\\u0000"}}',
                      headers={"Authorization": f"Bearer {seed.key}", "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == {"k": "\\u0000"}


# Found while probing around the run: a bad query parameter was named after the handler's argument.
@pytest.mark.parametrize(("path", "param"), [
    ("/v1/events?type=payment.nope", "type"),  # the handler's argument is event_type
    ("/v1/payments?status=%00", "status"),
    ("/v1/accounts?limit=0", "limit"),
])
def test_a_bad_query_parameter_is_named_as_sent(app_server: RunningServer, seed: Seed, path: str,
                                                param: str) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        r = http.get(path, headers={"Authorization": f"Bearer {seed.key}"})
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("parameter_invalid", param)
    assert f"parameter {param}:" in r.json()["error"]["message"]
