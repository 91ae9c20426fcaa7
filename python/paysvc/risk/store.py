"""Risk rows: a tenant's settings and rules (read by the per-process cache, replaced by PUT), and
the transitions that are not payments: approving a review, a fraud report on a payment."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from paysvc import ids
from paysvc.db.pool import Pool
from paysvc.db.retry import Conn, RetryPolicy, read_all, run_transaction
from paysvc.errors import invalid_state, not_found
from paysvc.ledger.lifecycle import lock_payment
from paysvc.resources import (
    FraudDetails,
    Payment,
    Review,
    RiskChallenger,
    RiskRule,
    RiskRules,
    RiskSettings,
    RiskThresholds,
    UserReport,
    encode,
    review_from_row,
)
from paysvc.risk.settings import DEFAULT_SETTINGS

# Settings and rules in one statement (one round trip): one row per rule, or one row of NULL rule
# columns; the settings columns are NULL when the tenant never changed them (the defaults).
GET_SETTINGS_AND_RULES = """
SELECT s.mode, s.elevated, s.highest, s.champion, s.challenger, s.challenger_percent, s.shadow_models,
       r.id, r.action, r.predicate
FROM (SELECT %s::UUID AS tenant_id) AS t
LEFT JOIN risk_settings AS s ON s.tenant_id = t.tenant_id
LEFT JOIN risk_rules AS r ON r.tenant_id = t.tenant_id
ORDER BY r.position"""
PUT_SETTINGS = """
INSERT INTO risk_settings (tenant_id, mode, elevated, highest, champion, challenger, challenger_percent,
                           shadow_models, updated_at)
VALUES (%(tenant)s, %(mode)s, %(elevated)s, %(highest)s, %(champion)s, %(challenger)s, %(percent)s,
        %(shadows)s, now())
ON CONFLICT (tenant_id) DO UPDATE
SET mode = excluded.mode, elevated = excluded.elevated, highest = excluded.highest, champion = excluded.champion,
    challenger = excluded.challenger, challenger_percent = excluded.challenger_percent,
    shadow_models = excluded.shadow_models, updated_at = excluded.updated_at"""
DELETE_RULES = "DELETE FROM risk_rules WHERE tenant_id = %s"
INSERT_RULES = """
INSERT INTO risk_rules (tenant_id, position, id, action, predicate)
SELECT %(tenant)s, r.position - 1, r.id, r.action, r.predicate
FROM unnest(%(ids)s::UUID[], %(actions)s::TEXT[], %(predicates)s::TEXT[]) WITH ORDINALITY
     AS r(id, action, predicate, position)"""

LOCK_REVIEW = (
    "SELECT id, payment_id, rule_id, rule_action, rule_predicate, open, closed_reason, created_at, tenant_id "
    "FROM reviews WHERE id = %s FOR UPDATE"
)
# Closes one review and writes its review.closed event (also used by ledger/lifecycle.py's writes).
APPROVE_REVIEW = """
WITH rev AS (
    UPDATE reviews SET open = false, closed_reason = 'approved' WHERE id = %(review)s
)
INSERT INTO events (id, tenant_id, type, data, created_at)
VALUES (%(event)s, %(tenant)s, 'review.closed', %(data)s, now())"""
REPORT_FRAUD = """
WITH pay AS (
    UPDATE payments SET user_report = %(report)s, last_event_at = %(at)s WHERE id = %(payment)s
)
INSERT INTO events (id, tenant_id, type, data, created_at)
VALUES (%(event)s, %(tenant)s, 'payment.fraud_reported', %(data)s, %(at)s)"""


async def read_settings(pool: Pool, tenant_id: uuid.UUID) -> tuple[RiskSettings, RiskRules]:
    rows = await read_all(pool, GET_SETTINGS_AND_RULES, (tenant_id,))
    settings = DEFAULT_SETTINGS
    mode, elevated, highest, champion, challenger, percent, shadows = rows[0][:7]
    if mode is not None:
        settings = RiskSettings(
            mode=mode, thresholds=RiskThresholds(elevated=elevated, highest=highest), champion=champion,
            challenger=None if challenger is None else RiskChallenger(model=challenger, percent=percent),
            shadow_models=list(shadows),
        )
    rules = RiskRules(rules=[
        RiskRule(id=ids.encode(ids.RULE, row[7]), action=row[8], predicate=row[9])
        for row in rows if row[7] is not None
    ])
    return settings, rules


async def write_settings(pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, settings: RiskSettings) -> None:
    challenger = settings.challenger
    params = {
        "tenant": tenant_id, "mode": settings.mode, "elevated": settings.thresholds.elevated,
        "highest": settings.thresholds.highest, "champion": settings.champion,
        "challenger": None if challenger is None else challenger.model,
        "percent": 0 if challenger is None else challenger.percent, "shadows": Jsonb(settings.shadow_models),
    }

    async def work(conn: Conn) -> None:
        await conn.execute(PUT_SETTINGS, params)

    await run_transaction(pool, work, policy=policy, idempotent=True)


async def write_rules(pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, rules: RiskRules) -> None:
    params = {
        "tenant": tenant_id,
        "ids": [ids.decode(ids.RULE, rule.id) for rule in rules.rules],
        "actions": [rule.action for rule in rules.rules],
        "predicates": [rule.predicate for rule in rules.rules],
    }

    async def work(conn: Conn) -> None:
        await conn.execute(DELETE_RULES, (tenant_id,))
        if rules.rules:
            await conn.execute(INSERT_RULES, params)

    await run_transaction(pool, work, policy=policy, idempotent=True)


async def _approve_tx(tenant_id: uuid.UUID, review_text: str, review_id: uuid.UUID, conn: Conn) -> Review:
    row: tuple[Any, ...] | None = await (await conn.execute(LOCK_REVIEW, (review_id,))).fetchone()
    if row is None or row[-1] != tenant_id:
        raise not_found("review", review_text, param="id")
    review = review_from_row(row[:-1])
    if not review.open:
        raise invalid_state(f"Review {review_text} is already closed ({review.closed_reason}).")
    review = msgspec.structs.replace(review, open=False, closed_reason="approved")
    await conn.execute(APPROVE_REVIEW, {"review": review_id, "event": ids.new_uuid(), "tenant": tenant_id,
                                        "data": encode(review)})
    return review


async def approve_review(pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, review_text: str) -> Review:
    review_id = ids.decode(ids.REVIEW, review_text)
    if review_id is None:
        raise not_found("review", review_text, param="id")
    return await run_transaction(pool, partial(_approve_tx, tenant_id, review_text, review_id), policy=policy,
                                 idempotent=True)


async def _report_tx(
    tenant_id: uuid.UUID, payment_text: str, payment_id: uuid.UUID, report: UserReport, conn: Conn
) -> Payment:
    locked = await lock_payment(conn, payment_id, tenant_id)
    if locked is None:
        raise not_found("payment", payment_text, param="id")
    payment = msgspec.structs.replace(locked.resource, fraud_details=FraudDetails(user_report=report))
    await conn.execute(REPORT_FRAUD, {"report": report, "at": locked.event_time, "payment": payment_id,
                                      "event": ids.new_uuid(), "tenant": tenant_id, "data": encode(payment)})
    return payment


async def report_fraud(
    pool: Pool, policy: RetryPolicy, tenant_id: uuid.UUID, payment_text: str, report: UserReport
) -> Payment:
    """Label a payment (fraudulent or safe) for training; emits payment.fraud_reported."""
    payment_id = ids.decode(ids.PAYMENT, payment_text)
    if payment_id is None:
        raise not_found("payment", payment_text, param="id")
    return await run_transaction(pool, partial(_report_tx, tenant_id, payment_text, payment_id, report),
                                 policy=policy, idempotent=True)
