"""``paysvc risk train``: time-split training of the rules-only baseline, logistic regression and GBDT on a
simulated dataset, and export of the two models (checked against the Rust evaluator) to the flat format."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paysvc.risk.offline import dataset, export
from paysvc.risk.offline.features import Split, Table, replay
from paysvc.risk.offline.metrics import evaluate, rules_score, to_score


@dataclass(frozen=True)
class Options:
    data: Path
    out: Path
    test_days: int = 14
    trees: int = 100
    depth: int = 4
    learning_rate: float = 0.1
    seed: int = 1
    version: str = "v1"
    created_at: str | None = None
    show_progress: bool | None = None


@dataclass
class Trained:
    split: Split
    train: Table
    test: Table
    logreg: Any
    gbdt: Any
    metrics: dict[str, dict[str, float]]  # per model: "rules", "logreg", "gbdt"
    paths: dict[str, Path]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fit_logreg(train: Table, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = Pipeline([("scale", StandardScaler()),
                         ("logreg", LogisticRegression(C=1.0, max_iter=2_000, random_state=seed))])
    return pipeline.fit(train.x, train.y)


def fit_gbdt(train: Table, options: Options) -> Any:
    """Histogram GBDT: fast on two cores, and it predicts from the raw f64 features like our evaluator.
    No early stopping (its validation split would depend on the row count): a fixed number of trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    classifier = HistGradientBoostingClassifier(
        max_iter=options.trees, max_depth=options.depth, max_leaf_nodes=2 ** options.depth,
        learning_rate=options.learning_rate, l2_regularization=1.0, early_stopping=False,
        random_state=options.seed,
    )
    return classifier.fit(train.x, train.y)


def split_metrics(split: Split, train: Table, test: Table) -> dict[str, float]:
    """What a model file records about the data it was trained and tested on (numbers only)."""
    return {
        "train_start_s": split.train_start_s, "train_end_s": split.train_end_s, "test_start_s": split.test_start_s,
        "train_payments": len(train), "train_frauds_known": int(train.y.sum()),
        "test_payments": len(test), "test_frauds": int(test.y.sum()),
    }


def run(options: Options) -> Trained:
    started_s = time.monotonic()
    payments = dataset.read(options.data)
    _say(f"read {len(payments)} payments from {options.data}")
    table = replay(payments, show_progress=options.show_progress)
    split = Split.of(table, test_days=options.test_days)
    train, test = split.train(table), split.test(table)
    if train.y.sum() < 2 or test.y.sum() < 1:
        raise ValueError("too few frauds to train and test on: simulate more customers or days")
    _say(f"train: {len(train)} payments, {int(train.y.sum())} frauds known at training time; "
         f"test: {len(test)} payments, {int(test.y.sum())} frauds")

    rules = rules_score(test.x, test.names)
    metrics = {"rules": evaluate(test, rules / 100.0, rules)}
    _say("training logistic regression")
    logreg = fit_logreg(train, options.seed)
    p = logreg.predict_proba(test.x)[:, 1]
    metrics["logreg"] = evaluate(test, p, to_score(p))
    _say(f"training GBDT ({options.trees} trees of depth {options.depth})")
    gbdt = fit_gbdt(train, options)
    p = gbdt.predict_proba(test.x)[:, 1]
    metrics["gbdt"] = evaluate(test, p, to_score(p))

    about = split_metrics(split, train, test) | {"rules_average_precision": metrics["rules"]["average_precision"]}
    options.out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind, trainer, build in (("logreg", logreg, export.logreg), ("gbdt", gbdt, export.gbdt)):
        model_id = f"{kind}_{options.version}"
        model = build(trainer, model_id, table.names, metrics[kind] | about, options.created_at)
        data = export.checked(model, trainer, test.x, seed=options.seed)  # raises ExportRefused
        paths[kind] = options.out / f"{model_id}.json"
        paths[kind].write_bytes(data)
        _say(f"wrote {paths[kind]} ({len(data) // 1024} KiB), checked against the Rust evaluator")
    _say(f"done in {time.monotonic() - started_s:.0f}s")
    return Trained(split, train, test, logreg, gbdt, metrics, paths)


def goals(metrics: dict[str, dict[str, float]]) -> dict[str, bool]:
    """Issue 17's measured goals on the held-out period."""
    ap = {name: m["average_precision"] for name, m in metrics.items()}
    return {
        "gbdt_ap_at_least_2x_rules": ap["gbdt"] >= 2 * ap["rules"],
        "gbdt_ap_above_logreg": ap["gbdt"] > ap["logreg"],
    }
