"""``paysvc audit``: a clean database passes; each check finds a violation seeded in SQL.

The test database is shared by the whole session and other tests assert that the books balance, so
every violation is seeded in the test's own scratch tenant and repaired in a ``finally`` block.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest

from conftest import Api, RunningServer
from invariants import assert_books_balance
from paysvc import audit, ids
from paysvc.audit import AuditReport, run_audit


def execute(database_url: str, query: str, params: tuple[Any, ...] = ()) -> int:
    """Run one statement in its own transaction; return the rows it touched."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).rowcount  # type: ignore[arg-type]


def one(database_url: str, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row


async def audited(database_url: str, **options: Any) -> AuditReport:
    return await asyncio.to_thread(run_audit, database_url, **options)


def reported(report: AuditReport, subject: str) -> set[str]:
    """The checks that name ``subject``."""
    return {v.check for v in report.violations if v.subject == subject}


def details(report: AuditReport, subject: str) -> list[str]:
    return [v.detail for v in report.violations if v.subject == subject]


def uid(prefix: str, api_id: str) -> uuid.UUID:
    value = ids.decode(prefix, api_id)
    assert value is not None, api_id
    return value


async def paid(api: Api, source: str, destination: str, amount: int, key: str | None = None) -> dict[str, Any]:
    r = await api.pay(source, destination, amount, key=key)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_clean_database_passes_every_check(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    # Some of everything: a fee, a capture, a refund, a cancel, an open hold, a decline.
    assert (await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 290,
                                                          "fixed": 30}]})).status_code == 200
    _funding, customer = await api.funded_account(10_000)
    merchant = await api.account()
    sale = await paid(api, customer["id"], merchant["id"], 2_000)
    assert (await api.refund(sale["id"], 500)).status_code == 201
    hold = await api.hold(customer["id"], merchant["id"], 1_000)
    assert (await api.capture(hold["id"], 600)).status_code == 200
    canceled = await api.hold(customer["id"], merchant["id"], 300)
    assert (await api.cancel(canceled["id"])).status_code == 200
    await api.hold(customer["id"], merchant["id"], 200)
    assert (await api.pay(customer["id"], merchant["id"], 1_000_000)).status_code == 402

    seen: list[tuple[str, int, int | None]] = []
    report = await audited(url, progress=lambda check, done, total: seen.append((check, done, total)))
    assert report.ok, "\n".join(map(str, report.violations))
    assert report.violations == [] and report.truncated is False and report.duration_ms >= 0
    assert list(report.checks) == list(audit.CHECKS)
    assert all(report.checks[name] > 0 for name in audit.CHECKS), report.checks
    # Progress: each check starts at 0 and ends at its rows examined; totals, when known, are reached.
    for name in audit.CHECKS:
        calls = [(done, total) for check, done, total in seen if check == name]
        assert calls[0][0] == 0 and calls[-1][0] == report.checks[name], (name, calls)
        assert calls[-1][1] is None or calls[-1][1] == calls[-1][0], (name, calls)
    assert [check for check, _, _ in seen] == sorted((c for c, _, _ in seen), key=audit.CHECKS.index)
    assert report.to_json()["ok"] is True
    assert_books_balance(url)


async def test_zero_sum_finds_an_unbalanced_entry(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    funding, _customer = await api.funded_account(1_000)
    account = uid(ids.ACCOUNT, funding["id"])
    stray_payment = ids.new_uuid()
    entry = ids.new_uuid()
    execute(url, """
        INSERT INTO entries (id, tenant_id, account_id, seq, currency, kind, amount, balance_after, payment_id,
                             refund_id, created_at)
        SELECT %s, tenant_id, id, entry_seq + 1, currency, 'payment', 7, posted + 7, %s, NULL, now()
        FROM accounts WHERE id = %s""", (entry, stray_payment, account))
    execute(url, "UPDATE accounts SET posted = posted + 7, entry_seq = entry_seq + 1 WHERE id = %s", (account,))
    try:
        report = await audited(url)
        assert reported(report, f"{api.tenant_id} USD") == {"zero_sum"}
        assert details(report, f"{api.tenant_id} USD") == ["The 3 entries of the tenant in USD sum to 7, not 0."]
        assert reported(report, ids.encode(ids.PAYMENT, stray_payment)) == {"posting_sums_to_zero"}
        assert reported(report, funding["id"]) == set()  # its balance still follows its entries
        with pytest.raises(AssertionError, match=f"zero_sum: {api.tenant_id} USD"):
            assert_books_balance(url)
    finally:
        execute(url, "DELETE FROM entries WHERE id = %s", (entry,))
        execute(url, "UPDATE accounts SET posted = posted - 7, entry_seq = entry_seq - 1 WHERE id = %s",
                (account,))
    assert (await audited(url)).ok


async def test_posting_sums_to_zero_finds_a_split_posting(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    _funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    payment = await paid(api, customer["id"], merchant["id"], 300)
    split_off = ids.new_uuid()  # the merchant's entry moves to another (refund) posting
    assert execute(url, "UPDATE entries SET refund_id = %s WHERE payment_id = %s AND account_id = %s",
                   (split_off, uid(ids.PAYMENT, payment["id"]), uid(ids.ACCOUNT, merchant["id"]))) == 1
    try:
        report = await audited(url)
        assert reported(report, payment["id"]) == {"posting_sums_to_zero"}
        assert details(report, payment["id"]) == ["The 1 entry of the payment sum to -300, not 0."]
        refund_subject = ids.encode(ids.REFUND, split_off)
        assert reported(report, refund_subject) == {"posting_sums_to_zero"}
        assert "sum to 300" in details(report, refund_subject)[0]
        assert reported(report, f"{api.tenant_id} USD") == set()
    finally:
        execute(url, "UPDATE entries SET refund_id = NULL WHERE refund_id = %s", (split_off,))
    assert (await audited(url)).ok


async def test_posted_equals_entries_finds_drifted_balances(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    await paid(api, customer["id"], merchant["id"], 300)
    funding_id, customer_id, merchant_id = (uid(ids.ACCOUNT, a["id"]) for a in (funding, customer, merchant))
    execute(url, "UPDATE accounts SET posted = posted + 5 WHERE id = %s", (funding_id,))
    execute(url, "UPDATE entries SET balance_after = balance_after + 1 WHERE account_id = %s AND seq = 1",
            (customer_id,))
    execute(url, "UPDATE accounts SET entry_seq = entry_seq + 1 WHERE id = %s", (merchant_id,))
    try:
        report = await audited(url)
        assert reported(report, funding["id"]) == {"posted_equals_entries"}
        assert details(report, funding["id"]) == ["posted is -995 but its 1 entry sum to -1000."]
        assert reported(report, customer["id"]) == {"posted_equals_entries"}
        assert details(report, customer["id"]) == [
            "balance_after of 1 entry is not the running sum of the amounts by seq (first at seq 1)."]
        assert reported(report, merchant["id"]) == {"posted_equals_entries"}
        assert details(report, merchant["id"]) == ["entry_seq is 2 but it has 1 entry with seq up to 1."]
    finally:
        execute(url, "UPDATE accounts SET posted = posted - 5 WHERE id = %s", (funding_id,))
        execute(url, "UPDATE entries SET balance_after = balance_after - 1 WHERE account_id = %s AND seq = 1",
                (customer_id,))
        execute(url, "UPDATE accounts SET entry_seq = entry_seq - 1 WHERE id = %s", (merchant_id,))
    assert (await audited(url)).ok


async def test_pending_equals_open_holds_finds_a_wrong_pending(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    _funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    await api.hold(customer["id"], merchant["id"], 100)
    customer_id = uid(ids.ACCOUNT, customer["id"])
    execute(url, "UPDATE accounts SET pending = pending - 1 WHERE id = %s", (customer_id,))
    try:
        report = await audited(url)
        assert reported(report, customer["id"]) == {"pending_equals_open_holds"}
        assert details(report, customer["id"]) == [
            "pending is 99 but the 1 open hold from it (requires_capture) total 100."]
    finally:
        execute(url, "UPDATE accounts SET pending = pending + 1 WHERE id = %s", (customer_id,))
    assert (await audited(url)).ok


async def test_no_negative_available_finds_an_overdrawn_account(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    _funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    hold = await api.hold(customer["id"], merchant["id"], 100)
    customer_id, hold_id = uid(ids.ACCOUNT, customer["id"]), uid(ids.PAYMENT, hold["id"])
    # The CHECK constraint forbids the state outright: lift it for the length of the test (the hold and
    # the pending stay consistent with each other, so only the overdraft itself is wrong).
    execute(url, "ALTER TABLE accounts DROP CONSTRAINT accounts_available_not_negative")
    try:
        execute(url, "UPDATE payments SET amount = 5000 WHERE id = %s", (hold_id,))
        execute(url, "UPDATE accounts SET pending = 5000 WHERE id = %s", (customer_id,))
        report = await audited(url)
        assert reported(report, customer["id"]) == {"no_negative_available"}
        assert details(report, customer["id"]) == [
            "available is -4000 (posted 1000 - pending 5000) but the account does not allow a negative balance."]
        assert reported(report, hold["id"]) == set()
    finally:
        try:
            execute(url, "UPDATE payments SET amount = 100 WHERE id = %s", (hold_id,))
            execute(url, "UPDATE accounts SET pending = 100 WHERE id = %s", (customer_id,))
        finally:
            execute(url, "ALTER TABLE accounts ADD CONSTRAINT accounts_available_not_negative "
                         "CHECK (allow_negative OR posted - pending >= 0)")
    assert (await audited(url)).ok


async def test_refunds_within_captured_finds_payments_that_disagree(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    assert (await api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 0,
                                                          "fixed": 10}]})).status_code == 200
    _funding, customer = await api.funded_account(2_000)
    merchant = await api.account()
    refunded = await paid(api, customer["id"], merchant["id"], 300)
    assert (await api.refund(refunded["id"], 100)).status_code == 201
    hold = await api.hold(customer["id"], merchant["id"], 500)
    assert (await api.capture(hold["id"], 300)).status_code == 200
    with_fee = await paid(api, customer["id"], merchant["id"], 200)
    assert with_fee["fee"] == 10
    refunded_id, captured_id, fee_id = (uid(ids.PAYMENT, p["id"]) for p in (refunded, hold, with_fee))
    execute(url, "UPDATE payments SET amount_refunded = 50 WHERE id = %s", (refunded_id,))
    execute(url, "UPDATE payments SET amount_captured = 400, net = net + 100 WHERE id = %s", (captured_id,))
    execute(url, "UPDATE payments SET fee = 11, net = net - 1 WHERE id = %s", (fee_id,))
    try:
        report = await audited(url)
        assert reported(report, refunded["id"]) == {"refunds_within_captured"}
        assert details(report, refunded["id"]) == [
            "amount_refunded is 50 but its 1 refund total 100.",
            "The source's refund entries sum to 100, not amount_refunded 50."]
        assert reported(report, hold["id"]) == {"refunds_within_captured"}
        assert details(report, hold["id"]) == [
            "The source's payment entries sum to -300, not -400 (-amount_captured).",
            "The destination's payment entries sum to 290, not the net 390 (amount_captured 400 - fee 10)."]
        assert reported(report, with_fee["id"]) == {"refunds_within_captured"}
        assert details(report, with_fee["id"]) == [
            "Its 1 entry of kind fee sum to 10, not the fee 11.",
            "The destination's payment entries sum to 190, not the net 189 (amount_captured 200 - fee 11)."]
    finally:
        execute(url, "UPDATE payments SET amount_refunded = 100 WHERE id = %s", (refunded_id,))
        execute(url, "UPDATE payments SET amount_captured = 300, net = net - 100 WHERE id = %s", (captured_id,))
        execute(url, "UPDATE payments SET fee = 10, net = net + 1 WHERE id = %s", (fee_id,))
    assert (await audited(url)).ok


async def test_payment_fields_match_status_finds_contradictions(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    _funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    succeeded = await paid(api, customer["id"], merchant["id"], 300)
    canceled = await api.hold(customer["id"], merchant["id"], 100)
    assert (await api.cancel(canceled["id"], "requested_by_customer")).status_code == 200
    succeeded_id, canceled_id = uid(ids.PAYMENT, succeeded["id"]), uid(ids.PAYMENT, canceled["id"])
    (reason,) = one(url, "SELECT cancellation_reason FROM payments WHERE id = %s", (canceled_id,))
    execute(url, "UPDATE payments SET failure_code = 'card_declined' WHERE id = %s", (succeeded_id,))
    execute(url, "UPDATE payments SET cancellation_reason = NULL WHERE id = %s", (canceled_id,))
    try:
        report = await audited(url)
        assert reported(report, succeeded["id"]) == {"payment_fields_match_status"}
        assert details(report, succeeded["id"]) == ["The succeeded payment has failure_code 'card_declined'."]
        assert reported(report, canceled["id"]) == {"payment_fields_match_status"}
        assert details(report, canceled["id"]) == ["The canceled payment has no cancellation_reason."]
    finally:
        execute(url, "UPDATE payments SET failure_code = NULL WHERE id = %s", (succeeded_id,))
        execute(url, "UPDATE payments SET cancellation_reason = %s WHERE id = %s", (reason, canceled_id))
    assert (await audited(url)).ok


async def test_idempotency_records_finds_double_creations_and_dangling_records(
    api: Api, other_api: Api, app_server: RunningServer
) -> None:
    url = app_server.database_url
    _funding, customer = await api.funded_account(1_000)
    merchant = await api.account()
    key = f"audit-{uuid.uuid4().hex}"
    payment = await paid(api, customer["id"], merchant["id"], 300, key=key)
    _other_funding, other_customer = await other_api.funded_account(100)
    others = await paid(other_api, other_customer["id"], (await other_api.account())["id"], 10)
    tenant = uid(ids.TENANT, api.tenant_id)
    missing = ids.new_uuid()
    copy_key, missing_key, foreign_key = f"{key}-copy", f"{key}-missing", f"{key}-foreign"
    # A replay that stored the same created payment under a second key; a record naming a payment that
    # does not exist; a record naming another tenant's payment.
    assert execute(url, """
        INSERT INTO idempotency_keys (tenant_id, idem_key, fingerprint, status_code, response_body, payment_id,
                                      created_at)
        SELECT tenant_id, %s, fingerprint, status_code, response_body, payment_id, created_at
        FROM idempotency_keys WHERE tenant_id = %s AND idem_key = %s AND status_code = 201""",
                   (copy_key, tenant, key)) == 1
    execute(url, """
        INSERT INTO idempotency_keys (tenant_id, idem_key, fingerprint, status_code, response_body, payment_id)
        VALUES (%s, %s, 'fp', 200, %s, %s), (%s, %s, 'fp', 200, %s, %s)""",
            (tenant, missing_key, b"{}", missing, tenant, foreign_key, b"{}", uid(ids.PAYMENT, others["id"])))
    try:
        report = await audited(url)
        assert reported(report, payment["id"]) == {"idempotency_records"}
        assert details(report, payment["id"]) == [
            f"2 idempotency records stored a 201 creating this payment (keys {key!r}, {copy_key!r}): "
            "a replay created it again."]
        missing_subject = ids.encode(ids.PAYMENT, missing)
        assert reported(report, missing_subject) == {"idempotency_records"}
        assert details(report, missing_subject) == [
            f"It is named by the 200 idempotency record {missing_key!r} of tenant {api.tenant_id} "
            "but does not exist."]
        assert reported(report, others["id"]) == {"idempotency_records"}
        assert details(report, others["id"]) == [
            f"It belongs to tenant {other_api.tenant_id} but is named by the 200 idempotency record "
            f"{foreign_key!r} of tenant {api.tenant_id}."]
    finally:
        execute(url, "DELETE FROM idempotency_keys WHERE tenant_id = %s AND idem_key = ANY(%s)",
                (tenant, [copy_key, missing_key, foreign_key]))
    assert (await audited(url)).ok


async def test_max_violations_truncates_the_list(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    accounts = [uid(ids.ACCOUNT, (await api.account(allow_negative=True))["id"]) for _ in range(3)]
    execute(url, "UPDATE accounts SET posted = posted + 1 WHERE id = ANY(%s)", (accounts,))
    try:
        report = await audited(url, max_violations=2)
        assert len(report.violations) == 2 and report.truncated and not report.ok
        assert report.to_json()["truncated"] is True
        assert (await audited(url, max_violations=0)).violations == []
    finally:
        execute(url, "UPDATE accounts SET posted = posted - 1 WHERE id = ANY(%s)", (accounts,))


async def test_main_prints_the_report_and_exits_1(
    api: Api, app_server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = app_server.database_url
    account = await api.account(allow_negative=True)
    account_id = uid(ids.ACCOUNT, account["id"])
    assert audit.main(url, as_json=True) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["ok"] is True and clean["violations"] == []
    execute(url, "UPDATE accounts SET posted = posted + 3 WHERE id = %s", (account_id,))
    try:
        assert audit.main(url, as_json=True) == 1
        out, err = capsys.readouterr()
        assert err == ""  # no progress bar: stderr is not a terminal here
        document = json.loads(out)
        assert set(document) == {"ok", "checks", "violations", "truncated", "duration_ms"}
        assert document["ok"] is False and document["truncated"] is False
        assert isinstance(document["duration_ms"], int)
        assert list(document["checks"]) == list(audit.CHECKS)
        assert all(isinstance(n, int) for n in document["checks"].values())
        assert {"check": "posted_equals_entries", "subject": account["id"],
                "detail": "posted is 3 but its 0 entries sum to 0."} in document["violations"]
        assert all(set(v) == {"check", "subject", "detail"} for v in document["violations"])

        assert audit.main(url, as_json=False) == 1
        lines = capsys.readouterr().out.splitlines()
        assert f"posted_equals_entries: {account['id']}: posted is 3 but its 0 entries sum to 0." in lines
        assert lines[-1].startswith("audit: 1 violation; 8 checks over ")
    finally:
        execute(url, "UPDATE accounts SET posted = posted - 3 WHERE id = %s", (account_id,))


async def test_the_cli_audits_end_to_end(api: Api, app_server: RunningServer) -> None:
    url = app_server.database_url
    account = await api.account(allow_negative=True)
    account_id = uid(ids.ACCOUNT, account["id"])
    env = {**os.environ, "PAYSVC_DATABASE_URL": url}
    execute(url, "UPDATE accounts SET posted = posted + 3 WHERE id = %s", (account_id,))
    try:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "paysvc.cli", "audit", "--json"],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        execute(url, "UPDATE accounts SET posted = posted - 3 WHERE id = %s", (account_id,))
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is False
    assert [(v["check"], v["subject"]) for v in document["violations"]] == [
        ("posted_equals_entries", account["id"])]
