"""`paysvc bench` in its cheapest form (one scenario, 3 s): wrk drives a scratch API, pgbench runs the
engine's SQL, the Rust core is timed against the reference; the JSON has every figure and the PNGs
are written. Skipped where wrk is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(300)
def test_bench_reports_throughput_latency_ceiling_and_plots(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not on PATH")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "paysvc.cli", "bench", "--duration", "3", "--scenarios", "spread", "--json",
         "--out", str(out)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads((out / "bench.json").read_text()) == report
    assert "[bench] spread:" in done.stderr and "pgbench separate_statements" in done.stderr  # progress

    spread = report["scenarios"]["spread"]
    for key in ("payments_per_s", "p50_ms", "p99_ms", "errors", "pgbench_ceiling_tps", "ratio_to_ceiling",
                "api_rss_mb_max", "statuses"):
        assert key in spread, key
    assert spread["payments_per_s"] > 0 and spread["requests"] > 0
    assert spread["errors"] <= spread["requests"] * 0.01, spread
    assert 0 < spread["p50_ms"] <= spread["p99_ms"]
    assert spread["api_rss_mb_max"] > 10
    assert spread["ratio_to_ceiling"] == pytest.approx(spread["payments_per_s"] / spread["pgbench_ceiling_tps"],
                                                       rel=0.01)

    for variant in ("separate_statements", "one_statement"):
        outcome = report["pgbench"][variant]
        assert "error" not in outcome, outcome
        assert outcome["tps"] > 0 and outcome["transactions"] > 0
        assert {"failed", "retried"} <= outcome.keys()
        assert (out / outcome["script"]).exists()

    core = report["core"]["functions"]
    assert core["prepare_payment"]["native_ns"] > 0 and core["prepare_payment"]["ratio"] > 1

    targets = report["targets"]
    assert targets["spread_payments_per_s"] == spread["payments_per_s"]
    assert targets["api_rss_mb_max_under_load"] is not None

    for name in ("throughput.png", "latency.png", "latency_histogram.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        assert str(out / name) in report["plots"]
