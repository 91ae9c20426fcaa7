"""The Python surface of the Rust risk core (``paysvc._native`` risk functions): model loading,
rule checks, the §8 decision modes, A/B arms, and the per-account state."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from paysvc import _native
from paysvc._native import CoreError, RiskModel, RiskPolicy
from paysvc.bench import core as bench_core
from paysvc.bench import risk_targets

T0 = 1_800_000_000  # a minute boundary
TENANT = uuid.UUID(int=7).bytes
SRC = uuid.UUID(int=1).bytes
DST = uuid.UUID(int=2).bytes
NAMES = _native.risk_feature_names()


def shipped(name: str) -> bytes:
    return files("paysvc.risk").joinpath("models").joinpath(f"{name}.json").read_bytes()


def stump(model_id: str, feature: str, threshold: float, low: float, high: float) -> RiskModel:
    """A one-split GBDT: margin ``low`` when ``x[feature] <= threshold`` else ``high``."""
    doc = {
        "format": "paysvc-risk-model/1", "id": model_id, "kind": "gbdt", "features": NAMES,
        "created_at": "2026-12-04T00:00:00Z", "metrics": {"average_precision": 0.5}, "base_score": 0.0,
        "trees": [{"feature": [NAMES.index(feature), -1, -1], "threshold": [threshold, 0, 0],
                   "left": [1, -1, -1], "right": [2, -1, -1], "value": [0, low, high],
                   "default_left": [True, False, False]}],
    }
    return RiskModel.load(json.dumps(doc).encode())


# Scores 100 (highest) for captured payments, 0 otherwise.
BY_CAPTURE = stump("by_capture", "capture", 0.5, -20.0, 20.0)


def policy(mode: str = "enforce", rules: list[tuple[str, str]] | None = None, **kw: Any) -> RiskPolicy:
    args: dict[str, Any] = {
        "tenant_id": TENANT, "mode": mode, "elevated": 65, "highest": 75,
        "rules": [(f"rule_{i}", a, p) for i, (a, p) in enumerate(rules or [])],
        "champion": BY_CAPTURE, "challenger": None, "challenger_percent": 0, "challenger_id": None,
        "shadows": [],
    }
    args.update(kw)
    return RiskPolicy(**args)


def assess(p: RiskPolicy, **kw: Any) -> _native.RiskAssessment:
    args: dict[str, Any] = {
        "amount_minor": 1000, "currency": "USD", "capture": False, "source": "acct_s", "destination": "acct_d",
        "source_id": SRC, "destination_id": DST, "metadata": {}, "source_state": None,
        "source_created_at_s": T0 - 86_400, "destination_state": None, "destination_created_at_s": T0 - 86_400,
        "now_s": T0,
    }
    args.update(kw)
    return p.assess(**args)


def test_shipped_models_load() -> None:
    gbdt = RiskModel.load(shipped("gbdt_v1"))
    logreg = RiskModel.load(shipped("logreg_v1"))
    assert (gbdt.id, gbdt.kind, logreg.id, logreg.kind) == ("gbdt_v1", "gbdt", "logreg_v1", "logreg")
    assert gbdt.features == NAMES == logreg.features
    assert isinstance(json.loads(gbdt.metrics_json), dict)
    x = [0.0] * len(NAMES)
    for m in (gbdt, logreg):
        p = m.probability(x)
        assert 0.0 < p < 1.0
        assert m.score(x) == round(100 * p)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d.update(format="x"), "'format'"),
    (lambda d: d.update(kind="svm"), "'kind'"),
    (lambda d: d.update(features=d["features"][:-1]), "'features'"),
    (lambda d: d["trees"][0].update(left=[0, -1, -1]), "left[0]"),
    (lambda d: d["trees"][0].update(value=[0, 1]), "'feature' has 3"),
    (lambda d: d["trees"][0].update(feature=[99, -1, -1]), "feature[0] = 99"),
    (lambda d: d.update(base_score=None), "'base_score'"),
    (lambda d: d.update(trees=[]), "'trees'"),
])
def test_model_load_errors(mutate: Any, needle: str) -> None:
    doc = json.loads(shipped("gbdt_v1"))
    doc["trees"] = [{"feature": [0, -1, -1], "threshold": [1.0, 0, 0], "left": [1, -1, -1],
                     "right": [2, -1, -1], "value": [0, 0.1, 0.2], "default_left": [True, False, False]}]
    RiskModel.load(json.dumps(doc).encode())
    mutate(doc)
    with pytest.raises(CoreError) as e:
        RiskModel.load(json.dumps(doc).encode())
    assert e.value.code == "model_invalid"
    assert needle in e.value.message
    with pytest.raises(CoreError, match="not valid JSON"):
        RiskModel.load(b"{")


def test_model_rejects_wrong_feature_count() -> None:
    with pytest.raises(CoreError) as e:
        BY_CAPTURE.score([0.0])
    assert e.value.param == "features"


def test_rules_check_names_index_and_column() -> None:
    _native.risk_rules_check([":amount: > 100", ":risk_level: = 'highest' and not :capture:"])
    with pytest.raises(CoreError) as e:
        _native.risk_rules_check([":amount: > 100", ":amount: > 1 and :foo: = 1"])
    assert (e.value.code, e.value.param) == ("parameter_invalid", "rules[1].predicate")
    assert "unknown attribute :foo: at column 18" in e.value.message
    for bad in [":currency: = 5", ":amount: >", "(:amount: = 1", ":currency: > 'USD'", "", "amount = 1"]:
        with pytest.raises(CoreError) as e:
            _native.risk_rules_check([bad])
        assert e.value.param == "rules[0].predicate", bad


def test_policy_rejects_bad_rules_and_config() -> None:
    with pytest.raises(CoreError) as e:
        policy(rules=[("block", ":amount: > 1"), ("block", ":nope: > 1")])
    assert e.value.param == "rules[1].predicate"
    with pytest.raises(CoreError) as e:
        policy(rules=[("deny", ":amount: > 1")])
    assert e.value.param == "rules[0].action"
    with pytest.raises(CoreError):
        policy(mode="on")
    with pytest.raises(CoreError):
        policy(elevated=80, highest=70)
    with pytest.raises(CoreError):
        policy(challenger_percent=101)


def test_mode_off_assesses_nothing() -> None:
    a = assess(policy("off", [("block", ":amount: > 0")]), capture=True)
    assert (a.decision, a.risk_score, a.risk_level, a.reason, a.rule_index, a.model, a.arm) == (
        "authorize", None, "not_assessed", None, None, None, None)
    assert a.features == [] and a.shadow_scores == []


def test_enforce_order_allow_block_highest_review() -> None:
    rules = [("review", ":amount: > 1"), ("block", ":amount: >= 5000"), ("allow", ":amount: = 7"),
             ("block", "::tag:: = 'bad'")]
    p = policy("enforce", rules)
    a = assess(p, amount_minor=7, capture=True)  # allow beats the highest level
    assert (a.decision, a.reason, a.rule_index, a.risk_level) == ("authorize", "rule", 2, "highest")
    a = assess(p, amount_minor=9000)
    assert (a.decision, a.reason, a.rule_index) == ("block", "rule", 1)
    a = assess(p, amount_minor=100, metadata={"tag": "bad"})
    assert (a.decision, a.rule_index) == ("block", 3)
    a = assess(p, amount_minor=100, capture=True)  # highest beats review
    assert (a.decision, a.reason, a.rule_index, a.risk_score) == ("block", "highest_risk_level", None, 100)
    a = assess(p, amount_minor=100)
    assert (a.decision, a.reason, a.rule_index, a.risk_level) == ("review", "rule", 0, "normal")
    a = assess(p, amount_minor=1)
    assert (a.decision, a.reason, a.rule_index, a.model, a.arm) == ("authorize", None, None, "by_capture", "champion")
    assert len(a.features) == len(NAMES)


def test_shadow_records_but_never_acts() -> None:
    p = policy("shadow", [("block", ":amount: >= 5000")])
    a = assess(p, amount_minor=9000)
    assert (a.decision, a.reason, a.rule_index) == ("authorize", "rule", 0)
    a = assess(p, capture=True)
    assert (a.decision, a.reason, a.risk_level) == ("authorize", "highest_risk_level", "highest")


def test_missing_champion_is_unknown_and_rules_still_run() -> None:
    p = policy("enforce", [("block", ":risk_score: >= 0"), ("review", ":risk_level: = 'unknown'")], champion=None)
    a = assess(p, capture=True)
    assert (a.risk_score, a.risk_level, a.model, a.arm) == (None, "unknown", None, "champion")
    assert (a.decision, a.rule_index) == ("review", 1)


def test_thresholds_set_levels() -> None:
    half = stump("half", "capture", 0.5, 0.0, 0.0)  # score 50
    for elevated, highest, level in [(65, 75, "normal"), (50, 75, "elevated"), (40, 50, "highest")]:
        a = assess(policy("shadow", champion=half, elevated=elevated, highest=highest))
        assert (a.risk_score, a.risk_level) == (50, level)


def test_shadow_models_are_scored_not_used() -> None:
    low = stump("low", "capture", 0.5, -20.0, -20.0)
    a = assess(policy("enforce", champion=low, shadows=[BY_CAPTURE]), capture=True)
    assert a.shadow_scores == [("by_capture", 100)]
    assert (a.decision, a.risk_score, a.model) == ("authorize", 0, "low")


def arms(percent: int, n: int = 400, challenger_id: str = "ch") -> list[bool]:
    challenger = stump("ch", "capture", 0.5, -20.0, -20.0)
    p = policy("shadow", challenger=challenger, challenger_percent=percent, challenger_id=challenger_id)
    return [assess(p, source_id=uuid.UUID(int=1000 + i).bytes).arm == "challenger" for i in range(n)]


def test_ab_arm_is_stable_and_monotone_in_percent() -> None:
    previous = [False] * 400
    for percent in (0, 5, 25, 50, 75, 100):
        now = arms(percent)
        assert now == arms(percent)  # a pure function
        assert all(n or not p for p, n in zip(previous, now, strict=True))  # only champion → challenger
        assert abs(sum(now) - 4 * percent) <= 40
        previous = now
    # Another challenger reshuffles sources.
    assert arms(50) != arms(50, challenger_id="other")


def test_challenger_that_failed_to_load_is_unknown() -> None:
    p = policy("enforce", challenger=None, challenger_percent=100, challenger_id="gone_v9")
    a = assess(p, capture=True)
    assert (a.arm, a.risk_level, a.risk_score, a.model) == ("challenger", "unknown", None, None)
    assert a.decision == "authorize"


def record(state: bytes | None, t: int, *, as_source: bool = True, cp: bytes = DST, amount: int = 100,
           outcome: str = "authorized") -> bytes:
    return _native.risk_state_record(state, t, as_source=as_source, counterparty_id=cp, amount_minor=amount,
                                     outcome=outcome)


def test_state_round_trip_and_window_expiry() -> None:
    s = None
    s = record(s, T0, amount=100)
    s = record(s, T0 + 30, amount=200, outcome="declined")
    s = record(s, T0 + 120, amount=300, outcome="blocked")
    summary = _native._risk_state_summary(s, T0 + 120)
    assert summary["payments_hour"] == 3 and summary["declines_day"] == 2 and summary["amount_day"] == 600
    assert _native._risk_state_summary(s, T0 + 3600)["payments_hour"] == 1
    assert _native._risk_state_summary(s, T0 + 3600)["payments_day"] == 3
    assert _native._risk_state_summary(s, T0 + 86_400 + 180)["payments_day"] == 0
    # The rule attributes see the same counts (this payment not counted).
    p = policy("enforce", [("block", ":payments_per_source_hourly: >= 3 and :declines_per_source_daily: = 2 "
                                     "and :amount_per_source_daily: = 600")])
    assert assess(p, source_state=s, now_s=T0 + 180).decision == "block"
    assert assess(p, source_state=s, now_s=T0 + 3600).decision == "authorize"


def test_new_destination_needs_an_authorized_payment() -> None:
    p = policy("enforce", [("block", ":is_new_destination_for_source:")])
    assert assess(p).decision == "block"
    s = record(None, T0, outcome="declined")
    assert assess(p, source_state=s, now_s=T0 + 60).decision == "block"
    s = record(s, T0 + 1)
    assert assess(p, source_state=s, now_s=T0 + 60).decision == "authorize"
    assert assess(p, source_state=s, now_s=T0 + 60, destination_id=uuid.UUID(int=3).bytes).decision == "block"


def test_destination_side_counts_distinct_sources() -> None:
    s = None
    for i in range(8):
        s = record(s, T0 + i, as_source=False, cp=uuid.UUID(int=100 + i).bytes)
    s = record(s, T0 + 9, as_source=False, cp=uuid.UUID(int=100).bytes)
    rule = ":sources_per_destination_hourly: >= 8 and :payments_per_destination_hourly: = 9"
    p = policy("enforce", [("block", rule)])
    assert assess(p, destination_state=s, now_s=T0 + 60).decision == "block"
    f = dict(zip(NAMES, assess(p, destination_state=s, now_s=T0 + 60).features, strict=True))
    assert f["destination_sources_hour"] == 8 and f["destination_payments_hour"] == 9


def test_garbage_state_is_empty() -> None:
    for garbage in (b"\x00", b"\xff" * 50, b"\x01\x00\xff"):
        assert _native._risk_state_summary(garbage, T0)["corrupt"] is True
        s = record(garbage, T0)
        assert _native._risk_state_summary(s, T0)["out_total"] == 1
    assert _native.risk_features(1, "USD", True, SRC, DST, b"junk", T0, None, T0, T0, {}) == \
        _native.risk_features(1, "USD", True, SRC, DST, None, T0, None, T0, T0, {})
    with pytest.raises(CoreError) as e:
        record(None, T0, outcome="won")
    assert e.value.param == "outcome"


def test_features_match_inside_and_outside_assess() -> None:
    s = record(record(None, T0 - 600, amount=50), T0 - 60, amount=70)
    d = record(None, T0 - 300, as_source=False, cp=uuid.UUID(int=9).bytes)
    direct = _native.risk_features(5000, "USD", True, SRC, DST, s, T0 - 999, d, T0 - 5000, T0, {"k": "v"})
    a = assess(policy("shadow"), amount_minor=5000, capture=True, source_state=s, source_created_at_s=T0 - 999,
               destination_state=d, destination_created_at_s=T0 - 5000, metadata={"k": "v"})
    assert a.features == direct
    assert len(direct) == len(NAMES)


def test_state_stays_bounded_under_10000_payments() -> None:
    s: bytes | None = None
    d: bytes | None = None
    longest = 0
    for i in range(10_000):
        t = T0 + i * 7
        s = record(s, t, cp=uuid.UUID(int=i % 300).bytes, amount=10**12, outcome="authorized" if i % 3 else "declined")
        d = record(d, t, as_source=False, cp=uuid.UUID(int=i % 500).bytes, amount=10**12)
        longest = max(longest, len(s), len(d))
    assert longest <= 4096
    summary = _native._risk_state_summary(s, T0 + 9_999 * 7)
    assert summary["payments_hour"] == sum(1 for i in range(10_000) if (T0 + i * 7) // 60 > (T0 + 9_999 * 7) // 60 - 60)
    assert summary["out_total"] == 10_000


def reference_margin(doc: dict[str, Any], x: list[float]) -> float:
    """The model format's definition, walked in Python."""
    if doc["kind"] == "logreg":
        return float(doc["intercept"] + sum(
            c * (v - m) / s for c, v, m, s in zip(doc["coef"], x, doc["mean"], doc["scale"], strict=True)))
    total = float(doc["base_score"])
    for t in doc["trees"]:
        i = 0
        while t["feature"][i] != -1:
            v = x[t["feature"][i]]
            go_left = t["default_left"][i] if math.isnan(v) else v <= t["threshold"][i]
            i = t["left"][i] if go_left else t["right"][i]
        total += t["value"][i]
    return total


def test_evaluator_matches_the_format_definition() -> None:
    cases = bench_core.risk_cases(n=40)
    rows = [_native.risk_features(c[0], "USD", c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], None) for c in cases]
    rng = random.Random(3)
    # Some rows with NaNs, to take the default branches.
    rows += [[math.nan if rng.random() < 0.3 else v for v in row] for row in rows]
    gbdt_doc = json.loads(bench_core.synthetic_gbdt(rows[:40], n_trees=37, depth=6))
    docs = [gbdt_doc, json.loads(shipped("gbdt_v1")), json.loads(shipped("logreg_v1"))]
    for doc in docs:
        model = RiskModel.load(json.dumps(doc).encode())
        for row in rows:
            if doc["kind"] == "logreg" and any(math.isnan(v) for v in row):
                continue
            p = 1 / (1 + math.exp(-reference_margin(doc, row)))
            assert model.probability(row) == pytest.approx(p, abs=1e-12)
            assert model.score(row) == max(0, min(100, round(100 * p)))


def test_bench_reports_risk_figures() -> None:
    report = bench_core.run_risk(iterations=300)
    assert report["model"] == {"trees": 100, "depth": 5, "rules": 5, "mode": "enforce", "cases": 64}
    for where in ("native", "python_call"):
        for step in ("model_eval", "step"):
            figures = report[where][step]
            assert 0 < figures["p50_us"] <= figures["p99_us"], (where, step, figures)
    targets = risk_targets(report)
    assert targets["risk_step_p50_us"] == report["native"]["step"]["p50_us"]
    assert isinstance(targets["risk_model_eval_p50_at_most_2us"], bool)


def test_arm_is_the_same_in_another_process() -> None:
    """No per-process seed: a fresh interpreter (another API process, or after a restart) puts every
    source in the same arm."""
    script = (
        "import sys, uuid; sys.path.insert(0, sys.argv[1]); import test_risk_native as t; "
        "print(''.join('1' if a else '0' for a in t.arms(50)))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True,
                          text=True, check=True, timeout=60)
    assert done.stdout.strip() == "".join("1" if a else "0" for a in arms(50))


def test_wrong_argument_types_are_core_errors_naming_the_parameter() -> None:
    with pytest.raises(CoreError) as e:
        _native.risk_state_record("x", T0, as_source=True, counterparty_id=DST, amount_minor=1,  # type: ignore[arg-type]
                                  outcome="authorized")
    assert e.value.param == "state"
    with pytest.raises(CoreError) as e:
        _native.risk_features(1, "USD", True, "not bytes", DST, None, T0, None, T0, T0, None)  # type: ignore[arg-type]
    assert e.value.param == "source_id"
    with pytest.raises(CoreError) as e:
        _native.risk_rules_check([":amount: > 1", 5])  # type: ignore[list-item]
    assert e.value.param == "rules[1].predicate"
    with pytest.raises(CoreError) as e:
        policy(champion="gbdt_v1")
    assert e.value.param == "champion"
    with pytest.raises(CoreError) as e:
        policy(shadows=[BY_CAPTURE, None])
    assert e.value.param == "shadows[1]"
    with pytest.raises(CoreError) as e:
        _native.risk_rules_check(None)  # type: ignore[arg-type]
    assert e.value.param == "predicates"
