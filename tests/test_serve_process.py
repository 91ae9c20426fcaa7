"""`paysvc serve` as a real process on the embedded PostgreSQL, talked to over loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port

ADMIN = "serve-test-admin-token"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYSVC_")}
    env.update({"PAYSVC_DATA_DIR": str(data_dir), "PAYSVC_ADMIN_TOKEN": ADMIN, "PAYSVC_LOG_LEVEL": "WARNING"})
    return env


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "paysvc.cli", "serve", "--port", str(port)],
        env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not become ready in 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.mark.timeout(180)
def test_serve_on_embedded_postgres_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, port)
    try:
        created = subprocess.run(
            [sys.executable, "-m", "paysvc.cli", "tenant", "create", "serve-test"],
            env=_env(tmp_path), capture_output=True, check=True, timeout=60,
        )
        tenant = json.loads(created.stdout)
        assert set(tenant) == {"id", "name", "api_key"} and tenant["name"] == "serve-test"
        auth = {"Authorization": f"Bearer {tenant['api_key']}"}
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        funding = httpx.post(f"{base}/v1/accounts", json={"currency": "USD", "allow_negative": True},
                             headers=auth).json()
        alice = httpx.post(f"{base}/v1/accounts", json={"currency": "USD"}, headers=auth).json()
        r = httpx.post(f"{base}/v1/payments", headers={**auth, "Idempotency-Key": "dep-1"},
                       json={"amount": 500, "currency": "USD", "source": funding["id"], "destination": alice["id"]})
        assert r.status_code == 201, r.text
        # The admin API works too.
        admin = {"Authorization": f"Bearer {ADMIN}"}
        r = httpx.post(f"{base}/admin/v1/tenants", json={"name": "second"}, headers=admin)
        assert r.status_code == 201
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists(), "the embedded database was not stopped"

    proc = _start(tmp_path, port)  # a second start reuses the data
    try:
        r = httpx.get(f"{base}/v1/accounts/{alice['id']}", headers=auth)
        assert r.status_code == 200
        assert r.json()["balance"] == {"posted": 500, "pending": 0, "available": 500}
    finally:
        _stop(proc)
