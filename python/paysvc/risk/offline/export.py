"""Trained scikit-learn models to the flat model format ("paysvc-risk-model/1"), checked against the Rust
evaluator before anything is written: an export whose Rust probabilities differ from the trainer's by more
than ``TOLERANCE`` on ``CHECK_ROWS`` rows is refused, so the file can never score differently in serving.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from paysvc import _native
from paysvc.risk.offline.features import Floats

FORMAT: Final = "paysvc-risk-model/1"
TOLERANCE: Final = 1e-6
CHECK_ROWS: Final = 10_000

Model = dict[str, Any]


class ExportRefused(Exception):
    """The Rust evaluator and the trainer disagree on the exported model."""


def _header(model_id: str, kind: str, names: list[str], metrics: dict[str, float], created_at: str | None) -> Model:
    if created_at is None:
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"format": FORMAT, "id": model_id, "kind": kind, "features": list(names), "created_at": created_at,
            "metrics": {k: float(v) for k, v in metrics.items()}}


def logreg(pipeline: Any, model_id: str, names: list[str], metrics: dict[str, float],
           created_at: str | None = None) -> Model:
    """A ``Pipeline(StandardScaler, LogisticRegression)``: z = intercept + Σ coef_i·(x_i - mean_i)/scale_i."""
    scaler, classifier = pipeline[0], pipeline[-1]
    return _header(model_id, "logreg", names, metrics, created_at) | {
        "intercept": float(classifier.intercept_[0]),
        "coef": [float(c) for c in classifier.coef_[0]],
        "mean": [float(m) for m in scaler.mean_],
        "scale": [float(s) for s in scaler.scale_],
    }


def _float32_cut(threshold: float) -> float:
    """The f64 cut equivalent to scikit-learn's test. Its trees compare the feature cast to float32 with a
    float64 threshold t: left iff float32(x) <= t, i.e. iff float32(x) <= c, the largest float32 <= t; and
    float32(x) <= c iff x <= the midpoint of c and the next float32 up (ties at that exact midpoint aside),
    a number an f64 holds exactly. Without this an f64 feature a hair below t can round above it."""
    low = np.float32(threshold)
    if float(low) > threshold:
        low = np.nextafter(low, np.float32(-np.inf))
    high = np.nextafter(low, np.float32(np.inf))
    return (float(low) + float(high)) / 2.0


def gbdt(classifier: Any, model_id: str, names: list[str], metrics: dict[str, float],
         created_at: str | None = None) -> Model:
    """A binary ``HistGradientBoostingClassifier`` or ``GradientBoostingClassifier`` (log loss)."""
    if hasattr(classifier, "_predictors"):
        return _hist_gbdt(classifier, model_id, names, metrics, created_at)
    return _classic_gbdt(classifier, model_id, names, metrics, created_at)


def _hist_gbdt(classifier: Any, model_id: str, names: list[str], metrics: dict[str, float],
               created_at: str | None) -> Model:
    """HistGradientBoostingClassifier predicts from raw float64 features with ``x <= num_threshold`` going
    left (NaN: ``missing_go_to_left``), its leaf values already shrunk by the learning rate, from a baseline
    margin: our format exactly. (Its fitted trees are private attributes; the Rust check below catches any
    change of meaning in a later scikit-learn.)"""
    trees = []
    for (predictor,) in classifier._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ExportRefused(f"model {model_id}: categorical splits have no equivalent in the flat format")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append({
            "feature": [-1 if is_leaf else int(f) for f, is_leaf in zip(nodes["feature_idx"], leaf, strict=True)],
            "threshold": [0.0 if is_leaf else float(t)
                          for t, is_leaf in zip(nodes["num_threshold"], leaf, strict=True)],
            "left": [-1 if is_leaf else int(c) for c, is_leaf in zip(nodes["left"], leaf, strict=True)],
            "right": [-1 if is_leaf else int(c) for c, is_leaf in zip(nodes["right"], leaf, strict=True)],
            "value": [float(v) if is_leaf else 0.0 for v, is_leaf in zip(nodes["value"], leaf, strict=True)],
            "default_left": [bool(m) and not is_leaf
                             for m, is_leaf in zip(nodes["missing_go_to_left"], leaf, strict=True)],
        })
    return _header(model_id, "gbdt", names, metrics, created_at) | {
        "base_score": float(np.ravel(classifier._baseline_prediction)[0]), "trees": trees,
    }


def _classic_gbdt(classifier: Any, model_id: str, names: list[str], metrics: dict[str, float],
                  created_at: str | None) -> Model:
    """GradientBoostingClassifier (prior init): base_score is the prior's log odds and each leaf holds its
    value times the learning rate (scikit-learn scales at prediction time)."""
    prior = float(classifier.init_.class_prior_[1])
    trees = []
    for (estimator,) in classifier.estimators_:
        t = estimator.tree_
        leaf = t.children_left == -1
        trees.append({
            "feature": [-1 if is_leaf else int(f) for f, is_leaf in zip(t.feature, leaf, strict=True)],
            "threshold": [0.0 if is_leaf else _float32_cut(float(v))
                          for v, is_leaf in zip(t.threshold, leaf, strict=True)],
            "left": [int(c) for c in t.children_left],
            "right": [int(c) for c in t.children_right],
            "value": [float(classifier.learning_rate * v) if is_leaf else 0.0
                      for v, is_leaf in zip(t.value[:, 0, 0], leaf, strict=True)],
            "default_left": [not is_leaf for is_leaf in leaf],  # the features are never NaN
        })
    return _header(model_id, "gbdt", names, metrics, created_at) | {
        "base_score": math.log(prior / (1.0 - prior)), "trees": trees,
    }


def encode(model: Model) -> bytes:
    """Compact JSON (Python's float repr round-trips, so the Rust parser reads back the same f64s)."""
    return (json.dumps(model, separators=(",", ":"), allow_nan=False) + "\n").encode()


def disagreement(data: bytes, trainer: Any, x: Floats) -> float:
    """The largest |Rust probability - trainer probability| over the rows of ``x``."""
    served = _native.RiskModel.load(data)
    expected = trainer.predict_proba(x)[:, 1]
    worst = 0.0
    for row, want in zip(x.tolist(), expected.tolist(), strict=True):
        worst = max(worst, abs(served.probability(row) - want))
    return worst


def checked(model: Model, trainer: Any, x: Floats, *, rows: int = CHECK_ROWS, seed: int = 0) -> bytes:
    """The model's bytes, once the Rust evaluator agrees with the trainer on ``rows`` rows of ``x``
    (sampled without replacement when there are more); raises ExportRefused otherwise."""
    data = encode(model)
    if len(x) > rows:
        x = x[np.random.default_rng(seed).choice(len(x), size=rows, replace=False)]
    worst = disagreement(data, trainer, x)
    if not worst <= TOLERANCE:  # also refuses NaN
        raise ExportRefused(
            f"model {model['id']}: the Rust evaluator and the trainer disagree by {worst:.3g} on {len(x)} rows "
            f"(tolerance {TOLERANCE:g}); not exported")
    return data
