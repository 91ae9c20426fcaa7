"""The torture run's clients: random deposits, payments, holds, captures, cancels and refunds, with
duplicate Idempotency-Keys, retries after timeouts and connections cut mid-request. Each client
remembers what it was told; verify.py holds the database to it.

A request whose outcome the client does not know (a timeout, a cut connection, a 503, a 5xx, a 409
``idempotency_key_in_use``) is sent again with the same key and body until the answer is definitive,
exactly as a careful API client would; so every request ends with a definitive answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

CLIENT_TIMEOUT_S = 5.0
RESOLVE_TIMEOUT_S = 180.0  # how long a client keeps retrying one request before calling it unresolved
# How a cut connection ends its request (Client.cut).
ABANDONED_KINDS = ("abandoned chunked", "abandoned content-length")
CUT_KINDS = ("whole request", "part of the body", *ABANDONED_KINDS)
STORED_STATUSES = frozenset({200, 201, 402})  # replayed byte for byte (409 invalid_state too, checked by code)


@dataclass
class Told:
    """The definitive answer to one logical request."""

    op: str
    key: str
    path: str
    body: dict[str, Any]
    status: int
    content: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.content)
        return value

    @property
    def stored(self) -> bool:
        """An answer the idempotency record keeps (so a replay must return it byte for byte)."""
        if self.status in STORED_STATUSES:
            return True
        return self.status == 409 and self.json()["error"]["code"] == "invalid_state"


@dataclass
class World:
    """What every client shares: the tenant's key, the accounts, the API processes' URLs."""

    api_key: str
    funding: str
    customers: list[str]
    base_urls: list[str]


@dataclass
class Tally:
    attempts: Counter[str] = field(default_factory=Counter)  # HTTP status (as text) or error kind
    ops: Counter[str] = field(default_factory=Counter)
    replays_checked: int = 0
    cut: int = 0
    abandoned: Counter[str] = field(default_factory=Counter)  # ABANDONED_KINDS -> how many
    abandoned_keys: list[str] = field(default_factory=list)  # keys of abandoned requests: never executed
    unresolved: int = 0


@dataclass
class ClientLog:
    told: list[Told] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


class Client:
    def __init__(self, n: int, world: World, tally: Tally, log: ClientLog, seed: int) -> None:
        self.n = n
        self.world = world
        self.tally = tally
        self.log = log
        self.rng = random.Random(seed)
        self.holds: list[dict[str, Any]] = []  # open holds this client created
        self.captured: list[dict[str, Any]] = []  # succeeded payments with something left to refund
        self.http = [
            httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S,
                              headers={"Authorization": f"Bearer {world.api_key}"})
            for url in world.base_urls
        ]

    async def close(self) -> None:
        for http in self.http:
            await http.aclose()

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            await self.step()

    # ---- one random operation --------------------------------------------------------------

    async def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.06 and self.log.told:
            await self.replay()
        elif roll < 0.16:
            await self.deposit()
        elif roll < 0.42:
            await self.pay(capture=True)
        elif roll < 0.60:
            await self.pay(capture=False)
        elif roll < 0.74 and self.holds:
            await self.capture()
        elif roll < 0.82 and self.holds:
            await self.cancel()
        elif self.captured:
            await self.refund()
        else:
            await self.pay(capture=True)

    async def deposit(self) -> None:
        body = {"amount": self.rng.randint(1_000, 100_000), "currency": "USD", "source": self.world.funding,
                "destination": self.rng.choice(self.world.customers)}
        await self.call("deposit", "/v1/payments", body)

    async def pay(self, capture: bool) -> None:
        source, destination = self.rng.sample(self.world.customers, 2)
        # Now and then more than any customer holds: a decline (402, recorded as a failed payment).
        amount = self.rng.randint(100, 5_000) if self.rng.random() < 0.97 else self.rng.randint(10**8, 10**9)
        body: dict[str, Any] = {"amount": amount, "currency": "USD", "source": source,
                                "destination": destination, "capture": capture}
        if not capture:
            body["expires_in_s"] = self.rng.randint(60, 120)
        told = await self.call("hold" if not capture else "payment", "/v1/payments", body)
        if told is not None and told.status == 201:
            (self.captured if capture else self.holds).append(told.json())

    async def capture(self) -> None:
        hold = self.holds.pop(self.rng.randrange(len(self.holds)))
        body = {} if self.rng.random() < 0.5 else {"amount": self.rng.randint(50, hold["amount"])}
        told = await self.call("capture", f"/v1/payments/{hold['id']}/capture", body)
        if told is not None and told.status == 200:
            self.captured.append(told.json())

    async def cancel(self) -> None:
        hold = self.holds.pop(self.rng.randrange(len(self.holds)))
        await self.call("cancel", f"/v1/payments/{hold['id']}/cancel",
                        {"reason": self.rng.choice(["requested_by_customer", "duplicate", "abandoned"])})

    async def refund(self) -> None:
        index = self.rng.randrange(len(self.captured))
        payment = self.captured[index]
        left = payment["amount_captured"] - payment["amount_refunded"]
        amount = self.rng.randint(1, left)
        told = await self.call("refund", f"/v1/payments/{payment['id']}/refunds", {"amount": amount})
        if told is not None and told.status == 201:
            payment["amount_refunded"] += amount
        if told is None or told.status != 201 or payment["amount_refunded"] >= payment["amount_captured"]:
            self.captured.pop(index)

    async def replay(self) -> None:
        """Send an earlier request again with its key: a stored answer must come back byte for byte."""
        earlier = self.rng.choice(self.log.told)
        again = await self.call(earlier.op, earlier.path, earlier.body, key=earlier.key, record=False)
        if again is None or not earlier.stored:
            return
        self.tally.replays_checked += 1
        if (again.status, again.content) != (earlier.status, earlier.content):
            self.log.violations.append(
                f"replay of {earlier.op} key {earlier.key} answered {again.status} {again.content[:200]!r}, "
                f"first answer was {earlier.status} {earlier.content[:200]!r}"
            )

    # ---- transport ---------------------------------------------------------------------------

    async def call(
        self, op: str, path: str, body: dict[str, Any], key: str | None = None, record: bool = True
    ) -> Told | None:
        """Send until the answer is definitive; None if it never became definitive (a violation)."""
        key = key or f"t{self.n}-{uuid.uuid4().hex}"
        content = json.dumps(body).encode()
        self.tally.ops[op] += 1
        if self.rng.random() < 0.04:
            await self.cut(path, content, key)
        started = time.monotonic()
        backoff_s = 0.05
        while time.monotonic() - started < RESOLVE_TIMEOUT_S:
            http = self.rng.choice(self.http)
            try:
                r = await http.post(path, content=content,
                                    headers={"Idempotency-Key": key, "Content-Type": "application/json"})
            except httpx.TimeoutException:
                self.tally.attempts["timeout"] += 1
            except httpx.TransportError:
                self.tally.attempts["connection error"] += 1
            else:
                self.tally.attempts[str(r.status_code)] += 1
                if r.status_code >= 500 and r.status_code != 503:
                    self.log.violations.append(f"{op} {path} answered {r.status_code}: {r.text[:300]}")
                if not _unknown(r):
                    told = Told(op, key, path, body, r.status_code, r.content)
                    if record:
                        self.log.told.append(told)
                    return told
            await asyncio.sleep(self.rng.uniform(0, backoff_s))
            backoff_s = min(backoff_s * 2, 1.0)
        self.tally.unresolved += 1
        self.log.violations.append(f"{op} {path} key {key}: no definitive answer in {RESOLVE_TIMEOUT_S} s")
        return None

    async def cut(self, path: str, content: bytes, key: str) -> None:
        """Send the request on a raw connection and hang up before the answer. Four ways, one at random:
        the whole request; part of its body; and two that are abandoned with the JSON complete but the
        request not (a Content-Length one byte longer than the body sent, or a chunked body without its
        closing empty chunk). An abandoned request must never execute: it goes under a key of its own,
        never sent again (``Tally.abandoned_keys``), that verify.py checks no record was stored under."""
        base = self.rng.choice(self.world.base_urls)
        host, port = base.removeprefix("http://").split(":")
        kind = self.rng.choice(CUT_KINDS)
        if kind in ABANDONED_KINDS:
            key = f"{key}-abandoned"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {self.world.api_key}\r\n"
            f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\n"
        )
        if kind == "abandoned chunked":
            request = f"{head}Transfer-Encoding: chunked\r\n\r\n{len(content):x}\r\n".encode() + content + b"\r\n"
        elif kind == "abandoned content-length":
            request = f"{head}Content-Length: {len(content) + 1}\r\n\r\n".encode() + content
        else:
            request = f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content
            if kind == "part of the body":
                request = request[: len(request) - len(content) // 2 - 1]
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
            writer.write(request)
            await writer.drain()
            await asyncio.sleep(self.rng.uniform(0, 0.02))
            writer.transport.abort()
            self.tally.cut += 1
            if kind in ABANDONED_KINDS:
                self.tally.abandoned[kind] += 1
                self.tally.abandoned_keys.append(key)
        except (OSError, TimeoutError):
            self.tally.attempts["connection error"] += 1


def _unknown(r: httpx.Response) -> bool:
    """True when the answer does not tell what happened (so the same request must be sent again)."""
    if r.status_code >= 500:
        return True
    if r.status_code == 409:
        code: str = r.json()["error"]["code"]
        return code == "idempotency_key_in_use"
    return False
