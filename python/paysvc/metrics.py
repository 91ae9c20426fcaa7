"""Prometheus metrics of this API process, served as text (exposition format 0.0.4) by ``GET /metrics``.

The counters are plain module-level ints, dicts and lists, updated without locks: one event loop per
process owns them, and every ``record_*``/``observe_*`` call costs a dict lookup and an increment or
two (about a microsecond). They are PER PROCESS: with several API processes (``paysvc serve
--workers N``, or several containers) scrape each process, e.g. one process per container, and sum in
Prometheus. They start at zero when the process starts, as Prometheus counters may.

Families (``render`` writes them; a family with no sample yet still has its HELP and TYPE lines):

- ``paysvc_http_requests_total{method,route,status}`` counter, and
  ``paysvc_http_request_duration_seconds{method,route,status}`` histogram (seconds from the request's
  arrival at the app to the end of its answer). ``route`` is the route template
  (``/v1/payments/{payment_id}/capture``), never the raw path; ``unmatched`` for requests no route
  matched (404, 405). ``method`` outside the standard ones is ``other``.
- ``paysvc_payments_total{outcome}`` counter (:func:`record_payment`).
- ``paysvc_idempotency_replays_total`` counter (:func:`record_idempotency_replay`).
- ``paysvc_group_commit_batch_size`` histogram (:func:`observe_batch_size`).
- ``paysvc_db_retries_total{sqlstate}`` counter: whole-transaction re-runs (``paysvc.db.retry``), by
  ``40001`` (serialization failure), ``40P01`` (deadlock), ``connection`` (connection lost before
  COMMIT) or ``ambiguous`` (40003, or the connection lost during COMMIT); all four always present.
- ``paysvc_db_pool_connections{state="in_use"|"idle"}`` and ``paysvc_db_pool_requests_waiting``
  gauges, read from the pool when scraped.
- ``paysvc_webhook_attempts_total{outcome}`` counter: webhook attempts recorded by this process's
  deliverer, by what they left the delivery as: ``succeeded``, ``retrying`` (failed, another attempt
  is scheduled) or ``failed`` (the last attempt failed); all three always present
  (:func:`record_webhook_attempt`).
- ``paysvc_webhook_attempt_duration_seconds`` histogram: one attempt, resolution to answer read
  (:func:`observe_webhook_attempt`).
- ``paysvc_webhook_backlog`` and ``paysvc_webhook_backlog_oldest_age_seconds`` gauges: pending
  deliveries of the whole database (every process reports the same value, refreshed every few
  seconds by its deliverer), and the age of the oldest (:func:`set_webhook_backlog`).
- ``process_resident_memory_bytes``, ``process_cpu_seconds_total``, ``process_open_fds``,
  ``process_start_time_seconds`` (Linux ``/proc``; left out elsewhere).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

UNMATCHED_ROUTE = "unmatched"
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RETRY_REASONS = ("40001", "40P01", "connection", "ambiguous")  # always exposed, zero until they happen

# Payment outcomes (the label set of paysvc_payments_total{outcome}):
#   succeeded, requires_capture, failed  the payment's status after the request that created it
#                                        (failed = declined, e.g. insufficient_funds);
#   an error code of paysvc.errors.CODES the request was refused before a payment existed.
# A replay is not a payment: it is counted by paysvc_idempotency_replays_total only. Distinct
# outcomes are capped (MAX_OUTCOMES); any further value is counted as "other".
PAYMENT_OUTCOMES = ("succeeded", "requires_capture", "failed")
MAX_OUTCOMES = 64
OTHER = "other"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class Histogram:
    """Cumulative-on-render histogram: ``counts[i]`` holds the values in (bounds[i-1], bounds[i]]; the last
    slot the values above every bound (+Inf)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


# (method, route, status) -> latency histogram; its count is paysvc_http_requests_total.
_http: dict[tuple[str, str, int], Histogram] = {}
_payments: dict[str, int] = {}
_replays = 0
_batch_sizes = Histogram(BATCH_SIZE_BUCKETS)
WEBHOOK_OUTCOMES = ("succeeded", "retrying", "failed")
_webhook_attempts: dict[str, int] = dict.fromkeys(WEBHOOK_OUTCOMES, 0)
_webhook_latency = Histogram(LATENCY_BUCKETS_S)
_webhook_backlog: tuple[int, float] | None = None  # (pending deliveries, oldest age in s); None: unknown


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered HTTP request (the request middleware calls this)."""
    key = (method, route, status)
    histogram = _http.get(key)
    if histogram is None:
        if method not in _METHODS:
            key = (OTHER, route, status)
        histogram = _http.get(key)
        if histogram is None:
            histogram = _http[key] = Histogram(LATENCY_BUCKETS_S)
    histogram.counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
    histogram.sum += seconds


def record_payment(outcome: str) -> None:
    """One payment request decided: ``outcome`` is the payment's status after it (``succeeded``,
    ``requires_capture``, ``failed``), or the error code of a request refused before a payment
    existed. Call it once per payment, never for a replay (see :func:`record_idempotency_replay`)."""
    try:
        _payments[outcome] += 1
    except KeyError:
        if len(_payments) >= MAX_OUTCOMES:
            outcome = OTHER
        _payments[outcome] = _payments.get(outcome, 0) + 1


def record_idempotency_replay() -> None:
    """A request answered from its idempotency record (``Idempotent-Replayed: true``)."""
    global _replays
    _replays += 1


def observe_batch_size(size: int) -> None:
    """One group-commit transaction committed; ``size`` is the number of payment requests it answered
    (``len(batch)``: replays and declines included). Call it once per committed batch, not per attempt."""
    _batch_sizes.counts[bisect_left(BATCH_SIZE_BUCKETS, size)] += 1
    _batch_sizes.sum += size


def record_webhook_attempt(outcome: str) -> None:
    """One webhook attempt recorded: ``outcome`` is one of :data:`WEBHOOK_OUTCOMES`."""
    _webhook_attempts[outcome] += 1


def observe_webhook_attempt(seconds: float) -> None:
    _webhook_latency.observe(seconds)


def set_webhook_backlog(pending: int, oldest_age_s: float) -> None:
    global _webhook_backlog
    _webhook_backlog = (pending, oldest_age_s)


# ---- exposition ---------------------------------------------------------------------------------


def render(*, pool_stats: Mapping[str, int] | None, retries: Mapping[str, int]) -> str:
    """The whole exposition. ``pool_stats`` is ``pool.get_stats()`` (None: no pool, no pool gauges);
    ``retries`` the retry helper's counts by reason."""
    out: list[str] = []

    _header(out, "paysvc_http_requests_total", "counter",
            "HTTP requests answered, by method, route template and status.")
    http = sorted(_http.items())
    for (method, route, status), histogram in http:
        labels = _labels(("method", method), ("route", route), ("status", str(status)))
        out.append(f"paysvc_http_requests_total{{{labels}}} {sum(histogram.counts)}")
    _header(out, "paysvc_http_request_duration_seconds", "histogram",
            "Time from a request's arrival at the app to the end of its answer, in seconds.")
    for (method, route, status), histogram in http:
        labels = _labels(("method", method), ("route", route), ("status", str(status)))
        _histogram(out, "paysvc_http_request_duration_seconds", labels, histogram)

    _header(out, "paysvc_payments_total", "counter",
            "Payments created, by outcome: the payment's status, or the error code of a refused request.")
    for outcome, count in sorted(_payments.items()):
        out.append(f"paysvc_payments_total{{{_labels(('outcome', outcome))}}} {count}")

    _header(out, "paysvc_idempotency_replays_total", "counter",
            "Requests answered from a stored idempotency record (Idempotent-Replayed: true).")
    out.append(f"paysvc_idempotency_replays_total {_replays}")

    _header(out, "paysvc_group_commit_batch_size", "histogram",
            "Payments per group-commit transaction.")
    _histogram(out, "paysvc_group_commit_batch_size", "", _batch_sizes)

    _header(out, "paysvc_db_retries_total", "counter",
            "Whole-transaction re-runs, by SQLSTATE (40001, 40P01) or connection / ambiguous.")
    for reason in sorted({*RETRY_REASONS, *retries}):
        out.append(f"paysvc_db_retries_total{{{_labels(('sqlstate', reason))}}} {retries.get(reason, 0)}")

    _header(out, "paysvc_webhook_attempts_total", "counter",
            "Webhook attempts recorded, by what they left the delivery as: succeeded, retrying, failed.")
    for outcome, count in sorted(_webhook_attempts.items()):
        out.append(f"paysvc_webhook_attempts_total{{{_labels(('outcome', outcome))}}} {count}")
    _header(out, "paysvc_webhook_attempt_duration_seconds", "histogram",
            "Time of one webhook attempt, from resolving the host to the answer read, in seconds.")
    _histogram(out, "paysvc_webhook_attempt_duration_seconds", "", _webhook_latency)
    if _webhook_backlog is not None:
        _header(out, "paysvc_webhook_backlog", "gauge", "Pending webhook deliveries (the whole database).")
        out.append(f"paysvc_webhook_backlog {_webhook_backlog[0]}")
        _header(out, "paysvc_webhook_backlog_oldest_age_seconds", "gauge",
                "Age of the oldest pending webhook delivery, in seconds (0 when none).")
        out.append(f"paysvc_webhook_backlog_oldest_age_seconds {_number(_webhook_backlog[1])}")

    if pool_stats is not None:
        size = pool_stats.get("pool_size", 0)
        idle = pool_stats.get("pool_available", 0)
        _header(out, "paysvc_db_pool_connections", "gauge", "Pooled database connections, by state.")
        out.append(f'paysvc_db_pool_connections{{state="in_use"}} {max(0, size - idle)}')
        out.append(f'paysvc_db_pool_connections{{state="idle"}} {idle}')
        _header(out, "paysvc_db_pool_requests_waiting", "gauge",
                "Requests waiting for a pooled database connection.")
        out.append(f"paysvc_db_pool_requests_waiting {pool_stats.get('requests_waiting', 0)}")

    _process(out)
    out.append("")
    return "\n".join(out)


def _header(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}")
    out.append(f"# TYPE {name} {kind}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(*pairs: tuple[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def _histogram(out: list[str], name: str, labels: str, histogram: Histogram) -> None:
    prefix = f"{labels}," if labels else ""
    cumulative = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        cumulative += count
        out.append(f'{name}_bucket{{{prefix}le="{_number(bound)}"}} {cumulative}')
    cumulative += histogram.counts[-1]
    out.append(f'{name}_bucket{{{prefix}le="+Inf"}} {cumulative}')
    suffix = f"{{{labels}}}" if labels else ""
    out.append(f"{name}_sum{suffix} {_number(histogram.sum)}")
    out.append(f"{name}_count{suffix} {cumulative}")


def _process(out: list[str]) -> None:
    """Process facts from /proc (Linux); each one left out where it cannot be read."""
    try:
        with open("/proc/self/status", "rb") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith(b"VmRSS:"))
        _header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out.append(f"process_resident_memory_bytes {rss_kb * 1024}")
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    times = os.times()
    _header(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")
    out.append(f"process_cpu_seconds_total {_number(times.user + times.system)}")
    try:
        fds = len(os.listdir("/proc/self/fd"))
        _header(out, "process_open_fds", "gauge", "Open file descriptors.")
        out.append(f"process_open_fds {fds}")
    except OSError:
        pass
    started = _start_time()
    if started is not None:
        _header(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, "
                "in seconds.")
        out.append(f"process_start_time_seconds {_number(started)}")


_started_at: float | None = None


def _start_time() -> float | None:
    global _started_at
    if _started_at is None:
        try:
            with open("/proc/self/stat", "rb") as stat:
                # Field 22 (starttime, clock ticks since boot) counted after the ")" closing the name.
                ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
            with open("/proc/stat", "rb") as machine:
                boot = next(int(line.split()[1]) for line in machine if line.startswith(b"btime "))
            _started_at = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, StopIteration, ValueError, IndexError):
            return None
    return _started_at
