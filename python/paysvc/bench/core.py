"""Microbenchmark: the Rust core (``paysvc._native``) against its plain-Python reference
(``tests/native_reference.py``, the implementation the tests hold the core to), same inputs.

Each call is timed in a loop of ``functools.partial`` calls (the loop and call overhead, a few
tens of ns, is in both numbers, so the ratio is if anything understated); the best of 15 short
loops counts (the one least disturbed by other work on the machine).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from paysvc import _native

REPEATS = 15
SOURCE = "acct_" + "1" * 32
DESTINATION = "acct_" + "2" * 32
PAYMENT_BODY = {
    "amount": 2500, "currency": "USD", "source": SOURCE, "destination": DESTINATION, "capture": True,
    "description": "order 42", "metadata": {"order": "42"}, "expires_in_s": None,
}

# (name, args, kwargs): what an API request calls, with a typical request's values.
CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("prepare_payment", (), {
        "path": "/v1/payments", "amount": 2500, "currency": "USD", "source": SOURCE, "destination": DESTINATION,
        "description": "order 42", "metadata": {"order": "42"}, "fee_rule": (290, 30, None, None),
        "idempotency_key": "order-42",
    }),
    ("prepare_account", (), {"currency": "USD", "metadata": {"name": "alice"}, "idempotency_key": "acct-1"}),
    ("prepare_refund", (), {"path": "/v1/payments/pay_1/refunds", "amount": 500, "idempotency_key": "refund-1"}),
    ("fingerprint", ("POST", "/v1/payments", PAYMENT_BODY), {}),
    ("compute_fee", (2500, 290, 30, None, None), {}),
    ("settle_fee", (2500, (290, 30, None, None)), {}),
    ("check_idempotency_key", ("order-42", True), {}),
    ("validate_metadata", ({"order": "42", "customer": "alice"},), {}),
    ("normalize_currency", ("usd",), {}),
]
HEADLINE = "prepare_payment"  # the core's work on every payment request


def reference_path() -> Path:
    # python/paysvc/bench/core.py -> the repository root
    return Path(__file__).resolve().parents[3] / "tests" / "native_reference.py"


def load_reference() -> ModuleType | None:
    path = reference_path()
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("native_reference", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("native_reference", module)
    spec.loader.exec_module(module)
    return module


def ns_per_call(fn: Callable[[], object], budget_s: float) -> float:
    """Best of REPEATS loops, each about ``budget_s`` long."""
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s / 4 or number >= 10**8:
            break
        number *= 4
    number = max(1, int(number * budget_s / max(elapsed, 1e-9)))
    best = math.inf
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / number * 1e9


def run(budget_s: float = 0.02) -> dict[str, Any]:
    reference = load_reference()
    if reference is None:
        return {"skipped": f"the plain-Python reference is not here: {reference_path()}"}
    functions: dict[str, Any] = {}
    for name, args, kwargs in CASES:
        native_call = partial(getattr(_native, name), *args, **kwargs)
        reference_call = partial(getattr(reference, name), *args, **kwargs)
        native_call()  # both must accept the input (a failure here is a bug, not a benchmark)
        reference_call()
        native_ns = ns_per_call(native_call, budget_s)
        reference_ns = ns_per_call(reference_call, budget_s)
        functions[name] = {
            "native_ns": round(native_ns, 1),
            "reference_ns": round(reference_ns, 1),
            "ratio": round(reference_ns / native_ns, 1),
        }
    ratios = [f["ratio"] for f in functions.values()]
    return {
        "reference": str(reference_path()),
        "functions": functions,
        "headline": HEADLINE,
        "headline_ratio": functions[HEADLINE]["ratio"],
        "geomean_ratio": round(math.exp(sum(math.log(r) for r in ratios) / len(ratios)), 1),
        "min_ratio": min(ratios),
    }
