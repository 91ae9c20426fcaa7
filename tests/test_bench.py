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
        [sys.executable, "-m", "paysvc.cli", "bench", "--duration", "3", "--scenarios", "spread,committer", "--json",
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

    # The committer alone, at batch sizes 1, 16 (the connections) and 64: every payment succeeded, and a
    # bigger batch carries more payments per second than a batch of one.
    by_size = report["scenarios"]["committer"]["by_batch_size"]
    assert sorted(by_size, key=int) == ["1", "16", "64"]
    for size, stats in by_size.items():
        assert stats["batch_size"] == int(size) and stats["batches"] > 0 and stats["errors"] == 0, stats
        assert stats["ratio_to_ceiling"] == pytest.approx(
            stats["payments_per_s"] / report["pgbench"]["separate_statements"]["tps"], rel=0.01)
    assert by_size["64"]["payments_per_s"] > by_size["1"]["payments_per_s"]
    assert "committer alone: batches of 64" in done.stderr
    assert "committer: 16 connections" not in done.stderr  # no HTTP load run for it
    # On the event loop the API runs on (uvicorn picks uvloop, which uvicorn[standard] installs).
    assert report["scenarios"]["committer"]["event_loop"] == "uvloop"

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
    assert targets["committer_alone_ratio_to_ceiling"] == by_size["16"]["ratio_to_ceiling"]
    # Issue 17's risk figures: model evaluation and the whole risk step, native and through Python.
    assert targets["risk_model_eval_p50_us"] == report["risk"]["native"]["model_eval"]["p50_us"] > 0
    assert 0 < targets["risk_step_p50_us"] <= targets["risk_step_p99_us"]
    assert "risk: model evaluation p50" in done.stderr

    for name in ("throughput.png", "latency.png", "latency_histogram.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        assert str(out / name) in report["plots"]
