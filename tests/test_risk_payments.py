"""Risk on the payment path (brief section 8): outcomes in each mode, rules deciding, blocked
payments recorded and replayed, reviews opened and closed, fraud reports, the batch endpoint,
velocity counts across payments and processes, and no extra statement in the group commit."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import msgspec
import pytest

from conftest import Api, RunningServer, db_rows, extra_server, new_tenant
from invariants import assert_books_balance
from paysvc import ids

OUTCOME_FIELDS = ["type", "risk_score", "risk_level", "reason", "rule", "model", "arm"]
# Thresholds no bootstrap score reaches in practice, so only rules decide in these tests.
RULES_ONLY = {"elevated": 100, "highest": 100}


async def configure(api: Api, rules: list[tuple[str, str]], **settings: Any) -> list[dict[str, Any]]:
    r = await api.put("/v1/risk/settings", {"mode": "enforce", "thresholds": RULES_ONLY, **settings})
    assert r.status_code == 200, r.text
    r = await api.put("/v1/risk/rules", {"rules": [{"action": a, "predicate": p} for a, p in rules]})
    assert r.status_code == 200, r.text
    created: list[dict[str, Any]] = r.json()["rules"]
    return created


async def test_default_shadow_scores_every_payment_and_shows_it_everywhere(api: Api) -> None:
    _, alice = await api.funded_account(10_000)
    bob = await api.account()
    r = await api.pay(alice["id"], bob["id"], 2_500)
    assert r.status_code == 201, r.text
    payment = r.json()
    outcome = payment["outcome"]
    assert list(outcome) == OUTCOME_FIELDS
    assert outcome["type"] == "authorized"
    assert isinstance(outcome["risk_score"], int) and 0 <= outcome["risk_score"] <= 100
    level = "highest" if outcome["risk_score"] >= 75 else "elevated" if outcome["risk_score"] >= 65 else "normal"
    assert outcome["risk_level"] == level
    assert (outcome["reason"], outcome["rule"], outcome["model"], outcome["arm"]) == (None, None, "gbdt_v1",
                                                                                       "champion")
    assert payment["review"] is None and payment["fraud_details"] == {"user_report": None}
    assert await api.payment(payment["id"]) == payment
    listed = (await api.get("/v1/payments", limit=1)).json()["data"][0]
    assert listed == payment
    event = next(e for e in await api.events() if e["data"]["object"]["id"] == payment["id"])
    assert event["type"] == "payment.succeeded" and event["data"]["object"] == payment


async def test_mode_off_assesses_nothing(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    await configure(api, [("block", ":amount: > 0")], mode="off")
    r = await api.pay(alice["id"], bob["id"], 500)
    assert r.status_code == 201, r.text
    assert r.json()["outcome"] == {"type": "authorized", "risk_score": None, "risk_level": "not_assessed",
                                   "reason": None, "rule": None, "model": None, "arm": None}
    declined = await api.pay(alice["id"], bob["id"], 5_000)
    assert declined.status_code == 402
    payment = await api.payment(declined.json()["error"]["payment"])
    assert payment["outcome"]["type"] == "declined" and payment["outcome"]["risk_level"] == "not_assessed"


async def test_shadow_records_what_enforce_would_do_but_blocks_nothing(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    rules = await configure(api, [("block", ":amount: >= 100"), ("review", ":amount: >= 50")], mode="shadow")
    r = await api.pay(alice["id"], bob["id"], 200)
    assert r.status_code == 201, r.text
    outcome = r.json()["outcome"]
    assert (outcome["type"], outcome["reason"], outcome["rule"]) == ("authorized", "rule", rules[0])
    r = await api.pay(alice["id"], bob["id"], 60)
    assert r.status_code == 201, r.text
    assert r.json()["review"] is None
    assert (r.json()["outcome"]["type"], r.json()["outcome"]["rule"]) == ("authorized", rules[1])
    assert (await api.get("/v1/reviews")).json()["data"] == []
    assert await api.balance(bob["id"]) == {"posted": 260, "pending": 0, "available": 260}


async def test_blocked_payment_is_recorded_replayed_and_evented_and_moves_nothing(
    api: Api, app_server: RunningServer
) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    rules = await configure(api, [("block", "::channel:: = 'web' and :amount: >= 300")])
    key = f"blk-{uuid.uuid4().hex}"
    r = await api.pay(alice["id"], bob["id"], 300, key=key, metadata={"channel": "web"})
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("payment_error", "payment_blocked", None)
    assert error["payment"].startswith("pay_")
    assert rules[0]["id"] not in error["message"] and "channel" not in error["message"]
    payment = await api.payment(error["payment"])
    assert (payment["status"], payment["failure_code"], payment["fee"], payment["net"]) == (
        "failed", "payment_blocked", None, None)
    assert payment["amount_captured"] == 0
    outcome = payment["outcome"]
    assert (outcome["type"], outcome["reason"], outcome["rule"]) == ("blocked", "rule", rules[0])
    assert isinstance(outcome["risk_score"], int) and outcome["model"] == "gbdt_v1"
    assert await api.balance(alice["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    assert await api.balance(bob["id"]) == {"posted": 0, "pending": 0, "available": 0}
    again = await api.pay(alice["id"], bob["id"], 300, key=key, metadata={"channel": "web"})
    assert again.status_code == 402 and again.content == r.content
    assert again.headers["idempotent-replayed"] == "true"
    failed = [e for e in await api.events() if e["type"] == "payment.failed"]
    assert [e["data"]["object"] for e in failed] == [payment]
    # Below the rule's amount, or another channel: not blocked.
    assert (await api.pay(alice["id"], bob["id"], 299, metadata={"channel": "web"})).status_code == 201
    assert (await api.pay(alice["id"], bob["id"], 300, metadata={"channel": "pos"})).status_code == 201
    assert_books_balance(app_server.database_url)


async def test_allow_beats_block_and_block_beats_highest_and_review(api: Api) -> None:
    _, alice = await api.funded_account(10_000)
    bob = await api.account()
    rules = await configure(api, [("review", ":amount: >= 10"), ("block", ":amount: >= 100"),
                                  ("allow", "::tier:: = 'vip'"), ("block", ":amount: >= 50")])
    vip = await api.pay(alice["id"], bob["id"], 500, metadata={"tier": "vip"})
    assert vip.status_code == 201, vip.text
    assert vip.json()["outcome"]["type"] == "authorized"
    assert (vip.json()["outcome"]["reason"], vip.json()["outcome"]["rule"]) == ("rule", rules[2])
    blocked = await api.pay(alice["id"], bob["id"], 500)
    assert blocked.status_code == 402
    # The first block rule in order that matches decides.
    assert (await api.payment(blocked.json()["error"]["payment"]))["outcome"]["rule"] == rules[1]
    blocked = await api.pay(alice["id"], bob["id"], 60)
    assert (await api.payment(blocked.json()["error"]["payment"]))["outcome"]["rule"] == rules[3]
    reviewed = await api.pay(alice["id"], bob["id"], 20)
    assert reviewed.status_code == 201 and reviewed.json()["outcome"]["type"] == "manual_review"
    plain = await api.pay(alice["id"], bob["id"], 5)
    assert plain.json()["outcome"]["type"] == "authorized" and plain.json()["outcome"]["reason"] is None
    # The highest risk level blocks when no allow rule matches, before review rules; a block rule
    # still names itself as the reason.
    r = await api.put("/v1/risk/settings", {"mode": "enforce", "thresholds": {"elevated": 0, "highest": 0}})
    assert r.status_code == 200
    highest = await api.pay(alice["id"], bob["id"], 20)
    assert highest.status_code == 402, highest.text
    outcome = (await api.payment(highest.json()["error"]["payment"]))["outcome"]
    assert (outcome["type"], outcome["risk_level"], outcome["reason"], outcome["rule"]) == (
        "blocked", "highest", "highest_risk_level", None)
    by_rule = await api.pay(alice["id"], bob["id"], 500)
    assert (await api.payment(by_rule.json()["error"]["payment"]))["outcome"]["reason"] == "rule"
    vip = await api.pay(alice["id"], bob["id"], 500, metadata={"tier": "vip"})
    assert vip.status_code == 201 and vip.json()["outcome"]["risk_level"] == "highest"


async def test_review_moves_money_opens_a_review_and_approval_closes_it(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    rules = await configure(api, [("review", ":amount: >= 100")])
    r = await api.pay(alice["id"], bob["id"], 150)
    assert r.status_code == 201, r.text
    payment = r.json()
    assert payment["status"] == "succeeded" and payment["outcome"]["type"] == "manual_review"
    assert payment["outcome"]["reason"] == "rule" and payment["outcome"]["rule"] == rules[0]
    assert payment["review"].startswith("prv_")
    assert await api.balance(bob["id"]) == {"posted": 150, "pending": 0, "available": 150}
    review = (await api.get(f"/v1/reviews/{payment['review']}")).json()
    assert list(review) == ["id", "object", "payment", "reason", "rule", "open", "closed_reason", "created_at"]
    assert review == {"id": payment["review"], "object": "review", "payment": payment["id"], "reason": "rule",
                      "rule": rules[0], "open": True, "closed_reason": None, "created_at": payment["created_at"]}
    assert (await api.get("/v1/reviews", open="true")).json()["data"] == [review]
    assert (await api.get("/v1/reviews", open="false")).json()["data"] == []
    approved = await api.post(f"/v1/reviews/{review['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json() == {**review, "open": False, "closed_reason": "approved"}
    again = await api.post(f"/v1/reviews/{review['id']}/approve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    assert (await api.get("/v1/reviews", open="true")).json()["data"] == []
    assert (await api.get("/v1/reviews", open="false")).json()["data"] == [approved.json()]
    events = await api.events()
    opened = [e["data"]["object"] for e in events if e["type"] == "review.opened"]
    closed = [e["data"]["object"] for e in events if e["type"] == "review.closed"]
    assert opened == [review] and closed == [approved.json()]
    mine = [e["type"] for e in events if e["data"]["object"]["id"] in (payment["id"], review["id"])]
    assert mine == ["payment.succeeded", "review.opened", "review.closed"]
    # A review rule does not get past the funds check: declined, no review.
    r = await api.pay(alice["id"], bob["id"], 5_000)
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_funds"
    declined = await api.payment(r.json()["error"]["payment"])
    assert declined["outcome"]["type"] == "declined" and declined["review"] is None
    assert len((await api.get("/v1/reviews")).json()["data"]) == 1


async def test_refund_and_cancel_close_reviews(api: Api) -> None:
    _, alice = await api.funded_account(10_000)
    bob = await api.account()
    await configure(api, [("review", ":amount: >= 100")])
    refunded = (await api.pay(alice["id"], bob["id"], 100)).json()
    assert (await api.refund(refunded["id"], 10)).status_code == 201
    fraud = (await api.pay(alice["id"], bob["id"], 200)).json()
    report = await api.post(f"/v1/payments/{fraud['id']}/fraud-report", {"user_report": "fraudulent"})
    assert report.status_code == 200 and report.json()["fraud_details"] == {"user_report": "fraudulent"}
    assert (await api.refund(fraud["id"])).status_code == 201
    held = await api.hold(alice["id"], bob["id"], 300)
    assert (await api.cancel(held["id"])).status_code == 200
    reasons = {r["payment"]: (r["open"], r["closed_reason"]) for r in (await api.get("/v1/reviews")).json()["data"]}
    assert reasons == {refunded["id"]: (False, "refunded"), fraud["id"]: (False, "refunded_as_fraud"),
                       held["id"]: (False, "canceled")}
    closed = [e for e in await api.events() if e["type"] == "review.closed"]
    assert sorted(e["data"]["object"]["closed_reason"] for e in closed) == ["canceled", "refunded",
                                                                           "refunded_as_fraud"]
    # A second refund does not close the (closed) review again.
    assert (await api.refund(refunded["id"], 10)).status_code == 201
    assert len([e for e in await api.events() if e["type"] == "review.closed"]) == 3


async def test_fraud_report_labels_the_payment_and_emits_an_event(api: Api) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    payment = (await api.pay(alice["id"], bob["id"], 10)).json()
    r = await api.post(f"/v1/payments/{payment['id']}/fraud-report", {"user_report": "safe"})
    assert r.status_code == 200, r.text
    assert r.json() == {**payment, "fraud_details": {"user_report": "safe"}}
    assert await api.payment(payment["id"]) == r.json()
    r = await api.post(f"/v1/payments/{payment['id']}/fraud-report", {"user_report": "fraudulent"})
    assert r.json()["fraud_details"] == {"user_report": "fraudulent"}
    reported = [e for e in await api.events() if e["type"] == "payment.fraud_reported"]
    assert [e["data"]["object"]["fraud_details"]["user_report"] for e in reported] == ["safe", "fraudulent"]


async def test_batch_items_get_what_the_single_endpoint_answers(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    rules = await configure(api, [("block", ":amount: = 13"), ("review", ":amount: = 17")])
    amounts = [13, 17, 5, 5_000, 13]
    items = [{"amount": a, "currency": "USD", "source": alice["id"], "destination": bob["id"],
              "idempotency_key": f"b-{uuid.uuid4().hex}"} for a in amounts]
    r = await api.post("/v1/payments/batch", {"payments": items})
    assert r.status_code == 200, r.text
    batch = r.json()["data"]
    singles = [await api.pay(alice["id"], bob["id"], a) for a in amounts]
    assert [item["status"] for item in batch] == [s.status_code for s in singles] == [402, 201, 201, 402, 402]

    async def outcome(status: int, body: dict[str, Any]) -> dict[str, Any]:
        payment = body if status == 201 else await api.payment(body["error"]["payment"])
        result: dict[str, Any] = {k: v for k, v in payment["outcome"].items() if k != "risk_score"}
        result["review"] = payment["review"] is not None
        return result

    for item, single in zip(batch, singles, strict=True):
        assert await outcome(item["status"], item["body"]) == await outcome(single.status_code, single.json())
    assert (await outcome(402, batch[0]["body"]))["rule"] == rules[0]
    assert (await outcome(201, batch[1]["body"]))["type"] == "manual_review"
    assert batch[3]["body"]["error"]["code"] == "insufficient_funds"
    # Replayed items answer the stored bodies.
    again = await api.post("/v1/payments/batch", {"payments": items})
    assert [item["body"] for item in again.json()["data"]] == [item["body"] for item in batch]


async def test_velocity_counts_payments_across_two_processes(api: Api, app_server: RunningServer) -> None:
    """payments_per_source_hourly counts every payment made from the source before this one, whichever
    process applied it; declines_per_source_daily counts declined and blocked ones."""
    _, alice = await api.funded_account(100)
    bob = await api.account()
    rules = await configure(api, [("block", ":payments_per_source_hourly: >= 4"),
                                  ("review", ":declines_per_source_daily: >= 1")])
    async with extra_server(app_server.settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
        there = Api(other, api.key, api.tenant_id)
        assert (await api.pay(alice["id"], bob["id"], 10)).status_code == 201  # 0 before it
        r = await there.pay(alice["id"], bob["id"], 1_000)  # 1 before it: declined for funds
        assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_funds"
        r = await api.pay(alice["id"], bob["id"], 10)  # 2 before it, one decline: review
        assert r.status_code == 201 and r.json()["outcome"]["type"] == "manual_review", r.text
        assert r.json()["outcome"]["rule"] == rules[1]
        r = await there.pay(alice["id"], bob["id"], 10)  # 3 before it
        assert r.status_code == 201, r.text
        r = await api.pay(alice["id"], bob["id"], 10)  # 4 before it: blocked
        assert r.status_code == 402 and r.json()["error"]["code"] == "payment_blocked", r.text
        r = await there.pay(alice["id"], bob["id"], 10)  # the blocked one counts too
        assert r.status_code == 402 and r.json()["error"]["code"] == "payment_blocked", r.text
        # Another source starts from zero; bob, as a destination, did not become a busy source.
        assert (await there.pay(bob["id"], alice["id"], 1)).status_code == 201
    assert_books_balance(app_server.database_url)


async def test_velocity_inside_one_batch_counts_the_payments_before(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    await configure(api, [("block", ":payments_per_source_hourly: >= 2")])
    items = [{"amount": 1, "currency": "USD", "source": alice["id"], "destination": bob["id"],
              "idempotency_key": f"v-{uuid.uuid4().hex}"} for _ in range(4)]
    r = await api.post("/v1/payments/batch", {"payments": items})
    assert [item["status"] for item in r.json()["data"]] == [201, 201, 402, 402]


async def test_new_destination_and_source_age(api: Api) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    await configure(api, [("review", ":is_new_destination_for_source: and :source_age_s: < 3600")])
    first = await api.pay(alice["id"], bob["id"], 10)
    assert first.json()["outcome"]["type"] == "manual_review"
    second = await api.pay(alice["id"], bob["id"], 10)
    assert second.json()["outcome"]["type"] == "authorized"


async def test_settings_reach_another_process_within_a_second(api: Api, app_server: RunningServer) -> None:
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    async with extra_server(app_server.settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
        there = Api(other, api.key, api.tenant_id)
        assert (await there.pay(alice["id"], bob["id"], 10)).status_code == 201  # its cache holds "shadow"
        await configure(api, [("block", ":amount: = 11")])  # through the first process
        await asyncio.sleep(1.05)
        r = await there.pay(alice["id"], bob["id"], 11)
        assert r.status_code == 402 and r.json()["error"]["code"] == "payment_blocked", r.text
        assert (await api.put("/v1/risk/rules", {"rules": []})).status_code == 200
        await asyncio.sleep(1.05)
        assert (await there.pay(alice["id"], bob["id"], 11)).status_code == 201
    # In the process that took the PUT, at once.
    await configure(api, [("block", ":amount: = 12")])
    assert (await api.pay(alice["id"], bob["id"], 12)).status_code == 402


async def _arms(api: Api, sources: list[dict[str, Any]], payee: dict[str, Any]) -> dict[str, tuple[str, str]]:
    arms = {}
    for source in sources:
        r = await api.pay(source["id"], payee["id"], 1)
        assert r.status_code == 201, r.text
        arms[source["id"]] = (r.json()["outcome"]["arm"], r.json()["outcome"]["model"])
    return arms


async def test_ab_arm_is_stable_across_processes_and_restarts_and_monotone(
    api: Api, app_server: RunningServer
) -> None:
    r = await api.put("/v1/risk/settings", {"challenger": {"model": "logreg_v1", "percent": 50}})
    assert r.status_code == 200
    payee = await api.account()
    sources = [(await api.funded_account(100))[1] for _ in range(16)]
    here = await _arms(api, sources, payee)
    assert {arm for arm, _ in here.values()} == {"champion", "challenger"}
    assert all(model == {"champion": "gbdt_v1", "challenger": "logreg_v1"}[arm] for arm, model in here.values())
    for _ in range(2):  # another process, then another (a restart)
        async with extra_server(app_server.settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
            assert await _arms(Api(other, api.key, api.tenant_id), sources, payee) == here
    assert await _arms(api, sources, payee) == here
    r = await api.put("/v1/risk/settings", {"challenger": {"model": "logreg_v1", "percent": 90}})
    assert r.status_code == 200
    raised = await _arms(api, sources, payee)
    assert all(raised[s] == ("challenger", "logreg_v1") for s, (arm, _) in here.items() if arm == "challenger")
    challengers = sum(arm == "challenger" for arm, _ in here.values())
    assert sum(arm == "challenger" for arm, _ in raised.values()) >= challengers


async def test_a_corrupt_or_missing_model_scores_unknown_and_rules_still_run(
    api: Api, app_server: RunningServer, tmp_path: Any
) -> None:
    from importlib import resources
    packaged = resources.files("paysvc.risk").joinpath("models").joinpath("gbdt_v1.json").read_bytes()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "gbdt_v1.json").write_bytes(packaged[: len(packaged) // 2])
    extra = tmp_path / "extra"
    extra.mkdir()
    copy = msgspec.json.decode(packaged)
    copy["id"] = "gbdt_copy"
    (extra / "gbdt_copy.json").write_bytes(msgspec.json.encode(copy))

    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    await configure(api, [("block", ":amount: = 13")])
    corrupt_settings = msgspec.structs.replace(app_server.settings, risk_models_dir=str(corrupt))
    async with extra_server(corrupt_settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
        there = Api(other, api.key, api.tenant_id)
        r = await there.pay(alice["id"], bob["id"], 10)
        assert r.status_code == 201, r.text
        outcome = r.json()["outcome"]
        assert (outcome["risk_score"], outcome["risk_level"], outcome["type"]) == (None, "unknown", "authorized")
        blocked = await there.pay(alice["id"], bob["id"], 13)
        assert blocked.status_code == 402 and blocked.json()["error"]["code"] == "payment_blocked"
        listed = {m["id"] for m in (await there.get("/v1/risk/models")).json()["data"]}
        assert "gbdt_v1" not in listed and "logreg_v1" in listed
        assert (await there.get("/v1/risk/settings")).status_code == 200

    # A champion only another process's models directory has: unknown here, nothing 5xx.
    extra_settings = msgspec.structs.replace(app_server.settings, risk_models_dir=str(extra))
    async with extra_server(extra_settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
        there = Api(other, api.key, api.tenant_id)
        r = await there.put("/v1/risk/settings", {"mode": "enforce", "thresholds": RULES_ONLY,
                                                  "champion": "gbdt_copy"})
        assert r.status_code == 200, r.text
        r = await there.pay(alice["id"], bob["id"], 10)
        assert r.json()["outcome"]["model"] == "gbdt_copy" and isinstance(r.json()["outcome"]["risk_score"], int)
    await asyncio.sleep(1.05)
    r = await api.pay(alice["id"], bob["id"], 10)
    assert r.status_code == 201, r.text
    assert (r.json()["outcome"]["risk_level"], r.json()["outcome"]["risk_score"]) == ("unknown", None)
    assert (await api.pay(alice["id"], bob["id"], 13)).status_code == 402
    assert (await api.get("/v1/risk/settings")).json()["champion"] == "gbdt_copy"


async def test_payments_made_before_risk_render_as_not_assessed(api: Api, app_server: RunningServer) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    payment = (await api.pay(alice["id"], bob["id"], 10)).json()
    db_rows(app_server.database_url, "UPDATE payments SET outcome = NULL WHERE id = %s RETURNING id",
            (ids.decode(ids.PAYMENT, payment["id"]),))
    assert (await api.payment(payment["id"]))["outcome"] == {
        "type": "authorized", "risk_score": None, "risk_level": "not_assessed", "reason": None, "rule": None,
        "model": None, "arm": None}


async def test_risk_state_is_written_with_the_batch(api: Api, app_server: RunningServer) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    assert (await api.pay(alice["id"], bob["id"], 10)).status_code == 201
    rows = db_rows(app_server.database_url, "SELECT id, risk_state FROM accounts WHERE id = ANY(%s)",
                   ([ids.decode(ids.ACCOUNT, a["id"]) for a in (alice, bob)],))
    assert all(state is not None and 0 < len(state) <= 4096 for _, state in rows)


@pytest.mark.parametrize("mode", ["off", "shadow", "enforce"])
async def test_the_batch_is_still_two_round_trips_and_three_statements(
    app_server: RunningServer, http: httpx.AsyncClient, mode: str
) -> None:
    """Risk adds no statement and no round trip to a group-commit batch, whatever it decides."""
    from datetime import timedelta

    from paysvc import _native
    from paysvc.db.pool import make_pool
    from paysvc.db.retry import RetryPolicy, Together, run_together
    from paysvc.ledger.batching import BATCH_ISOLATION, Request, batch_tx
    from paysvc.risk.cache import RiskCache
    from paysvc.risk.registry import registry
    from paysvc.tenants import Tenant

    api = await new_tenant(http, f"count-{mode}")
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    await configure(api, [("block", ":amount: = 13"), ("review", ":amount: = 17")], mode=mode)
    tenant = Tenant(id=ids.decode(ids.TENANT, api.tenant_id) or uuid.uuid4(), key_hash=b"")
    pool = make_pool(app_server.settings, app_server.database_url)
    await pool.open(wait=True)
    try:
        risk = await RiskCache(pool, registry(None)).get(tenant.id)
        loop = asyncio.get_running_loop()
        batch = []
        for amount in (13, 17, 5, 5_000, 1):
            plan = _native.prepare_payment(
                path="/v1/payments", amount=amount, currency="USD", source=alice["id"], destination=bob["id"],
                capture=True, description=None, metadata=None, expires_in_s=None, fee_rule=None,
                idempotency_key=f"c-{uuid.uuid4().hex}", require_idempotency_key=True)
            batch.append(Request.new(tenant, plan, f"c-{uuid.uuid4().hex}", "req_test", loop.create_future(), risk))
        sent: list[int] = []

        async def work(txn: Together) -> Any:
            send = txn.send

            async def counting(*statements: Any, commit: bool = False) -> Any:
                sent.append(len(statements))
                return await send(*statements, commit=commit)

            txn.send = counting  # type: ignore[method-assign]
            return await batch_tx(batch, timedelta(hours=24), txn)

        answers = await run_together(pool, work, policy=RetryPolicy(3, 2, 50), isolation=BATCH_ISOLATION)
    finally:
        await pool.close()
    assert sent == [2, 1]  # claims + locks; the one write statement (then COMMIT)
    statuses = [a.status for a in answers]  # type: ignore[union-attr]
    assert statuses == ([402, 201, 201, 402, 201] if mode == "enforce" else [201, 201, 201, 402, 201])


async def test_one_transaction_per_payment_decides_the_same(api: Api, app_server: RunningServer) -> None:
    """With PAYSVC_GROUP_COMMIT=false a payment is a batch of one: the same risk decision."""
    _, alice = await api.funded_account(1_000)
    bob = await api.account()
    rules = await configure(api, [("block", ":amount: = 13"), ("review", ":amount: = 17")])
    single = msgspec.structs.replace(app_server.settings, group_commit=False)
    async with extra_server(single) as url, httpx.AsyncClient(base_url=url, timeout=30) as other:
        there = Api(other, api.key, api.tenant_id)
        blocked = await there.pay(alice["id"], bob["id"], 13)
        assert blocked.status_code == 402 and blocked.json()["error"]["code"] == "payment_blocked", blocked.text
        assert (await api.payment(blocked.json()["error"]["payment"]))["outcome"]["rule"] == rules[0]
        reviewed = await there.pay(alice["id"], bob["id"], 17)
        assert reviewed.status_code == 201 and reviewed.json()["outcome"]["type"] == "manual_review"
        assert reviewed.json()["review"].startswith("prv_")
        assert (await there.pay(alice["id"], bob["id"], 5)).json()["outcome"]["type"] == "authorized"
    assert await api.balance(bob["id"]) == {"posted": 22, "pending": 0, "available": 22}


async def test_shadow_models_are_logged_and_never_shown(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    r = await api.put("/v1/risk/settings", {"shadow_models": ["logreg_v1"]})
    assert r.status_code == 200
    _, alice = await api.funded_account(100)
    bob = await api.account()
    with caplog.at_level(logging.INFO, logger="paysvc.risk.shadow"):
        r = await api.pay(alice["id"], bob["id"], 10)
    assert r.status_code == 201
    assert r.json()["outcome"]["model"] == "gbdt_v1" and "logreg_v1" not in r.text
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "paysvc.risk.shadow"]
    assert any(r.json()["id"] in line and "logreg_v1=" in line for line in logged), logged
