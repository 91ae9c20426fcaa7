"""``paysvc audit``: check every ledger invariant (design brief, section 5) over the whole database.

All checks read one snapshot: a single READ ONLY transaction at REPEATABLE READ, so a payment that
commits while the audit runs is either entirely visible to every check or to none. (CockroachDB runs
it as SERIALIZABLE unless its REPEATABLE READ is enabled; a read-only SERIALIZABLE transaction reads
one snapshot too, so the audit means the same there.)

Each check is one query that aggregates in SQL down to one row per subject (tenant and currency,
posting, account, payment, idempotency record) and is read through a server-side cursor in batches
of ``BATCH_ROWS``, so the audit's memory does not grow with the database. (psycopg's server-side
cursors are DECLARE/FETCH, which CockroachDB supports since 22.1.2.) Python compares the numbers,
so each violation says what was found and what was expected, and the progress callback sees every
batch. The SQL follows shared/design/sql-rules.md: named columns, sums cast back to BIGINT (they
are NUMERIC on PostgreSQL and DECIMAL on CockroachDB), no division.

The checks:

1. ``zero_sum``: per tenant and currency, the entries sum to zero.
2. ``posting_sums_to_zero``: per posting (payment_id, refund_id), the entries sum to zero.
3. ``posted_equals_entries``: each account's posted is the sum of its entries, entry_seq is both
   the highest seq and the number of its entries, and balance_after is the running sum by seq.
4. ``pending_equals_open_holds``: each account's pending is the sum of the payments it is the source
   of that are still ``requires_capture``.
5. ``no_negative_available``: no account without allow_negative has posted - pending < 0.
6. ``refunds_within_captured``: a payment's amount_refunded is the sum of its refunds and at most
   amount_captured; its entries agree with it (the source's payment entries sum to -amount_captured,
   the destination's to the net, the fee entries to the fee, the source's refund entries to
   amount_refunded, and no other account has payment or refund entries of it).
7. ``payment_fields_match_status``: canceled <=> cancellation_reason; an open hold has expires_at
   and nothing captured; succeeded <=> fee set, net = amount_captured - fee and amount_captured > 0;
   failed <=> failure_code.
8. ``idempotency_records``: a completed record naming a payment names an existing payment of its own
   tenant; no payment is the stored 201 response of two records (a replay that created it twice).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg

from paysvc import ids

Progress = Callable[[str, int, int | None], None]

BATCH_ROWS = 5_000  # rows fetched per round trip from each server-side cursor

ZERO_SUM = "zero_sum"
POSTING_SUMS_TO_ZERO = "posting_sums_to_zero"
POSTED_EQUALS_ENTRIES = "posted_equals_entries"
PENDING_EQUALS_OPEN_HOLDS = "pending_equals_open_holds"
NO_NEGATIVE_AVAILABLE = "no_negative_available"
REFUNDS_WITHIN_CAPTURED = "refunds_within_captured"
PAYMENT_FIELDS_MATCH_STATUS = "payment_fields_match_status"
IDEMPOTENCY_RECORDS = "idempotency_records"

CHECKS: tuple[str, ...] = (
    ZERO_SUM,
    POSTING_SUMS_TO_ZERO,
    POSTED_EQUALS_ENTRIES,
    PENDING_EQUALS_OPEN_HOLDS,
    NO_NEGATIVE_AVAILABLE,
    REFUNDS_WITHIN_CAPTURED,
    PAYMENT_FIELDS_MATCH_STATUS,
    IDEMPOTENCY_RECORDS,
)

# ---- SQL ---------------------------------------------------------------------------------------

COUNT_ENTRIES = "SELECT count(*) FROM entries"
COUNT_ACCOUNTS = "SELECT count(*) FROM accounts"
COUNT_STRICT_ACCOUNTS = "SELECT count(*) FROM accounts WHERE NOT allow_negative"
COUNT_PAYMENTS = "SELECT count(*) FROM payments"
COUNT_IDEMPOTENCY = (
    "SELECT count(*) FROM idempotency_keys "
    "WHERE status_code IS NOT NULL AND (payment_id IS NOT NULL OR status_code = 201)"
)

# 1. One row per (tenant, currency); the count is the number of entries examined.
ENTRIES_BY_TENANT_CURRENCY = """
SELECT tenant_id, currency, sum(amount)::BIGINT AS total, count(*) AS n
FROM entries
GROUP BY tenant_id, currency"""

# 2. One row per posting.
ENTRIES_BY_POSTING = """
SELECT payment_id, refund_id, sum(amount)::BIGINT AS total, count(*) AS n
FROM entries
GROUP BY payment_id, refund_id"""

# 3. One row per account, with its entries summarized (seq is unique per account, so the running sum
# by seq is well defined; the frame is spelled out so it means the same on both engines).
ACCOUNTS_WITH_ENTRIES = """
SELECT a.id, a.posted, a.entry_seq,
       coalesce(s.total, 0) AS total, coalesce(s.max_seq, 0) AS max_seq, coalesce(s.n, 0) AS n,
       coalesce(s.off_track, 0) AS off_track, s.first_off_track
FROM accounts AS a
LEFT JOIN (
    SELECT r.account_id,
           sum(r.amount)::BIGINT AS total,
           max(r.seq) AS max_seq,
           count(*) AS n,
           sum(CASE WHEN r.balance_after <> r.running THEN 1 ELSE 0 END)::BIGINT AS off_track,
           min(CASE WHEN r.balance_after <> r.running THEN r.seq END) AS first_off_track
    FROM (
        SELECT account_id, seq, amount, balance_after,
               sum(amount) OVER (PARTITION BY account_id ORDER BY seq
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
        FROM entries
    ) AS r
    GROUP BY r.account_id
) AS s ON s.account_id = a.id"""

# 4. One row per account, with the open holds it is the source of.
ACCOUNTS_WITH_OPEN_HOLDS = """
SELECT a.id, a.pending, coalesce(h.held, 0) AS held, coalesce(h.n, 0) AS n
FROM accounts AS a
LEFT JOIN (
    SELECT source_id, sum(amount)::BIGINT AS held, count(*) AS n
    FROM payments
    WHERE status = 'requires_capture'
    GROUP BY source_id
) AS h ON h.source_id = a.id"""

# 5. Every account that may not go negative.
STRICT_ACCOUNTS = "SELECT id, posted, pending FROM accounts WHERE NOT allow_negative"

# 6. One row per payment, with its refunds and its entries summarized by role.
PAYMENTS_WITH_REFUNDS_AND_ENTRIES = """
SELECT p.id, p.amount_captured, p.amount_refunded, p.fee,
       coalesce(r.total, 0) AS refunded_total, coalesce(r.n, 0) AS refunds,
       coalesce(e.source_paid, 0) AS source_paid, coalesce(e.destination_paid, 0) AS destination_paid,
       coalesce(e.fees, 0) AS fees, coalesce(e.fee_entries, 0) AS fee_entries,
       coalesce(e.source_refunded, 0) AS source_refunded, coalesce(e.stray, 0) AS stray
FROM payments AS p
LEFT JOIN (
    SELECT payment_id, sum(amount)::BIGINT AS total, count(*) AS n
    FROM refunds
    GROUP BY payment_id
) AS r ON r.payment_id = p.id
LEFT JOIN (
    SELECT x.payment_id,
           sum(CASE WHEN x.kind = 'payment' AND x.account_id = q.source_id
                    THEN x.amount ELSE 0 END)::BIGINT AS source_paid,
           sum(CASE WHEN x.kind = 'payment' AND x.account_id = q.destination_id
                    THEN x.amount ELSE 0 END)::BIGINT AS destination_paid,
           sum(CASE WHEN x.kind = 'fee' THEN x.amount ELSE 0 END)::BIGINT AS fees,
           sum(CASE WHEN x.kind = 'fee' THEN 1 ELSE 0 END)::BIGINT AS fee_entries,
           sum(CASE WHEN x.kind = 'refund' AND x.account_id = q.source_id
                    THEN x.amount ELSE 0 END)::BIGINT AS source_refunded,
           sum(CASE WHEN x.kind <> 'fee' AND x.account_id <> q.source_id AND x.account_id <> q.destination_id
                    THEN 1 ELSE 0 END)::BIGINT AS stray
    FROM entries AS x
    JOIN payments AS q ON q.id = x.payment_id
    GROUP BY x.payment_id
) AS e ON e.payment_id = p.id"""

# 7. Every payment's status fields.
PAYMENT_FIELDS = """
SELECT id, status, amount_captured, fee, net, failure_code, cancellation_reason, expires_at
FROM payments"""

# 8. Every completed record naming a payment, and every 201 (whose body may be a created payment),
# ordered by payment_id so the records naming one payment arrive together.
IDEMPOTENCY_RECORDS_SQL = """
SELECT k.tenant_id, k.idem_key, k.status_code, k.payment_id, p.tenant_id AS payment_tenant_id,
       CASE WHEN k.status_code = 201 THEN k.response_body END AS body
FROM idempotency_keys AS k
LEFT JOIN payments AS p ON p.id = k.payment_id
WHERE k.status_code IS NOT NULL AND (k.payment_id IS NOT NULL OR k.status_code = 201)
ORDER BY k.payment_id, k.tenant_id, k.idem_key"""


# ---- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    check: str  # e.g. "zero_sum", "posted_equals_entries"
    subject: str  # what is wrong, by API id where there is one: "acct_…", "pay_…", "ten_… USD"
    detail: str  # one human sentence with the numbers

    def to_json(self) -> dict[str, object]:
        return {"check": self.check, "subject": self.subject, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


@dataclass(slots=True)
class AuditReport:
    checks: dict[str, int]  # check name -> rows examined
    violations: list[Violation]
    truncated: bool  # more violations existed than max_violations
    duration_ms: int

    @property
    def ok(self) -> bool:
        return not self.violations and not self.truncated

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checks": dict(self.checks),
            "violations": [violation.to_json() for violation in self.violations],
            "truncated": self.truncated,
            "duration_ms": self.duration_ms,
        }


# ---- running the checks ------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    conn: psycopg.Connection[tuple[Any, ...]]
    progress: Progress | None
    max_violations: int
    checks: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    truncated: bool = False
    _totals: dict[str, int] = field(default_factory=dict)

    def flag(self, check: str, subject: str, detail: str) -> None:
        if len(self.violations) < self.max_violations:
            self.violations.append(Violation(check, subject, detail))
        else:
            self.truncated = True

    def _total(self, query: LiteralString) -> int:
        if query not in self._totals:
            row = self.conn.execute(query).fetchone()
            assert row is not None
            self._totals[query] = int(row[0])
        return self._totals[query]

    def rows(
        self,
        check: str,
        query: LiteralString,
        total_query: LiteralString | None,
        weight: Callable[[tuple[Any, ...]], int] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query`` through a server-side cursor, batch by batch; counts what each row
        stands for (``weight``: 1 by default) into the check's rows examined, and reports progress."""
        total = None if total_query is None else self._total(total_query)
        done = 0
        self.checks[check] = 0
        self._report(check, done, total)
        with self.conn.cursor(name=f"paysvc_audit_{check}") as cursor:
            cursor.execute(query)
            while batch := cursor.fetchmany(BATCH_ROWS):
                for row in batch:
                    done += 1 if weight is None else weight(row)
                    yield row
                self.checks[check] = done
                self._report(check, done, total)

    def _report(self, check: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(check, done, total)


def _account(value: uuid.UUID) -> str:
    return ids.encode(ids.ACCOUNT, value)


def _payment(value: uuid.UUID) -> str:
    return ids.encode(ids.PAYMENT, value)


def _tenant(value: uuid.UUID) -> str:
    return ids.encode(ids.TENANT, value)


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def _check_zero_sum(run: _Run) -> None:
    rows = run.rows(ZERO_SUM, ENTRIES_BY_TENANT_CURRENCY, COUNT_ENTRIES, weight=lambda row: int(row[3]))
    for tenant_id, currency, total, n in rows:
        if total != 0:
            run.flag(ZERO_SUM, f"{_tenant(tenant_id)} {currency}",
                     f"The {_entries(n)} of the tenant in {currency} sum to {total}, not 0.")


def _check_postings(run: _Run) -> None:
    rows = run.rows(POSTING_SUMS_TO_ZERO, ENTRIES_BY_POSTING, COUNT_ENTRIES, weight=lambda row: int(row[3]))
    for payment_id, refund_id, total, n in rows:
        if total == 0:
            continue
        if refund_id is not None:
            subject = ids.encode(ids.REFUND, refund_id)
            what = "refund" if payment_id is None else f"refund of payment {_payment(payment_id)}"
        elif payment_id is not None:
            subject = _payment(payment_id)
            what = "payment"
        else:
            subject = "entries without a payment"
            what = "posting without a payment or refund"
        run.flag(POSTING_SUMS_TO_ZERO, subject, f"The {_entries(n)} of the {what} sum to {total}, not 0.")


def _check_accounts(run: _Run) -> None:
    check = POSTED_EQUALS_ENTRIES
    for account_id, posted, entry_seq, total, max_seq, n, off_track, first_off in run.rows(
        check, ACCOUNTS_WITH_ENTRIES, COUNT_ACCOUNTS
    ):
        subject = _account(account_id)
        if posted != total:
            run.flag(check, subject, f"posted is {posted} but its {_entries(n)} sum to {total}.")
        if entry_seq != max_seq or entry_seq != n:
            run.flag(check, subject,
                     f"entry_seq is {entry_seq} but it has {_entries(n)} with seq up to {max_seq}.")
        if off_track:
            run.flag(check, subject,
                     f"balance_after of {_entries(off_track)} is not the running sum of the amounts "
                     f"by seq (first at seq {first_off}).")


def _check_pending(run: _Run) -> None:
    check = PENDING_EQUALS_OPEN_HOLDS
    for account_id, pending, held, n in run.rows(check, ACCOUNTS_WITH_OPEN_HOLDS, COUNT_ACCOUNTS):
        if pending != held:
            holds = "1 open hold" if n == 1 else f"{n} open holds"
            run.flag(check, _account(account_id),
                     f"pending is {pending} but the {holds} from it (requires_capture) total {held}.")


def _check_available(run: _Run) -> None:
    check = NO_NEGATIVE_AVAILABLE
    for account_id, posted, pending in run.rows(check, STRICT_ACCOUNTS, COUNT_STRICT_ACCOUNTS):
        if posted - pending < 0:
            run.flag(check, _account(account_id),
                     f"available is {posted - pending} (posted {posted} - pending {pending}) but the "
                     "account does not allow a negative balance.")


def _check_refunds(run: _Run) -> None:
    check = REFUNDS_WITHIN_CAPTURED
    rows = run.rows(check, PAYMENTS_WITH_REFUNDS_AND_ENTRIES, COUNT_PAYMENTS)
    for (payment_id, captured, refunded, fee, refunds_total, refunds, source_paid, destination_paid,
         fees, fee_entries, source_refunded, stray) in rows:
        subject = _payment(payment_id)
        if refunded != refunds_total:
            count = "1 refund" if refunds == 1 else f"{refunds} refunds"
            run.flag(check, subject, f"amount_refunded is {refunded} but its {count} total {refunds_total}.")
        if refunded > captured:
            run.flag(check, subject, f"amount_refunded {refunded} exceeds amount_captured {captured}.")
        if source_paid != -captured:
            run.flag(check, subject,
                     f"The source's payment entries sum to {source_paid}, not -{captured} (-amount_captured).")
        expected_fee = fee or 0
        if fees != expected_fee or (expected_fee == 0 and fee_entries):
            run.flag(check, subject,
                     f"Its {_entries(fee_entries)} of kind fee sum to {fees}, not the fee {expected_fee}.")
        if destination_paid != captured - expected_fee:
            run.flag(check, subject,
                     f"The destination's payment entries sum to {destination_paid}, not the net "
                     f"{captured - expected_fee} (amount_captured {captured} - fee {expected_fee}).")
        if source_refunded != refunded:
            run.flag(check, subject,
                     f"The source's refund entries sum to {source_refunded}, not amount_refunded {refunded}.")
        if stray:
            run.flag(check, subject,
                     f"{_entries(stray)} of kind payment or refund are on accounts other than its source "
                     "and destination.")


def _check_payment_fields(run: _Run) -> None:
    check = PAYMENT_FIELDS_MATCH_STATUS
    rows = run.rows(check, PAYMENT_FIELDS, COUNT_PAYMENTS)
    for payment_id, status, captured, fee, net, failure_code, reason, expires_at in rows:
        subject = _payment(payment_id)
        problems: list[str] = []
        if (status == "canceled") != (reason is not None):
            problems.append("has no cancellation_reason" if reason is None
                            else f"has cancellation_reason {reason!r}")
        if status == "requires_capture":
            if expires_at is None:
                problems.append("has no expires_at")
            if captured != 0:
                problems.append(f"has amount_captured {captured}")
        settled = fee is not None and net is not None and net == captured - fee
        if status == "succeeded" and fee is None:
            problems.append("has no fee")
        elif status == "succeeded" and not settled:
            problems.append(f"has net {net}, not amount_captured {captured} - fee {fee} = {captured - fee}")
        if status != "succeeded" and settled:
            problems.append(f"has fee {fee} and net {net} set")
        if (status == "succeeded") != (captured > 0):
            problems.append(f"has amount_captured {captured}")
        if (status == "failed") != (failure_code is not None):
            problems.append("has no failure_code" if failure_code is None
                            else f"has failure_code {failure_code!r}")
        for problem in dict.fromkeys(problems):  # in order, each once
            run.flag(check, subject, f"The {status} payment {problem}.")


def _check_idempotency(run: _Run) -> None:
    check = IDEMPOTENCY_RECORDS
    # Records arrive ordered by payment_id: the 201 records whose body is the payment they name are
    # counted per payment, and a payment's count is complete when the next payment_id arrives.
    current: uuid.UUID | None = None
    creations: list[str] = []

    def close_payment() -> None:
        if current is not None and len(creations) > 1:
            run.flag(check, _payment(current),
                     f"{len(creations)} idempotency records stored a 201 creating this payment "
                     f"(keys {', '.join(creations)}): a replay created it again.")

    rows = run.rows(check, IDEMPOTENCY_RECORDS_SQL, COUNT_IDEMPOTENCY)
    for tenant_id, key, status_code, payment_id, payment_tenant_id, body in rows:
        if payment_id != current:
            close_payment()
            current, creations = payment_id, []
        record = f"the {status_code} idempotency record {key!r} of tenant {_tenant(tenant_id)}"
        if payment_id is not None and payment_tenant_id is None:
            run.flag(check, _payment(payment_id), f"It is named by {record} but does not exist.")
        elif payment_id is not None and payment_tenant_id != tenant_id:
            run.flag(check, _payment(payment_id),
                     f"It belongs to tenant {_tenant(payment_tenant_id)} but is named by {record}.")
        if status_code != 201 or body is None:
            continue
        try:
            stored = json.loads(bytes(body))
        except ValueError:
            run.flag(check, _tenant(tenant_id), f"The stored body of {record} is not JSON.")
            continue
        if not isinstance(stored, dict) or stored.get("object") != "payment":
            continue
        created = stored.get("id")
        if payment_id is None or created != _payment(payment_id):
            named = "no payment" if payment_id is None else _payment(payment_id)
            run.flag(check, str(created), f"The body of {record} is this payment, but the record names {named}.")
        else:
            creations.append(repr(key))
    close_payment()


_STEPS: tuple[Callable[[_Run], None], ...] = (
    _check_zero_sum,
    _check_postings,
    _check_accounts,
    _check_pending,
    _check_available,
    _check_refunds,
    _check_payment_fields,
    _check_idempotency,
)


def run_audit(
    database_url: str, *, progress: Progress | None = None, max_violations: int = 1_000
) -> AuditReport:
    """Run every check over the whole database, in one snapshot; keep the first ``max_violations``."""
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        run = _Run(conn, progress, max(0, max_violations))
        with conn.transaction():  # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
            for step in _STEPS:
                step(run)
    return AuditReport(
        checks=run.checks,
        violations=run.violations,
        truncated=run.truncated,
        duration_ms=round((time.monotonic() - started) * 1000),
    )


# ---- the command -------------------------------------------------------------------------------

_BAR_WIDTH = 30


class _ProgressBar:
    """One line on stderr, redrawn in place: the check, a bar (when the total is known) and counts."""

    def __init__(self) -> None:
        self._width = 0

    def __call__(self, check: str, done: int, total: int | None) -> None:
        if total:
            filled = min(_BAR_WIDTH, done * _BAR_WIDTH // total)
            line = f"{check:<28} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done:,}/{total:,}"
        else:
            line = f"{check:<28} {done:,} rows"
        self._draw(line)

    def clear(self) -> None:
        if self._width:
            print("\r" + " " * self._width + "\r", end="", file=sys.stderr, flush=True)
            self._width = 0

    def _draw(self, line: str) -> None:
        padding = " " * max(0, self._width - len(line))
        print(f"\r{line}{padding}", end="", file=sys.stderr, flush=True)
        self._width = len(line)


def main(database_url: str, *, as_json: bool) -> int:
    """Print the report (a progress bar on stderr when stderr is a TTY; then one line per violation and a
    summary line, or the JSON document with --json on stdout). Exit code 0 clean, 1 on any violation."""
    bar = _ProgressBar() if sys.stderr.isatty() else None
    try:
        report = run_audit(database_url, progress=bar)
    except psycopg.Error as exc:
        if bar is not None:
            bar.clear()
        print(f"paysvc audit: the database could not be read: {exc}", file=sys.stderr)
        return 2
    if bar is not None:
        bar.clear()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for violation in report.violations:
            print(violation)
        examined = sum(report.checks.values())
        if report.ok:
            verdict = "ok"
        else:
            more = " (and more: the list was cut short)" if report.truncated else ""
            verdict = f"{len(report.violations)} violation{'s' if len(report.violations) != 1 else ''}{more}"
        print(f"audit: {verdict}; {len(report.checks)} checks over {examined:,} rows in {report.duration_ms} ms")
    return 0 if report.ok else 1
