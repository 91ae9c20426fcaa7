"""The world a load run works on, created through the API the way ``paysvc torture`` does it:
a tenant (admin API), a USD fee schedule, a funding account (allow_negative), N customer accounts
funded by deposits, and one merchant account (the hot merchant's payee).

Runs in the locust master (or the single local process) before any user starts; the requests made
here are not part of the run's statistics.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import gevent.pool
import requests

CURRENCY = "USD"
FEE_RULE = {"currency": CURRENCY, "percent_bps": 290, "fixed": 30}  # 2.9% + 30 cents, as in the walk-through
SETUP_CONCURRENCY = 8
TIMEOUT_S = 30


class SetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Fixture:
    api_key: str
    funding: str
    merchant: str
    customers: list[str]

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Fixture:
        return cls(data["api_key"], data["funding"], data["merchant"], list(data["customers"]))


def create(host: str, admin_token: str, n_customers: int, deposit: int) -> Fixture:
    """A fresh tenant with its accounts; raises SetupError naming the call that went wrong."""
    if not admin_token:
        raise SetupError("PAYSVC_ADMIN_TOKEN is not set: it must be the service's admin token")
    if n_customers < 2:
        raise SetupError("at least 2 customers are needed")
    base = host.rstrip("/")
    with requests.Session() as http:

        def call(method: str, path: str, body: dict[str, Any], token: str, key: str | None = None) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {token}"}
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                r = http.request(method, base + path, json=body, headers=headers, timeout=TIMEOUT_S)
            except requests.RequestException as exc:
                raise SetupError(f"{method} {base}{path}: {exc}") from None
            if r.status_code not in (200, 201):
                raise SetupError(f"{method} {base}{path} answered {r.status_code}: {r.text[:300]}")
            value: dict[str, Any] = r.json()
            return value

        run = uuid.uuid4().hex[:12]
        tenant = call("POST", "/admin/v1/tenants", {"name": f"loadtest-{run}"}, admin_token)
        key = tenant["api_key"]
        call("PUT", "/v1/fee-schedule", {"rules": [FEE_RULE]}, key)
        funding = call("POST", "/v1/accounts", {"currency": CURRENCY, "allow_negative": True,
                                                "metadata": {"role": "funding"}}, key)["id"]
        merchant = call("POST", "/v1/accounts", {"currency": CURRENCY, "metadata": {"role": "merchant"}}, key)["id"]

        def customer(n: int) -> str:
            account = call("POST", "/v1/accounts", {"currency": CURRENCY, "metadata": {"role": "customer"}}, key)["id"]
            call("POST", "/v1/payments", {"amount": deposit, "currency": CURRENCY, "source": funding,
                                          "destination": account, "description": "load test deposit"},
                 key, key=f"deposit-{run}-{n}")
            return str(account)

        pool = gevent.pool.Pool(SETUP_CONCURRENCY)
        customers = list(pool.imap(customer, range(n_customers)))
    return Fixture(api_key=key, funding=funding, merchant=merchant, customers=customers)
