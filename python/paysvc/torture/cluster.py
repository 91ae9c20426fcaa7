"""What the torture run starts and breaks: a scratch embedded PostgreSQL and API processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from paysvc.db.embedded import EmbeddedPostgres
from paysvc.db.migrate import migrate

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ScratchDatabase:
    """An embedded PostgreSQL under ``root`` that faults can crash and restart."""

    def __init__(self, root: Path) -> None:
        self.embedded = EmbeddedPostgres(root)
        self.url = ""

    def start(self) -> str:
        self.url = self.embedded.start()
        migrate(self.url)
        return self.url

    def crash(self) -> None:
        self.embedded.crash()

    def restart(self) -> None:
        self.embedded.restart()

    def close(self) -> None:
        self.embedded.shutdown()


class ApiProcess:
    """``paysvc serve`` in a child process on a loopback port; it can be SIGKILLed and restarted."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        assert self._proc is None
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paysvc.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self._proc.returncode}; see {self.log_path}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, in-flight requests and transactions are cut."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()


class TenantSession:
    """A tenant created through the admin API, and requests made with its API key (the setup of
    ``paysvc torture`` and ``paysvc bench``)."""

    def __init__(self, http: httpx.AsyncClient, tenant: dict[str, Any]) -> None:
        self.http = http
        self.tenant_id: str = tenant["id"]
        self.api_key: str = tenant["api_key"]
        self._headers = {"Authorization": f"Bearer {self.api_key}"}

    @classmethod
    async def create(cls, http: httpx.AsyncClient, admin_token: str, name: str) -> TenantSession:
        r = await http.post("/admin/v1/tenants", json={"name": name},
                            headers={"Authorization": f"Bearer {admin_token}"})
        r.raise_for_status()
        return cls(http, r.json())

    async def post(self, path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        extra = {"Idempotency-Key": key} if key else {}
        r = await self.http.post(path, json=body, headers={**self._headers, **extra})
        r.raise_for_status()
        value: dict[str, Any] = r.json()
        return value

    async def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.put(path, json=body, headers=self._headers)
        r.raise_for_status()
        value: dict[str, Any] = r.json()
        return value
