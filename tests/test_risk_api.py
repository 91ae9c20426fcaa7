"""Risk routes of brief section 8: settings, rules, models, reviews (list/get/approve errors), and
their errors, over real HTTP against the real database."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import Api

DEFAULT_SETTINGS = {"mode": "shadow", "thresholds": {"elevated": 65, "highest": 75}, "champion": "gbdt_v1",
                    "challenger": None, "shadow_models": []}
RULE_ID = re.compile(r"^rule_[0-9a-f]{32}$")


def assert_error(r: Any, status: int, code: str, param: str | None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param), r.text
    assert error["request_id"] == r.headers["x-request-id"]


async def test_settings_default_then_replaced_then_read_back(api: Api) -> None:
    r = await api.get("/v1/risk/settings")
    assert r.status_code == 200 and r.json() == DEFAULT_SETTINGS
    wanted = {"mode": "enforce", "thresholds": {"elevated": 40, "highest": 90}, "champion": "logreg_v1",
              "challenger": {"model": "gbdt_v1", "percent": 25}, "shadow_models": ["gbdt_v1", "logreg_v1"]}
    r = await api.put("/v1/risk/settings", wanted)
    assert r.status_code == 200 and r.json() == wanted
    assert list(r.json()) == ["mode", "thresholds", "champion", "challenger", "shadow_models"]
    assert (await api.get("/v1/risk/settings")).json() == wanted
    # PUT replaces: what is left out takes its default.
    r = await api.put("/v1/risk/settings", {"mode": "off"})
    assert r.status_code == 200 and r.json() == {**DEFAULT_SETTINGS, "mode": "off"}
    assert (await api.get("/v1/risk/settings")).json() == {**DEFAULT_SETTINGS, "mode": "off"}
    # Equal thresholds and the bounds are fine.
    r = await api.put("/v1/risk/settings", {"thresholds": {"elevated": 0, "highest": 0}})
    assert r.status_code == 200 and r.json()["thresholds"] == {"elevated": 0, "highest": 0}
    r = await api.put("/v1/risk/settings", {"thresholds": {"elevated": 100, "highest": 100}})
    assert r.status_code == 200


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"mode": "strict"}, "parameter_invalid", "mode"),
    ({"mode": 1}, "parameter_invalid", "mode"),
    ({"thresholds": {"elevated": 80, "highest": 70}}, "parameter_invalid", "thresholds"),
    ({"thresholds": {"elevated": -1, "highest": 70}}, "parameter_invalid", "thresholds"),
    ({"thresholds": {"elevated": 10, "highest": 101}}, "parameter_invalid", "thresholds"),
    ({"thresholds": {"elevated": 10.0, "highest": 20}}, "parameter_invalid", "thresholds.elevated"),
    ({"thresholds": {"elevated": 10}}, "parameter_missing", "thresholds.highest"),
    ({"champion": "gbdt_v999"}, "parameter_invalid", "champion"),
    ({"challenger": {"model": "nope", "percent": 10}}, "parameter_invalid", "challenger.model"),
    ({"challenger": {"model": "logreg_v1", "percent": 101}}, "parameter_invalid", "challenger.percent"),
    ({"challenger": {"model": "logreg_v1", "percent": -1}}, "parameter_invalid", "challenger.percent"),
    ({"challenger": {"model": "logreg_v1"}}, "parameter_missing", "challenger.percent"),
    ({"shadow_models": ["logreg_v1", "nope"]}, "parameter_invalid", "shadow_models[1]"),
    ({"colour": "red"}, "parameter_unknown", "colour"),
])
async def test_bad_settings_are_400_and_change_nothing(api: Api, body: dict[str, Any], code: str, param: str) -> None:
    r = await api.put("/v1/risk/settings", body)
    assert_error(r, 400, code, param)
    assert (await api.get("/v1/risk/settings")).json() == DEFAULT_SETTINGS


async def test_rules_get_ids_in_order_and_are_replaced(api: Api) -> None:
    assert (await api.get("/v1/risk/rules")).json() == {"rules": []}
    sent = [
        {"action": "allow", "predicate": "::tier:: = 'vip'"},
        {"action": "block", "predicate": ":amount: >= 100000 and :currency: = 'USD'"},
        {"action": "review", "predicate": ":payments_per_source_hourly: > 5 or not :capture:"},
        {"action": "block", "predicate": ":risk_level: in ('highest', 'elevated')"},
    ]
    r = await api.put("/v1/risk/rules", {"rules": sent})
    assert r.status_code == 200, r.text
    rules = r.json()["rules"]
    assert [{"action": x["action"], "predicate": x["predicate"]} for x in rules] == sent
    assert all(RULE_ID.match(x["id"]) and list(x) == ["id", "action", "predicate"] for x in rules)
    assert len({x["id"] for x in rules}) == 4
    assert (await api.get("/v1/risk/rules")).json() == {"rules": rules}
    r = await api.put("/v1/risk/rules", {"rules": sent[1:2]})
    assert r.status_code == 200 and len(r.json()["rules"]) == 1
    assert r.json()["rules"][0]["id"] != rules[1]["id"]  # a replaced rule is a new rule
    assert (await api.get("/v1/risk/rules")).json() == r.json()
    r = await api.put("/v1/risk/rules", {"rules": []})
    assert r.status_code == 200 and r.json() == {"rules": []}
    assert (await api.get("/v1/risk/rules")).json() == {"rules": []}


@pytest.mark.parametrize(("rules", "code", "param"), [
    ([{"action": "allow", "predicate": ":amount: > 1"}, {"action": "block", "predicate": ":amount: >"}],
     "parameter_invalid", "rules[1].predicate"),
    ([{"action": "block", "predicate": ":no_such_attribute: = 1"}], "parameter_invalid", "rules[0].predicate"),
    ([{"action": "block", "predicate": ":amount: > 1 and"}], "parameter_invalid", "rules[0].predicate"),
    ([{"action": "block", "predicate": ""}], "parameter_invalid", "rules[0].predicate"),
    ([{"action": "deny", "predicate": ":amount: > 1"}], "parameter_invalid", "rules[0].action"),
    ([{"action": "block"}], "parameter_missing", "rules[0].predicate"),
    ([{"action": "block", "predicate": 5}], "parameter_invalid", "rules[0].predicate"),
    ([{"action": "block", "predicate": ":amount: > 1"}] * 101, "parameter_invalid", "rules"),
])
async def test_bad_rules_are_400_and_change_nothing(
    api: Api, rules: list[dict[str, Any]], code: str, param: str
) -> None:
    before = await api.put("/v1/risk/rules", {"rules": [{"action": "review", "predicate": ":amount: > 5"}]})
    assert before.status_code == 200
    r = await api.put("/v1/risk/rules", {"rules": rules})
    assert_error(r, 400, code, param)
    assert (await api.get("/v1/risk/rules")).json() == before.json()


async def test_a_hundred_rules_are_accepted(api: Api) -> None:
    rules = [{"action": "block", "predicate": f":amount: = {i}"} for i in range(100)]
    r = await api.put("/v1/risk/rules", {"rules": rules})
    assert r.status_code == 200 and len(r.json()["rules"]) == 100


async def test_models_are_listed_like_every_list(api: Api) -> None:
    r = await api.get("/v1/risk/models")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["has_more"] is False
    by_id = {m["id"]: m for m in body["data"]}
    assert {"gbdt_v1", "logreg_v1"} <= set(by_id)
    assert by_id["gbdt_v1"]["kind"] == "gbdt" and by_id["logreg_v1"]["kind"] == "logreg"
    for model in body["data"]:
        assert list(model) == ["id", "object", "kind", "features", "metrics", "created_at"]
        assert model["object"] == "risk_model"
        assert model["features"] and all(isinstance(f, str) for f in model["features"])
        assert isinstance(model["metrics"], dict)
    assert by_id["gbdt_v1"]["features"] == by_id["logreg_v1"]["features"]


async def test_reviews_list_starts_empty_and_unknown_ids_are_404(api: Api) -> None:
    r = await api.get("/v1/reviews")
    assert r.status_code == 200 and r.json() == {"object": "list", "data": [], "has_more": False}
    missing = "prv_" + "0" * 32
    assert_error(await api.get(f"/v1/reviews/{missing}"), 404, "resource_missing", "id")
    assert_error(await api.get("/v1/reviews/nonsense"), 404, "resource_missing", "id")
    assert_error(await api.post(f"/v1/reviews/{missing}/approve"), 404, "resource_missing", "id")
    assert_error(await api.get("/v1/reviews", starting_after=missing), 400, "invalid_cursor", "starting_after")
    assert_error(await api.get("/v1/reviews", limit=0), 400, "parameter_invalid", "limit")
    assert (await api.get("/v1/reviews", open="maybe")).status_code == 400


async def test_fraud_report_errors(api: Api) -> None:
    _, alice = await api.funded_account(100)
    bob = await api.account()
    payment = (await api.pay(alice["id"], bob["id"], 10)).json()
    path = f"/v1/payments/{payment['id']}/fraud-report"
    assert_error(await api.post(path, {"user_report": "maybe"}), 400, "parameter_invalid", "user_report")
    assert_error(await api.post(path, {}), 400, "parameter_missing", "user_report")
    assert_error(await api.post("/v1/payments/pay_" + "0" * 32 + "/fraud-report", {"user_report": "safe"}),
                 404, "resource_missing", "id")
    assert (await api.payment(payment["id"]))["fraud_details"] == {"user_report": None}


async def test_routes_need_a_key(api: Api) -> None:
    for method, path in (("GET", "/v1/risk/settings"), ("PUT", "/v1/risk/settings"), ("GET", "/v1/risk/rules"),
                         ("PUT", "/v1/risk/rules"), ("GET", "/v1/risk/models"), ("GET", "/v1/reviews")):
        r = await api.http.request(method, path, json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_missing", (method, path)


def test_the_models_directory_setting_must_exist(tmp_path: Any) -> None:
    from paysvc.config import Settings, SettingsError

    assert Settings.from_env({"PAYSVC_RISK_MODELS_DIR": str(tmp_path)}).risk_models_dir == str(tmp_path)
    with pytest.raises(SettingsError, match="PAYSVC_RISK_MODELS_DIR"):
        Settings.from_env({"PAYSVC_RISK_MODELS_DIR": str(tmp_path / "missing")})
