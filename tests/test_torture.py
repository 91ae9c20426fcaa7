"""The short torture run (`paysvc torture`), as CI runs it: two API processes on a scratch database,
random load with duplicate keys, retries and cut connections (some abandoned mid-body, which must
never execute), a database crash and an API process SIGKILLed; then every acknowledged answer, the
audit and the money must check out, and every event must have reached the run's flaky webhook
receiver with a valid signature."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DURATION_S = 40


@pytest.mark.timeout(DURATION_S + 240)
def test_short_torture_run_finds_no_violation() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paysvc.cli", "torture", "--duration", str(DURATION_S), "--clients", "16", "--json"],
        capture_output=True, text=True, timeout=DURATION_S + 220, check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["violations"] == [] and report["violation_count"] == 0, report
    assert done.returncode == 0, done.stderr[-3000:]
    # The run really did what it claims: both kinds of fault, cut connections, checked replays, declines.
    assert report["faults"].get("database restart", 0) >= 1, report
    assert report["faults"].get("api process killed", 0) >= 1, report
    assert report["cut_connections"] > 0 and report["replays_checked"] > 0, report
    # Requests abandoned with their JSON whole but their body unfinished, both framings; none executed.
    assert report["abandoned"].get("abandoned chunked", 0) > 0, report
    assert report["abandoned"].get("abandoned content-length", 0) > 0, report
    assert report["payments"] > 300 and report["refunds"] > 0, report
    assert report["answers"].get("402", 0) > 0, report
    # Every event reached the webhook receiver that failed or hung at random (else a violation above).
    assert report["webhook_events"] > 300 and report["webhook_requests"] > report["webhook_events"], report
    assert "fault injected" in done.stderr  # progress is shown
