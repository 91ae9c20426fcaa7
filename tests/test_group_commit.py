"""Group commit (ledger/batching.py): concurrent payments of one process share transactions, and each
still gets exactly its own outcome: successes, declines, 404s, 400s, replays and 422s side by side."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import msgspec

from conftest import Api, RunningServer, account_row_locked, db_rows, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc import ids


async def test_concurrent_payments_share_transactions_and_keep_their_own_outcomes(
    api: Api, app_server: RunningServer
) -> None:
    _, rich = await api.funded_account(10_000)
    _, poor = await api.funded_account(50)
    eur = await api.account("EUR")
    payees = [await api.account() for _ in range(4)]
    used = await api.pay(rich["id"], payees[0]["id"], 7, key="already-used")
    assert used.status_code == 201

    requests = []
    for i in range(60):
        kind = i % 6
        if kind == 0:
            requests.append(("ok", api.pay(rich["id"], payees[i % 4]["id"], 10, key=f"gc-{i}")))
        elif kind == 1:
            requests.append(("declined", api.pay(poor["id"], payees[0]["id"], 51, key=f"gc-{i}")))
        elif kind == 2:
            requests.append(("missing", api.pay(rich["id"], "acct_" + "0" * 32, 10, key=f"gc-{i}")))
        elif kind == 3:
            requests.append(("mismatch", api.pay(rich["id"], eur["id"], 10, key=f"gc-{i}")))
        elif kind == 4:
            requests.append(("replay", api.pay(rich["id"], payees[0]["id"], 7, key="already-used")))
        else:
            requests.append(("reused", api.pay(rich["id"], payees[1]["id"], 8, key="already-used")))
    # The first batch waits on the rich account's row lock, so the other requests queue up behind it.
    async with account_row_locked(app_server.database_url, rich["id"]):
        sent = [asyncio.ensure_future(r) for _, r in requests]
        await asyncio.sleep(0.5)
    answers = await asyncio.gather(*sent, return_exceptions=True)
    by_kind: dict[str, Counter[int]] = {}
    for (kind, _), answer in zip(requests, answers, strict=True):
        assert isinstance(answer, httpx.Response), answer
        by_kind.setdefault(kind, Counter())[answer.status_code] += 1
        if kind == "replay" and answer.status_code == 201:
            assert answer.content == used.content
    assert by_kind["ok"] == {201: 10}
    assert by_kind["declined"] == {402: 10}
    assert by_kind["missing"] == {404: 10}
    assert by_kind["mismatch"] == {400: 10}
    # The same key from several requests at once: one at a time is in flight, the others hear 409 (which
    # of them gets in depends on arrival order); each that gets in replays (201) or is refused (422).
    assert set(by_kind["replay"]) <= {201, 409} and set(by_kind["reused"]) <= {422, 409}
    assert by_kind["replay"][201] + by_kind["reused"][422] >= 1
    replay = await api.pay(rich["id"], payees[0]["id"], 7, key="already-used")
    assert replay.status_code == 201 and replay.content == used.content
    assert (await api.pay(rich["id"], payees[1]["id"], 8, key="already-used")).status_code == 422

    assert await api.balance(rich["id"]) == {"posted": 10_000 - 7 - 100, "pending": 0, "available": 9_893}
    assert await api.balance(poor["id"]) == {"posted": 50, "pending": 0, "available": 50}
    # A 400 found in the ledger stores nothing: the key is free for a corrected request.
    fixed = await api.pay(rich["id"], payees[2]["id"], 10, key="gc-3")
    assert fixed.status_code == 201
    # Fewer transactions than payments: payments of one batch share the transaction's timestamp.
    tenant = ids.decode(ids.TENANT, api.tenant_id)
    ((payments, timestamps),) = db_rows(app_server.database_url,
                                        "SELECT count(*), count(DISTINCT created_at) FROM payments "
                                        "WHERE tenant_id = %s AND source_id = %s AND amount = 10",
                                        (tenant, ids.decode(ids.ACCOUNT, rich["id"])))
    assert payments == 11 and timestamps < payments
    assert_books_balance(app_server.database_url)


async def test_a_full_queue_answers_503_with_retry_after_and_loses_nothing(app_server: RunningServer) -> None:
    settings = msgspec.structs.replace(app_server.settings, group_commit_max_batch=1, engine_queue_max=1)
    async with extra_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        api = await new_tenant(http, "queue")
        _, payer = await api.funded_account(10_000)
        payee = await api.account()
        answers = await asyncio.gather(*[api.pay(payer["id"], payee["id"], 1, key=f"q-{i}") for i in range(40)])
        statuses = Counter(r.status_code for r in answers)
        assert set(statuses) <= {201, 503} and statuses[503] > 0 and statuses[201] > 0, statuses
        for r in answers:
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "service_unavailable" and int(r.headers["retry-after"]) >= 1
        # Refused requests stored nothing: retried with their keys, each is paid exactly once.
        for i, r in enumerate(answers):
            if r.status_code == 503:
                again = await api.pay(payer["id"], payee["id"], 1, key=f"q-{i}")
                while again.status_code == 503:
                    await asyncio.sleep(0.05)
                    again = await api.pay(payer["id"], payee["id"], 1, key=f"q-{i}")
                assert again.status_code == 201
        assert await api.balance(payee["id"]) == {"posted": 40, "pending": 0, "available": 40}
    assert_books_balance(app_server.database_url)


async def test_group_commit_off_still_works(app_server: RunningServer) -> None:
    settings = msgspec.structs.replace(app_server.settings, group_commit=False)
    async with extra_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        api = await new_tenant(http, "single")
        _, payer = await api.funded_account(100)
        payee = await api.account()
        answers = await asyncio.gather(*[api.pay(payer["id"], payee["id"], 10, key=f"s-{i}") for i in range(20)])
        assert Counter(r.status_code for r in answers) == {201: 10, 402: 10}
    assert_books_balance(app_server.database_url)
