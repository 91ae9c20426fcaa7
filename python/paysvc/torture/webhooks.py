"""The webhook part of ``paysvc torture``: a receiver that answers 500 or hangs at random, an
endpoint for every event of the run, and the check at the end that every event of the run reached
the receiver at least once with a valid signature (at least once, through the run's crashes).

The signature is checked here with a few lines of HMAC of our own, not with paysvc's signing
module, so that a mistake there cannot hide itself."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
import uuid
from dataclasses import dataclass, field

import psycopg

from paysvc import ids
from paysvc.torture.receiver import HANG, OK, Answer, Received, Receiver

# A schedule short enough for the run to drain, long enough to ride out a database restart.
RETRY_SCHEDULE_S = "1,1,2,2,3,3,5,5,5,5"
TIMEOUT_MS = 1_000
FAILURE_RATE = 0.2
HANG_RATE = 0.05
DRAIN_TIMEOUT_S = 90.0

SETTINGS_ENV = {
    "PAYSVC_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    "PAYSVC_WEBHOOK_RETRY_SCHEDULE_S": RETRY_SCHEDULE_S,
    "PAYSVC_WEBHOOK_TIMEOUT_MS": str(TIMEOUT_MS),
    "PAYSVC_WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES": "0",
}


@dataclass
class WebhookCheck:
    rng: random.Random
    receiver: Receiver = field(init=False)
    secret: str = ""
    verified: set[str] = field(default_factory=set)  # event ids received with a valid signature
    bad_signatures: int = 0

    def __post_init__(self) -> None:
        self.receiver = Receiver(self._answer)

    def _answer(self, request: Received) -> Answer:
        if self.valid(request):
            self.verified.add(request.headers.get("webhook-id", ""))
        else:
            self.bad_signatures += 1
        draw = self.rng.random()
        if draw < HANG_RATE:
            return HANG
        if draw < HANG_RATE + FAILURE_RATE:
            return Answer(500)
        return OK

    def valid(self, request: Received) -> bool:
        msg_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, f"{msg_id}.{timestamp}.".encode() + request.body, hashlib.sha256).digest()
        ).decode()
        offered = [s.removeprefix("v1,") for s in request.headers.get("webhook-signature", "").split(" ")]
        return any(hmac.compare_digest(expected, s) for s in offered)

    async def drain(self, url: str, tenant_id: uuid.UUID) -> list[str]:
        """Wait until every event of the tenant arrived with a valid signature; return violations."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        missing: set[str] = set()
        while time.monotonic() < deadline:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                rows = await (await conn.execute("SELECT id FROM events WHERE tenant_id = %s", (tenant_id,))).fetchall()
            missing = {ids.encode(ids.EVENT, row[0]) for row in rows} - self.verified
            if not missing:
                break
            await asyncio.sleep(0.5)
        violations = [f"webhook: event {event} never reached the receiver with a valid signature"
                      for event in sorted(missing)]
        if self.bad_signatures:
            violations.append(f"webhook: {self.bad_signatures} requests with no valid signature")
        return violations
