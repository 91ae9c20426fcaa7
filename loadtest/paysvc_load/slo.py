"""The SLO gate: does a finished run meet the latency and error budgets?

Pure functions over the run's totals, so they can be tested without locust.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_P99_MS = 250.0
DEFAULT_FAIL_RATIO = 0.01


@dataclass(frozen=True)
class Limits:
    p99_ms: float = DEFAULT_P99_MS  # the 99th percentile response time over every request, in ms
    fail_ratio: float = DEFAULT_FAIL_RATIO  # failures / requests (expected declines are not failures)


@dataclass(frozen=True)
class Totals:
    requests: int
    failures: int
    p99_ms: float
    rps: float = 0.0
    exceptions: int = 0  # raised by the locustfile's own code: the run did not do what it claims

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def breaches(totals: Totals, limits: Limits) -> list[str]:
    """Why the run breaks the SLO; empty when it meets it. A run that made no request fails too."""
    reasons = []
    if totals.requests == 0:
        reasons.append("no request was made")
    if totals.p99_ms > limits.p99_ms:
        reasons.append(f"p99 {totals.p99_ms:.0f} ms > limit {limits.p99_ms:g} ms")
    if totals.fail_ratio > limits.fail_ratio:
        reasons.append(f"failure ratio {totals.fail_ratio:.2%} ({totals.failures}/{totals.requests}) "
                       f"> limit {limits.fail_ratio:.2%}")
    if totals.exceptions:
        reasons.append(f"{totals.exceptions} exception(s) in the locustfile's tasks")
    return reasons


def summary(totals: Totals, limits: Limits) -> str:
    """One line: the verdict, then the figures it was drawn from."""
    reasons = breaches(totals, limits)
    verdict = "FAIL (" + "; ".join(reasons) + ")" if reasons else "PASS"
    return (f"SLO gate: {verdict}: requests={totals.requests} failures={totals.failures} "
            f"({totals.fail_ratio:.2%}, limit {limits.fail_ratio:.2%}) p99={totals.p99_ms:.0f} ms "
            f"(limit {limits.p99_ms:g} ms) rps={totals.rps:.1f}")
