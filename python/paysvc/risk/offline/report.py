"""``paysvc risk report``: the held-out evaluation of exported models, as Markdown and PNG plots.

Every model figure comes from the Rust evaluator the service scores with (``RiskModel``), on features from
the Rust feature function, never from the trainer: the report describes what serving would do.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from paysvc import _native
from paysvc.risk.offline import dataset
from paysvc.risk.offline.features import Floats, Ints, Split, Table, replay, scenario_names
from paysvc.risk.offline.metrics import BASELINE_RULES, BLOCK_SCORE, evaluate, rules_score, to_score
from paysvc.risk.offline.train import goals

COLORS: Final = {"rules": "#888888", "logreg": "#1f77b4", "gbdt": "#ff7f0e"}
LATENCY_ROWS: Final = 10_000
IMPORTANCE_ROWS: Final = 30_000
PLOTS: Final = ("pr.png", "roc.png", "scores.png", "calibration.png", "importance.png", "latency.png")


@dataclass
class Scored:
    name: str  # "rules", or the model kind ("logreg", "gbdt")
    label: str  # what the plots and the table call it
    probability: Floats
    score: Ints
    metrics: dict[str, float]
    model: Any = None  # the RiskModel, None for the rules


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_models(directory: Path) -> list[Any]:
    models = []
    for path in sorted(directory.glob("*.json")):
        try:
            models.append(_native.RiskModel.load(path.read_bytes()))
        except _native.CoreError as exc:
            raise ValueError(f"{path}: {exc}") from None
    if not models:
        raise ValueError(f"{directory}: no model files (*.json)")
    kinds = sorted(m.kind for m in models)
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"{directory}: one model of each kind expected, found {kinds}")
    return models


def split_of(model: Any) -> Split:
    metrics = json.loads(model.metrics_json)
    try:
        return Split(int(metrics["train_start_s"]), int(metrics["train_end_s"]), int(metrics["test_start_s"]))
    except KeyError as exc:
        raise ValueError(f"model {model.id}: its metrics do not say how it was split ({exc} missing)") from None


def probabilities(model: Any, x: Floats) -> Floats:
    return np.fromiter((model.probability(row) for row in x.tolist()), dtype=np.float64, count=len(x))


def latency_ns(model: Any, x: Floats) -> Floats:
    """Per-call time of the Rust evaluator through Python (so the pyo3 call is included)."""
    rows = x[:LATENCY_ROWS].tolist()
    for row in rows[:1000]:  # warm up
        model.probability(row)
    out = np.empty(len(rows), dtype=np.float64)
    clock = time.perf_counter_ns
    for i, row in enumerate(rows):
        started = clock()
        model.probability(row)
        out[i] = clock() - started
    return out


def permutation_importance(model: Scored, test: Table, seed: int) -> Floats:
    """Drop in average precision when one feature's column is shuffled (model-agnostic, on the served model)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    rows = np.arange(len(test)) if len(test) <= IMPORTANCE_ROWS else rng.choice(len(test), IMPORTANCE_ROWS,
                                                                                  replace=False)
    x, y = test.x[rows], test.y[rows]
    base = float(average_precision_score(y, _score_rows(model, x, test.names)))
    drops = np.zeros(len(test.names))
    for j in range(len(test.names)):
        shuffled = x.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        drops[j] = base - float(average_precision_score(y, _score_rows(model, shuffled, test.names)))
    return drops


def _score_rows(model: Scored, x: Floats, names: list[str]) -> Floats:
    if model.model is None:
        return rules_score(x, names) / 100.0
    return probabilities(model.model, x)


# ---- plots ----------------------------------------------------------------------------------------------


def _plots(out: Path, test: Table, scored: list[Scored], importance: dict[str, Floats],
           latency: dict[str, Floats]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = test.y
    dpi = 80

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for s in scored:
        precision, recall, _ = precision_recall_curve(y, s.probability)
        ax.plot(recall, precision, color=COLORS[s.name], label=f"{s.label} (AP {s.metrics['average_precision']:.3f})")
    ax.axhline(float(y.mean()), color="#cccccc", linestyle=":", label=f"fraud rate {y.mean():.2%}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, held-out period", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr.png", dpi=dpi)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for s in scored:
        fpr, tpr, _ = roc_curve(y, s.probability)
        ax.plot(np.maximum(fpr, 1e-5), tpr, color=COLORS[s.name], label=f"{s.label} (AUC {s.metrics['roc_auc']:.3f})")
    ax.axvline(0.001, color="#cccccc", linestyle=":", label="FPR 0.1%")
    ax.set_xscale("log")
    ax.set(xlabel="false-positive rate (log)", ylabel="recall (true-positive rate)", title="ROC, held-out period",
           xlim=(1e-5, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=dpi)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(scored), figsize=(4 * len(scored), 3.6), sharey=True)
    bins = np.arange(0, 102, 2)
    for ax, s in zip(np.atleast_1d(axes), scored, strict=True):
        ax.hist(s.score[y == 0], bins=bins, color="#1f77b4", alpha=0.6, label="legitimate")
        ax.hist(s.score[y == 1], bins=bins, color="#d62728", alpha=0.7, label="fraud")
        ax.axvline(BLOCK_SCORE, color="black", linestyle="--", linewidth=1, label=f"block ≥ {BLOCK_SCORE}")
        ax.set_yscale("log")
        ax.set(title=s.label, xlabel="risk_score")
    np.atleast_1d(axes)[0].set_ylabel("payments (log)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("Score by class, held-out period")
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=dpi)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="#cccccc", linestyle=":", label="perfect")
    for s in scored:
        if s.model is None:
            continue
        # equal-width bins: with fraud under 1%, equal-count bins would all sit near zero
        observed, predicted = calibration_curve(y, s.probability, n_bins=10, strategy="uniform")
        ax.plot(predicted, observed, marker="o", color=COLORS[s.name], label=s.label)
    ax.set(xlabel="predicted probability (10 equal-width bins)", ylabel="observed fraud rate in the bin",
           title="Calibration, held-out period", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=dpi)
    plt.close(fig)

    names = test.names
    order = np.argsort(-np.max(np.vstack(list(importance.values())), axis=0))
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    height = 0.8 / len(importance)
    for k, (name, drops) in enumerate(importance.items()):
        label = next(s.label for s in scored if s.name == name)
        ax.barh(np.arange(len(names)) + k * height, drops[order], height=height, color=COLORS[name], label=label)
    ax.set_yticks(np.arange(len(names)) + height * (len(importance) - 1) / 2, [names[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="drop in average precision when the feature is shuffled", title="Feature importance (permutation)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "importance.png", dpi=dpi)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    top_us = max(float(np.percentile(ns, 99.5)) for ns in latency.values()) / 1000
    for name, ns in latency.items():
        label = next(s.label for s in scored if s.name == name)
        us = ns / 1000
        ax.hist(us[us <= top_us], bins=60, color=COLORS[name], alpha=0.6,
                label=f"{label}: p50 {np.percentile(us, 50):.2f} µs, p99 {np.percentile(us, 99):.2f} µs")
    ax.set(xlabel="µs per call (Python → Rust, one payment)", ylabel="calls",
           title=f"Scoring latency, {LATENCY_ROWS:,} calls each")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=dpi)
    plt.close(fig)


# ---- the report -----------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _markdown(data: Path, split: Split, test: Table, scored: list[Scored], latency: dict[str, Floats],
              plots_prefix: str) -> str:
    from datetime import UTC, datetime

    def day(s: int) -> str:
        return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M")

    scenarios = scenario_names(test)
    lines = [
        "# Risk model report",
        "",
        f"Data: `{data.name}`. Held-out period from {day(split.test_start_s)} UTC: {len(test):,} payments, "
        f"{int(test.y.sum()):,} frauds ({test.y.mean():.2%}). Trained on {day(split.train_start_s)} to "
        f"{day(split.train_end_s)} UTC with the labels known at {day(split.test_start_s)}; the gap between is "
        "skipped (it is as long as the label delay, so no test payment's outcome leaks into training).",
        "",
        "Model figures come from the Rust evaluator on features from the Rust feature function (what the service "
        f"computes). Block = `risk_score` ≥ {BLOCK_SCORE} (the default `highest` threshold).",
        "",
        "| model | average precision | ROC-AUC | precision at recall 0.8 | recall at 0.1% FPR | "
        "recall at block | FPR at block |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scored:
        m = s.metrics
        lines.append(
            f"| {s.label} | {_fmt(m['average_precision'])} | {_fmt(m['roc_auc'])} | "
            f"{_fmt(m['precision_at_recall_80'])} | {_fmt(m['recall_at_fpr_0_1pct'])} | "
            f"{_fmt(m['recall_at_block'])} | {m['fpr_at_block']:.4%} |")
    lines += [
        "",
        f"Recall per fraud scenario at the block threshold (score ≥ {BLOCK_SCORE}):",
        "",
        "| model | " + " | ".join(f"{name} ({int((test.scenario == name).sum())})" for name in scenarios) + " |",
        "|---|" + "---:|" * len(scenarios),
    ]
    for s in scored:
        lines.append(f"| {s.label} | " + " | ".join(_fmt(s.metrics[f"recall_at_block_{n}"]) for n in scenarios) + " |")
    ap = {s.name: s.metrics for s in scored}
    if {"rules", "logreg", "gbdt"} <= ap.keys():
        met = goals(ap)
        lines += [
            "",
            "Goals (issue 17): GBDT average precision ≥ 2x the rules-only baseline: "
            f"{_fmt(ap['gbdt']['average_precision'])} vs 2 x {_fmt(ap['rules']['average_precision'])} "
            f"→ **{'met' if met['gbdt_ap_at_least_2x_rules'] else 'NOT met'}**; above logistic regression: "
            f"{_fmt(ap['gbdt']['average_precision'])} vs {_fmt(ap['logreg']['average_precision'])} "
            f"→ **{'met' if met['gbdt_ap_above_logreg'] else 'NOT met'}**.",
        ]
    lines += ["", "Scoring latency of the Rust evaluator, one call per payment through Python:", ""]
    for name, ns in latency.items():
        label = next(s.label for s in scored if s.name == name)
        lines.append(f"- {label}: p50 {np.percentile(ns, 50) / 1000:.2f} µs, p99 {np.percentile(ns, 99) / 1000:.2f} µs")
    lines += ["", "The rules-only baseline adds points per rule that holds (capped at 100):", ""]
    for rule in BASELINE_RULES:
        cond = f"`{rule.feature} {rule.op} {rule.value:.3g}`"
        if rule.also is not None:
            cond += f" and `{rule.also[0]} {rule.also[1]} {rule.also[2]:.3g}`"
        lines.append(f"- {rule.why}: {cond} → +{rule.points}")
    lines += [""]
    titles = {"pr.png": "Precision-recall", "roc.png": "ROC", "scores.png": "Scores by class",
              "calibration.png": "Calibration", "importance.png": "Feature importance", "latency.png": "Latency"}
    for plot in PLOTS:
        lines += [f"![{titles[plot]}]({plots_prefix}{plot})", ""]
    return "\n".join(lines)


@dataclass
class Report:
    path: Path
    scored: list[Scored]
    test: Table


def run(data: Path, models_dir: Path, out: Path, *, seed: int = 1, show_progress: bool | None = None,
        plots_prefix: str = "") -> Report:
    models = load_models(models_dir)
    split = split_of(models[0])
    payments = dataset.read(data)
    _say(f"read {len(payments)} payments from {data}")
    table = replay(payments, show_progress=show_progress)
    if list(table.names) != list(models[0].features):
        raise ValueError("the models were trained on other features than the core computes: retrain them")
    test = split.test(table)
    if test.y.sum() < 1:
        raise ValueError("the held-out period of this data has no fraud: is it the data the models were trained on?")

    rules = rules_score(test.x, test.names)
    scored = [Scored("rules", "rules only", rules / 100.0, rules, evaluate(test, rules / 100.0, rules))]
    labels = {"logreg": "logistic regression", "gbdt": "GBDT"}
    for model in sorted(models, key=lambda m: ["logreg", "gbdt"].index(m.kind) if m.kind in labels else 9):
        p = probabilities(model, test.x)
        served = to_score(p)
        scored.append(Scored(model.kind, f"{labels.get(model.kind, model.kind)} `{model.id}`", p, served,
                             evaluate(test, p, served), model))
    _say("feature importance and latency")
    importance = {s.name: permutation_importance(s, test, seed) for s in scored}
    latency = {s.name: latency_ns(s.model, test.x) for s in scored if s.model is not None}
    out.mkdir(parents=True, exist_ok=True)
    _plots(out, test, scored, importance, latency)
    path = out / "report.md"
    path.write_text(_markdown(data, split, test, scored, latency, plots_prefix) + "\n", encoding="utf-8")
    _say(f"wrote {path} and {len(PLOTS)} plots")
    return Report(path, scored, test)
