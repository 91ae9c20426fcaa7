"""Evaluation: the rules-only baseline and the metrics of the report and of the model files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from paysvc.risk.offline.features import Floats, Ints, Table, scenario_names

BLOCK_SCORE: Final = 75  # BRIEF §8's default `highest` threshold: scores at or above it are blocked
LOW_FPR: Final = 0.001


@dataclass(frozen=True)
class Rule:
    """``feature OP value`` adds ``points``: a §8-style rule a fraud analyst writes by hand."""

    why: str
    feature: str
    op: str  # ">=" or "<"
    value: float
    points: int
    also: tuple[str, str, float] | None = None  # a second condition, ANDed


# What an analyst writes without a model (Radar-style rules, turned into a 0..100 score by adding points).
BASELINE_RULES: Final = (
    Rule("card testing: a burst from one source", "source_payments_10m", ">=", 5, 50),
    Rule("card testing: declines pile up", "source_declines_hour", ">=", 3, 30),
    Rule("a source paying many times in an hour", "source_payments_hour", ">=", 10, 20),
    Rule("amount far above the source's usual", "amount_vs_source_usual", ">=", math.log(10), 40),
    Rule("a large amount to a new destination", "new_destination", ">=", 1, 30,
         also=("amount_vs_source_usual", ">=", math.log(4))),
    Rule("a new account sending a large amount", "source_age_log", "<", math.log1p(86_400), 30,
         also=("amount_log", ">=", math.log1p(50_000))),
    Rule("a destination paid by many sources this hour", "destination_sources_hour", ">=", 10, 40),
    Rule("a young destination, new to this source", "destination_age_log", "<", math.log1p(7 * 86_400), 15,
         also=("new_destination", ">=", 1)),
)


def _holds(x: Floats, names: list[str], feature: str, op: str, value: float) -> npt.NDArray[np.bool_]:
    column = x[:, names.index(feature)]
    return column >= value if op == ">=" else column < value


def rules_score(x: Floats, names: list[str]) -> Ints:
    """The baseline's 0..100 score per row; a rule naming a feature the core does not compute is skipped."""
    score = np.zeros(len(x), dtype=np.int64)
    for rule in BASELINE_RULES:
        needed = [rule.feature] + ([rule.also[0]] if rule.also else [])
        if not all(name in names for name in needed):
            continue
        hit = _holds(x, names, rule.feature, rule.op, rule.value)
        if rule.also is not None:
            hit &= _holds(x, names, *rule.also)
        score += hit * rule.points
    return np.minimum(score, 100)


def to_score(probability: Floats) -> Ints:
    """The service's risk_score: round(100·p) clamped to 0..100."""
    return np.clip(np.rint(probability * 100.0), 0, 100).astype(np.int64)


def evaluate(table: Table, probability: Floats, score: Ints) -> dict[str, float]:
    """The report's metrics on a test table, from a model's probabilities (ranking metrics) and served
    scores (decisions at the block threshold)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = table.y
    precision, recall, _ = precision_recall_curve(y, probability)
    fpr, tpr, _ = roc_curve(y, probability)
    blocked = score >= BLOCK_SCORE
    legit = y == 0
    metrics: dict[str, float] = {
        "average_precision": float(average_precision_score(y, probability)),
        "roc_auc": float(roc_auc_score(y, probability)),
        "precision_at_recall_80": float(precision[recall >= 0.8].max()),
        "recall_at_fpr_0_1pct": float(tpr[fpr <= LOW_FPR].max()),
        "recall_at_block": float(blocked[y == 1].mean()),
        "fpr_at_block": float(blocked[legit].mean()),
        "precision_at_block": float(y[blocked].mean()) if blocked.any() else 0.0,
    }
    for name in scenario_names(table):
        rows = table.scenario == name
        metrics[f"recall_at_block_{name}"] = float(blocked[rows].mean())
    return metrics
