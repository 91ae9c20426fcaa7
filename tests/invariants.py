"""Ledger invariants (design brief, section 5), for the tests: the checks of ``paysvc audit``."""

from __future__ import annotations

from paysvc.audit import run_audit


def assert_books_balance(database_url: str) -> None:
    """Zero-sum per tenant and currency and per posting; posted = sum of entries; no forbidden negative
    available; balance_after and seq follow each account's entries exactly; pending = open holds; payment
    fields agree with their status; amount_refunded = the sum of the refunds (<= amount_captured) and the
    entries agree with each payment; idempotency records name their tenant's payments, each created once.
    Fails with one line per violation (paysvc/audit.py runs the checks)."""
    report = run_audit(database_url)
    if not report.ok:
        lines = [str(violation) for violation in report.violations]
        if report.truncated:
            lines.append("… and more")
        raise AssertionError("the books do not balance:\n" + "\n".join(lines))
