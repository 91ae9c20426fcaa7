"""Random sequences of payments (captures, holds, duplicates, key reuse, overdrafts) through the
real API, checked step by step against a plain model of the balances and, at the end, against the
ledger invariants in SQL. Money never appears, disappears or doubles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ADMIN_TOKEN, RunningServer
from invariants import assert_books_balance

CUSTOMERS = 3  # account 0 is the funding account (allow_negative); 1..3 are customers


@dataclass
class Model:
    posted: list[int] = field(default_factory=lambda: [0] * (CUSTOMERS + 1))
    pending: list[int] = field(default_factory=lambda: [0] * (CUSTOMERS + 1))
    answers: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)  # key -> (request, status, body)

    def available(self, i: int) -> int:
        return self.posted[i] - self.pending[i]


payment_ops = st.tuples(
    st.integers(0, CUSTOMERS),            # source
    st.integers(0, CUSTOMERS),            # destination
    st.integers(1, 400),                  # amount
    st.booleans(),                        # capture
    st.sampled_from(["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"]),  # small pool: replays and reuse
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(payment_ops, min_size=1, max_size=25))
def test_random_payments_match_a_model_and_keep_the_books(
    app_server: RunningServer, ops: list[tuple[int, int, int, bool, str]]
) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        created = http.post("/admin/v1/tenants", json={"name": "prop"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        auth = {"Authorization": f"Bearer {created['api_key']}"}
        accounts = [
            http.post("/v1/accounts", json={"currency": "USD", "allow_negative": i == 0}, headers=auth).json()["id"]
            for i in range(CUSTOMERS + 1)
        ]
        model = Model()
        for source, destination, amount, capture, key in ops:
            body: dict[str, Any] = {"amount": amount, "currency": "USD", "source": accounts[source],
                                    "destination": accounts[destination], "capture": capture}
            request = json.dumps(body, sort_keys=True)
            r = http.post("/v1/payments", json=body, headers={**auth, "Idempotency-Key": key})
            _check(model, r, request, key, source, destination, amount, capture)

        for i, account_id in enumerate(accounts):
            balance = http.get(f"/v1/accounts/{account_id}", headers=auth).json()["balance"]
            assert balance == {"posted": model.posted[i], "pending": model.pending[i],
                               "available": model.available(i)}, (i, balance)
        assert sum(model.posted) == 0
    assert_books_balance(app_server.database_url)


def _check(model: Model, r: httpx.Response, request: str, key: str,
           source: int, destination: int, amount: int, capture: bool) -> None:
    if source == destination:
        assert r.status_code == 400 and r.json()["error"]["code"] == "same_account"
        return  # a 400 stores nothing: the key stays free
    if key in model.answers:
        first_request, status, body = model.answers[key]
        if first_request == request:
            assert (r.status_code, r.content) == (status, body)
            assert r.headers["idempotent-replayed"] == "true"
        else:
            assert r.status_code == 422
        return
    if source != 0 and model.available(source) < amount:
        assert r.status_code == 402, r.text
        assert r.json()["error"]["code"] == "insufficient_funds"
    else:
        assert r.status_code == 201, r.text
        if capture:
            model.posted[source] -= amount
            model.posted[destination] += amount
        else:
            model.pending[source] += amount
    model.answers[key] = (request, r.status_code, r.content)
