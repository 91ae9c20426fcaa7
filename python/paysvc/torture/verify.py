"""After the torture run: hold the database to what every client was told."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

from paysvc import ids
from paysvc.torture.clients import Told

PAYMENTS_OF_TENANT = (
    "SELECT id, amount, currency, status, amount_captured, amount_refunded FROM payments WHERE tenant_id = %s"
)
REFUNDS_OF_TENANT = "SELECT id, payment_id, amount FROM refunds WHERE tenant_id = %s"
MONEY_OUTSIDE_FUNDING = (
    "SELECT coalesce(sum(posted), 0), coalesce(sum(pending), 0) FROM accounts WHERE tenant_id = %s AND id <> %s"
)
FUNDING_POSTED = "SELECT posted FROM accounts WHERE id = %s"
RECORDS_UNDER = "SELECT idem_key FROM idempotency_keys WHERE tenant_id = %s AND idem_key = ANY(%s)"

CREATES = frozenset({"deposit", "payment", "hold"})


def verify(database_url: str, tenant_id: uuid.UUID, funding_id: uuid.UUID, told: Iterable[Told],
           setup_deposits: dict[str, int], abandoned_keys: list[str]) -> tuple[list[str], dict[str, int]]:
    """Violations (empty when every acknowledged answer holds in the database) and a few counts.

    ``abandoned_keys``: requests the client abandoned before their body ended. None may have run: an
    executed write stores its record under its key in the transaction that moves the money, so no
    record means no money moved (and a payment that ran would also be one no client was told of)."""
    violations: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        executed = [row[0] for row in conn.execute(RECORDS_UNDER, (tenant_id, abandoned_keys)).fetchall()]
        if executed:
            violations.append(f"{len(executed)} requests abandoned before their body ended were executed, e.g. "
                              f"{sorted(executed)[:5]}")
        payments: dict[str, tuple[Any, ...]] = {
            ids.encode(ids.PAYMENT, row[0]): row[1:]
            for row in conn.execute(PAYMENTS_OF_TENANT, (tenant_id,)).fetchall()
        }
        refunds: dict[str, tuple[Any, ...]] = {
            ids.encode(ids.REFUND, row[0]): (ids.encode(ids.PAYMENT, row[1]), row[2])
            for row in conn.execute(REFUNDS_OF_TENANT, (tenant_id,)).fetchall()
        }
        outside = conn.execute(MONEY_OUTSIDE_FUNDING, (tenant_id, funding_id)).fetchone()
        funding = conn.execute(FUNDING_POSTED, (funding_id,)).fetchone()
    assert outside is not None and funding is not None

    acknowledged_payments: dict[str, str] = dict.fromkeys(setup_deposits, "setup")
    acknowledged_refunds: set[str] = set()
    deposited = sum(setup_deposits.values())
    for answer in told:
        body = answer.json()
        if answer.op in CREATES:
            if answer.status == 201:
                payment_id = body["id"]
                if answer.op == "deposit":
                    deposited += body["amount"]
            elif answer.status == 402:
                payment_id = body["error"]["payment"]
            else:
                violations.append(f"{answer.op} key {answer.key} was answered {answer.status}: {body}")
                continue
            if acknowledged_payments.setdefault(payment_id, answer.key) != answer.key:
                violations.append(f"two keys were answered with one payment {payment_id}")
            row = payments.get(payment_id)
            if row is None:
                violations.append(f"acknowledged payment {payment_id} (key {answer.key}) does not exist")
            elif (row[0], row[1]) != (answer.body["amount"], "USD"):
                violations.append(f"payment {payment_id} holds {row[0]} {row[1]}, acknowledged {answer.body}")
            elif answer.status == 402 and row[2] != "failed":
                violations.append(f"declined payment {payment_id} has status {row[2]}")
        elif answer.op == "capture" and answer.status == 200:
            row = payments.get(body["id"])
            if row is None or row[2] != "succeeded" or row[3] != body["amount_captured"]:
                violations.append(f"capture of {body['id']} acknowledged {body['amount_captured']}, stored {row}")
        elif answer.op == "cancel" and answer.status == 200:
            row = payments.get(body["id"])
            if row is None or row[2] != "canceled":
                violations.append(f"cancel of {body['id']} acknowledged, stored {row}")
        elif answer.op == "refund" and answer.status == 201:
            acknowledged_refunds.add(body["id"])
            stored = refunds.get(body["id"])
            if stored != (body["payment"], body["amount"]):
                violations.append(f"refund {body['id']} acknowledged {body['amount']}, stored {stored}")

    unacknowledged = set(payments) - set(acknowledged_payments)
    if unacknowledged:
        violations.append(f"{len(unacknowledged)} payments exist that no client was told of, e.g. "
                          f"{sorted(unacknowledged)[:5]}")
    phantom_refunds = set(refunds) - acknowledged_refunds
    if phantom_refunds:
        violations.append(f"{len(phantom_refunds)} refunds exist that no client was told of, e.g. "
                          f"{sorted(phantom_refunds)[:5]}")
    posted_outside, _pending = outside
    if posted_outside != deposited or -funding[0] != deposited:
        violations.append(f"money: acknowledged deposits {deposited}, held outside the funding account "
                          f"{posted_outside}, funding account posted {funding[0]}")
    counts = {"payments": len(payments), "refunds": len(refunds), "deposited_minor": deposited}
    return violations, counts
