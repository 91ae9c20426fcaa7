"""Ledger invariants (design brief, section 5) checked directly in SQL, for the tests."""

from __future__ import annotations

from conftest import db_rows


def assert_books_balance(database_url: str) -> None:
    """Zero-sum per tenant and currency; posted = sum of entries; no forbidden negative available;
    balance_after and seq follow each account's entries exactly; pending = open holds; payment fields
    agree with their status; amount_refunded = the sum of the refunds (<= amount_captured by CHECK)."""
    unbalanced = db_rows(database_url, """
        SELECT tenant_id, currency, sum(amount) FROM entries GROUP BY tenant_id, currency
        HAVING sum(amount) <> 0""")
    assert unbalanced == [], f"entries do not sum to zero: {unbalanced}"
    drift = db_rows(database_url, """
        SELECT a.id, a.posted, coalesce(sum(e.amount), 0), a.entry_seq, coalesce(max(e.seq), 0), count(e.id)
        FROM accounts a LEFT JOIN entries e ON e.account_id = a.id
        GROUP BY a.id, a.posted, a.entry_seq
        HAVING a.posted <> coalesce(sum(e.amount), 0) OR a.entry_seq <> coalesce(max(e.seq), 0)
            OR a.entry_seq <> count(e.id)""")
    assert drift == [], f"balances differ from their entries: {drift}"
    negative = db_rows(database_url, """
        SELECT id, posted, pending FROM accounts WHERE NOT allow_negative AND posted - pending < 0""")
    assert negative == [], f"negative available balance: {negative}"
    running = db_rows(database_url, """
        SELECT id FROM (
            SELECT id, balance_after,
                   sum(amount) OVER (PARTITION BY account_id ORDER BY seq) AS running
            FROM entries) t
        WHERE balance_after <> running""")
    assert running == [], f"balance_after does not follow the entries: {running}"
    holds = db_rows(database_url, """
        SELECT a.id FROM accounts a
        LEFT JOIN (SELECT source_id, sum(amount) AS held FROM payments
                   WHERE status = 'requires_capture' GROUP BY source_id) h ON h.source_id = a.id
        WHERE a.pending <> coalesce(h.held, 0)""")
    assert holds == [], f"pending differs from open holds: {holds}"
    states = db_rows(database_url, """
        SELECT id FROM payments
        WHERE (status = 'canceled') <> (cancellation_reason IS NOT NULL)
           OR (status = 'requires_capture' AND (expires_at IS NULL OR amount_captured <> 0))
           OR (status = 'succeeded') <> (fee IS NOT NULL AND net = amount_captured - fee)
           OR (status = 'succeeded') <> (amount_captured > 0)
           OR (status = 'failed') <> (failure_code IS NOT NULL)""")
    assert states == [], f"payments whose fields contradict their status: {states}"
    refunds = db_rows(database_url, """
        SELECT p.id FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id
        GROUP BY p.id, p.amount_refunded HAVING p.amount_refunded <> coalesce(sum(r.amount), 0)""")
    assert refunds == [], f"amount_refunded differs from the refunds: {refunds}"
