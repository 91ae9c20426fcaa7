"""``paysvc torture``: the bank-invariant torture run.

Starts a scratch embedded PostgreSQL and two API processes on it; N clients send random deposits,
payments, holds, captures, cancels and refunds (with duplicate keys, retries after timeouts and cut
connections, some abandoned with the JSON whole but the body unfinished, which must never execute)
while faults are injected: the database crashes (``pg_ctl stop -m immediate``) and restarts, an API
process is SIGKILLed and restarted. Then every acknowledged answer is checked against the database,
the audit runs, and the money is counted. A webhook endpoint subscribed to every event points at a
receiver that answers 500 or hangs at random: at the end, every event of the run must have reached
it at least once with a valid signature (torture/webhooks.py). Exit code 1 on any violation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paysvc import audit, ids
from paysvc.config import Settings
from paysvc.torture.clients import Client, ClientLog, Tally, World
from paysvc.torture.cluster import ApiProcess, ScratchDatabase, TenantSession
from paysvc.torture.verify import verify
from paysvc.torture.webhooks import SETTINGS_ENV as WEBHOOK_ENV
from paysvc.torture.webhooks import WebhookCheck

log = logging.getLogger(__name__)

MAX_CLIENTS = 512
MAX_DURATION_S = 24 * 3600.0
SETUP_DEPOSIT_MINOR = 1_000_000
PROGRESS_EVERY_S = 5.0


@dataclass
class Report:
    duration_s: float
    clients: int
    requests: int = 0  # logical requests (each ends with a definitive answer)
    http_attempts: int = 0
    acknowledged: int = 0  # 2xx answers
    payments: int = 0
    refunds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    cut_connections: int = 0
    abandoned: Counter[str] = field(default_factory=Counter)  # requests abandoned mid-body, by kind
    replays_checked: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    webhook_requests: int = 0
    webhook_events: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"requests={self.requests}, acknowledged={self.acknowledged}, payments={self.payments}, "
                f"webhook events delivered={self.webhook_events} ({self.webhook_requests} requests), "
                f"faults injected={sum(self.faults.values())}, violations={len(self.violations)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 1), "clients": self.clients, "requests": self.requests,
            "http_attempts": self.http_attempts, "acknowledged": self.acknowledged, "payments": self.payments,
            "refunds": self.refunds, "faults": dict(self.faults), "cut_connections": self.cut_connections,
            "abandoned": dict(self.abandoned),
            "replays_checked": self.replays_checked, "answers": dict(self.answers),
            "webhook_requests": self.webhook_requests, "webhook_events": self.webhook_events,
            "violations": self.violations[:100], "violation_count": len(self.violations),
        }


def main(settings: Settings, *, duration_s: float, clients: int, as_json: bool) -> int:
    if not 1 <= clients <= MAX_CLIENTS or not 1 <= duration_s <= MAX_DURATION_S:
        print(f"paysvc: --clients must be 1..{MAX_CLIENTS} and --duration 1..{MAX_DURATION_S:.0f}", file=sys.stderr)
        return 2
    # One log line per client request would drown the progress and cost the clients CPU.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # SIGTERM like Ctrl-C: the run is cancelled and its API processes and database are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = asyncio.run(run(duration_s, clients))
    except KeyboardInterrupt:
        _progress("interrupted; the scratch database and API processes are stopped")
        return 130
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        for violation in report.violations:
            print(f"violation: {violation}")
        print(report.line())
    return 1 if report.violations else 0


async def run(duration_s: float, n_clients: int) -> Report:
    root = Path(tempfile.mkdtemp(prefix="paysvc-torture-"))
    report = Report(duration_s=duration_s, clients=n_clients)
    db = ScratchDatabase(root)
    apis: list[ApiProcess] = []
    keep = False
    hooks = WebhookCheck(random.Random(secrets.randbits(32)))
    await hooks.receiver.start()
    try:
        _progress(f"starting a scratch PostgreSQL in {root}")
        url = await asyncio.to_thread(db.start)
        admin_token = secrets.token_urlsafe(24)
        env = {**os.environ, "PAYSVC_DATABASE_URL": url, "PAYSVC_ADMIN_TOKEN": admin_token,
               "PAYSVC_RATE_LIMIT_PER_S": "0", "PAYSVC_LOG_LEVEL": "WARNING",
               "PAYSVC_EXPIRY_SWEEP_INTERVAL_S": "1", "PAYSVC_POOL_SIZE": "8",
               "PAYSVC_POOL_ACQUIRE_TIMEOUT_MS": "1000", "PAYSVC_CONNECT_TIMEOUT_S": "2", **WEBHOOK_ENV}
        apis = [ApiProcess(f"api-{n}", env, root) for n in (1, 2)]
        for api in apis:
            api.start()
        await asyncio.gather(*(api.wait_ready() for api in apis))
        world, tenant_id, setup_deposits = await _setup(apis[0].base_url, admin_token,
                                                        [a.base_url for a in apis], max(8, n_clients // 2), hooks)

        tally = Tally()
        logs = [ClientLog() for _ in range(n_clients)]
        seed = random.SystemRandom().randrange(2**32)
        clients = [Client(n, world, tally, logs[n], seed + n) for n in range(n_clients)]
        started = time.monotonic()
        deadline = started + duration_s
        _progress(f"{n_clients} clients for {duration_s:.0f} s on {', '.join(a.base_url for a in apis)} "
                  f"(seed {seed})")
        faults = asyncio.create_task(_inject_faults(db, apis, deadline, report.faults, random.Random(seed)))
        ticker = asyncio.create_task(_tick(started, tally, report.faults))
        try:
            await asyncio.gather(*(c.run(deadline) for c in clients))
        finally:
            faults.cancel()
            ticker.cancel()
            for task in (faults, ticker):
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            for c in clients:
                await c.close()

        _progress("load done; checking every acknowledged answer against the database")
        told = [t for client_log in logs for t in client_log.told]
        report.violations = [v for client_log in logs for v in client_log.violations]
        funding_id = ids.decode(ids.ACCOUNT, world.funding)
        assert funding_id is not None
        found, counts = await asyncio.to_thread(verify, url, tenant_id, funding_id, told, setup_deposits,
                                                tally.abandoned_keys)
        report.violations += found
        _progress("running the audit")
        audited = await asyncio.to_thread(audit.run_audit, url)
        report.violations += [f"audit {v.check}: {v.subject}: {v.detail}" for v in audited.violations]
        _progress("waiting for every event of the run to reach the webhook receiver")
        report.violations += await hooks.drain(url, tenant_id)
        report.webhook_requests, report.webhook_events = len(hooks.receiver.received), len(hooks.verified)
        report.requests = sum(tally.ops.values())
        report.http_attempts = sum(tally.attempts.values())
        report.answers = tally.attempts
        report.acknowledged = sum(n for status, n in tally.attempts.items() if status.startswith("2"))
        report.payments, report.refunds = counts["payments"], counts["refunds"]
        report.cut_connections = tally.cut
        report.abandoned = tally.abandoned
        report.replays_checked = tally.replays_checked
        report.duration_s = time.monotonic() - started
        keep = bool(report.violations)
        return report
    finally:
        for api in apis:
            api.stop()
        await hooks.receiver.close()
        await asyncio.to_thread(db.close)
        if keep:
            _progress(f"violations found: logs and data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _setup(
    admin_url: str, admin_token: str, base_urls: list[str], n_customers: int, hooks: WebhookCheck
) -> tuple[World, uuid.UUID, dict[str, int]]:
    """A tenant with a webhook endpoint for every event, a USD fee schedule, a funding account and
    funded customer accounts."""
    async with httpx.AsyncClient(base_url=admin_url, timeout=30) as http:
        session = await TenantSession.create(http, admin_token, "torture")
        post = session.post
        endpoint = await post("/v1/webhook-endpoints", {"url": hooks.receiver.url, "enabled_events": ["*"]})
        hooks.secret = endpoint["secret"]
        funding = (await post("/v1/accounts", {"currency": "USD", "allow_negative": True}))["id"]
        customers = [(await post("/v1/accounts", {"currency": "USD"}))["id"] for _ in range(n_customers)]
        await session.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 290, "fixed": 30}]})
        deposits: dict[str, int] = {}
        for n, customer in enumerate(customers):
            payment = await post("/v1/payments", {"amount": SETUP_DEPOSIT_MINOR, "currency": "USD",
                                                  "source": funding, "destination": customer}, key=f"setup-{n}")
            deposits[payment["id"]] = SETUP_DEPOSIT_MINOR
    tenant_id = ids.decode(ids.TENANT, session.tenant_id)
    assert tenant_id is not None
    return World(session.api_key, funding, customers, base_urls), tenant_id, deposits


async def _inject_faults(
    db: ScratchDatabase, apis: list[ApiProcess], deadline: float, faults: Counter[str], rng: random.Random
) -> None:
    """Alternate: crash and restart the database; SIGKILL an API process and restart it."""
    interval_s = min(30.0, max(8.0, (deadline - time.monotonic()) / 5))
    kinds = ["database restart", "api process killed"]
    n = 0
    while time.monotonic() + interval_s < deadline:
        await asyncio.sleep(interval_s * rng.uniform(0.7, 1.0))
        kind = kinds[n % 2]
        n += 1
        if kind == "database restart":
            await asyncio.to_thread(db.crash)
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            await asyncio.to_thread(db.restart)
        else:
            victim = rng.choice(apis)
            victim.kill()
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            victim.start()
            await victim.wait_ready()
        faults[kind] += 1
        _progress(f"fault injected: {kind}")


async def _tick(started: float, tally: Tally, faults: Counter[str]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        elapsed = time.monotonic() - started
        requests = sum(tally.ops.values())
        ok = sum(n for status, n in tally.attempts.items() if status.startswith("2"))
        _progress(f"t={elapsed:5.0f}s requests={requests} ({requests / elapsed:.0f}/s) acknowledged={ok} "
                  f"faults={sum(faults.values())}")


def _progress(message: str) -> None:
    print(f"[torture] {message}", file=sys.stderr, flush=True)
