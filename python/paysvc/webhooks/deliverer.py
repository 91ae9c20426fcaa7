"""The deliverer: leases due deliveries, makes each attempt over HTTP, records the outcome.

Runs in every API process (beside the API, started in the app's lifespan) and as
``paysvc webhooks run``. Any number of deliverers share the work safely:

1. lease (one statement, its own short transaction): ``SELECT … FOR UPDATE SKIP LOCKED LIMIT n`` over the due pending
   rows, which are then stamped with a fresh ``lease_id`` and moved to ``next_attempt_at = now() +
   the lease time`` (longer than an attempt may take). Another deliverer skips them while the lease
   transaction runs and finds them not due afterwards; a deliverer that dies mid-attempt leaves them
   due again when the lease runs out, so a crash delays a delivery and never loses it;
2. the attempt, after that commit, with no transaction open: resolve the host, check every address
   (ssrf.py), POST to the checked address, read at most 64 KiB of the answer;
3. record (a short transaction, only while the lease is still ours): succeeded, or the next attempt
   after the schedule's delay, or failed after the last one.

The HTTP clients are pooled ``httpx.AsyncClient``s, one per URL host (``Clients``: no redirects, TLS verified), and
attempts in flight are bounded by ``PAYSVC_WEBHOOK_CONCURRENCY``. None of this touches the payment
path: deliveries are made by the events sequencer, the deliverer's own statements touch only
webhook rows, and it has its own small connection pool (``make_deliverer_pool``), so a burst of
attempts never takes a connection a payment is waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import psycopg

import paysvc
from paysvc import ids, metrics
from paysvc.config import Settings
from paysvc.db.pool import Pool, make_pool
from paysvc.db.retry import Conn, RetryPolicy, read_all, read_one, run_read, run_transaction
from paysvc.errors import ApiError
from paysvc.resources import encode, event_from_row
from paysvc.webhooks import signing, ssrf

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
LEASE_MARGIN_S = 30.0  # beyond the attempt's timeout, for resolution, recording, a slow loop
BACKLOG_INTERVAL_S = 10.0
MAX_ERROR_CHARS = 500
MAX_CLIENTS = 256  # HTTP clients kept (one per endpoint URL host), the most recently used
USER_AGENT = f"paysvc-webhooks/{paysvc.__version__}"

LEASE = """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries SET next_attempt_at = now() + %(lease)s, lease_id = %(lease_id)s
FROM due WHERE webhook_deliveries.id = due.id
RETURNING webhook_deliveries.id
"""
# What the attempts need, read after the lease committed.
LEASED = """
SELECT d.id, d.attempts - d.attempts_base, w.id, w.url, w.status, w.deleted_at IS NOT NULL, w.secret,
       CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END,
       e.id, e.type, e.data, e.created_at
FROM webhook_deliveries d
JOIN webhook_endpoints w ON w.id = d.endpoint_id
JOIN events e ON e.id = d.event_id
WHERE d.id = ANY(%s::UUID[]) AND d.lease_id = %s
"""
RECORD = """
UPDATE webhook_deliveries SET status = %(status)s, attempts = attempts + 1, last_status_code = %(code)s,
    last_error = %(error)s, next_attempt_at = now() + %(delay)s, lease_id = NULL, updated_at = now()
WHERE id = %(id)s AND lease_id = %(lease_id)s
RETURNING endpoint_id
"""
# A success ends a run of failed deliveries; a delivery that ends failed extends it, and a run long
# enough disables the endpoint (0: never).
ENDPOINT_SUCCEEDED = """
UPDATE webhook_endpoints SET consecutive_failed_deliveries = 0 WHERE id = %s AND consecutive_failed_deliveries > 0"""
ENDPOINT_FAILED = """
UPDATE webhook_endpoints SET consecutive_failed_deliveries = consecutive_failed_deliveries + 1,
    status = CASE WHEN %(limit)s > 0 AND consecutive_failed_deliveries + 1 >= %(limit)s THEN 'disabled' ELSE status END
WHERE id = %(id)s
RETURNING status, consecutive_failed_deliveries"""
# Not attempted: the endpoint was deleted (the delivery stops), or disabled (it waits, parked, until
# the endpoint is enabled again: store.UNPARK_DELIVERIES). Checked under SERIALIZABLE with the
# endpoint's status, so a concurrent re-enable cannot leave it parked.
STOP = """
UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', next_attempt_at = NULL,
    lease_id = NULL, updated_at = now()
WHERE id = %s AND lease_id = %s"""
PARK = """
UPDATE webhook_deliveries SET next_attempt_at = NULL, lease_id = NULL, updated_at = now()
WHERE id = %s AND lease_id = %s AND EXISTS (
    SELECT 1 FROM webhook_endpoints w WHERE w.id = webhook_deliveries.endpoint_id AND w.status = 'disabled')"""
UNLEASE = "UPDATE webhook_deliveries SET next_attempt_at = now(), lease_id = NULL WHERE id = %s AND lease_id = %s"
BACKLOG = "SELECT count(*), min(created_at), now() FROM webhook_deliveries WHERE status = 'pending'"


@dataclass(frozen=True)
class Job:
    """One leased delivery, with what its attempt sends."""

    delivery_id: uuid.UUID
    lease_id: uuid.UUID
    attempt: int  # 1 for the first attempt of its budget (a manual retry starts a new budget)
    endpoint_id: uuid.UUID
    url: str
    endpoint_status: str
    endpoint_deleted: bool
    secrets: tuple[str, ...]  # the newest first
    event_id: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class DelivererConfig:
    allow_private: bool
    timeout_s: float
    retry_delays_s: tuple[int, ...]
    concurrency: int
    poll_interval_s: float
    disable_after_failed_deliveries: int
    retry: RetryPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> DelivererConfig:
        return cls(
            allow_private=settings.webhook_allow_private,
            timeout_s=settings.webhook_timeout_ms / 1000,
            retry_delays_s=settings.webhook_retry_delays_s,
            concurrency=settings.webhook_concurrency,
            poll_interval_s=settings.webhook_poll_interval_ms / 1000,
            disable_after_failed_deliveries=settings.webhook_disable_after_failed_deliveries,
            retry=RetryPolicy(settings.tx_max_attempts, settings.tx_backoff_base_ms, settings.tx_backoff_cap_ms),
        )


def make_deliverer_pool(settings: Settings, url: str) -> Pool:
    """The deliverer's own connections. Its transactions are short and few per attempt; waiting
    longer for one of them is harmless (the lease outlasts it), so the acquire timeout is generous."""
    own = msgspec.structs.replace(settings, pool_size=settings.webhook_pool_size,
                                  pool_acquire_timeout_ms=max(settings.pool_acquire_timeout_ms, 30_000))
    return make_pool(own, url)


class Clients:
    """Pooled HTTP clients, one per (scheme, host, port) of the endpoints' URLs, the most recently
    used kept (at most ``MAX_CLIENTS``). Attempts are sent to a checked IP address, and httpx pools
    connections by the request's (scheme, address, port): one client per URL host keeps a connection
    whose TLS was verified for one host name from carrying another host's request to the same address. No
    redirects are followed, TLS is always verified (the system's CAs, or ``verify``'s in tests), and
    proxies from the environment are ignored (we connect to the addresses we checked)."""

    def __init__(self, config: DelivererConfig, verify: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.verify: ssl.SSLContext | bool = True if verify is None else verify
        self._clients: OrderedDict[tuple[str, str, int], httpx.AsyncClient] = OrderedDict()

    def for_target(self, target: ssrf.Target) -> httpx.AsyncClient:
        key = (target.scheme, target.host, target.port)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        if len(self._clients) >= MAX_CLIENTS:
            _key, oldest = self._clients.popitem(last=False)
            task = asyncio.create_task(oldest.aclose())  # its attempts in flight end with their errors
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        limits = httpx.Limits(max_connections=self.config.concurrency,
                              max_keepalive_connections=self.config.concurrency)
        client = self._clients[key] = httpx.AsyncClient(
            follow_redirects=False, verify=self.verify, timeout=httpx.Timeout(self.config.timeout_s),
            limits=limits, trust_env=False,
        )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_closing: set[asyncio.Task[None]] = set()


def make_client(config: DelivererConfig, verify: ssl.SSLContext | None = None) -> Clients:
    return Clients(config, verify)


async def attempt(clients: Clients, job: Job, config: DelivererConfig) -> Outcome:
    """One POST of the event to the endpoint; never raises for the receiver's or the network's faults."""
    try:
        target = ssrf.parse(job.url, config.allow_private)
        async with asyncio.timeout(config.timeout_s):
            address = await ssrf.address_for_attempt(target, config.allow_private)
            return await _post(clients.for_target(target), target, address, job)
    except ssrf.UnsafeUrl as exc:
        return Outcome(False, None, f"refused: {exc}")
    except TimeoutError:
        return Outcome(False, None, f"timed out after {config.timeout_s:g} s")
    except httpx.TimeoutException:
        return Outcome(False, None, f"timed out after {config.timeout_s:g} s")
    except (httpx.HTTPError, OSError, UnicodeError, ValueError) as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS] or type(exc).__name__)


async def _post(client: httpx.AsyncClient, target: ssrf.Target, address: ssrf.IPAddress, job: Job) -> Outcome:
    # Connect to the checked address, never resolving the name again; the Host header and the TLS
    # server name (SNI, and the certificate check) stay the URL's host.
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"{target.scheme}://{host}:{target.port}{target.path}"
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not host_header.startswith("["):
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    timestamp_s = int(time.time())
    headers = {
        "Host": host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": job.event_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signing.signature_header(job.secrets, job.event_id, timestamp_s, job.body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
    request = client.build_request("POST", url, content=job.body, headers=headers, extensions=extensions)
    response = await client.send(request, stream=True)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_RESPONSE_BYTES:
                break  # read no more of it: the connection is closed, not reused
    finally:
        await response.aclose()
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None)
    kind = "redirect not followed" if 300 <= response.status_code < 400 else "not a 2xx answer"
    return Outcome(False, response.status_code, f"HTTP {response.status_code} ({kind})")


class Deliverer:
    """Leases and makes attempts until cancelled. ``wake()`` makes it look for due work at once."""

    def __init__(self, pool: Pool, config: DelivererConfig, lease_s: float | None = None) -> None:
        self.pool = pool
        self.config = config
        self.lease_s = config.timeout_s + LEASE_MARGIN_S if lease_s is None else lease_s
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        client = make_client(self.config)
        backlog = asyncio.create_task(self._watch_backlog(), name="webhook backlog")
        try:
            while True:
                try:
                    leased = await self.run_once(client)
                except (psycopg.Error, OSError, ApiError) as exc:  # the database is down or busy: next time
                    log.warning("webhook deliveries: lease skipped: %s", exc)
                    leased = 0
                if leased == 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.config.poll_interval_s):
                            await self._wake.wait()
        finally:
            backlog.cancel()
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(backlog, *self._in_flight, return_exceptions=True)
            await client.aclose()

    async def run_once(self, client: Clients) -> int:
        """Lease what the free slots can take and start those attempts; return how many were leased."""
        free = self.config.concurrency - len(self._in_flight)
        if free <= 0:
            # Every slot busy: wait for one to finish before leasing more (a lease runs out, a slot doesn't).
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        jobs = await self.lease(free)
        for job in jobs:
            task = asyncio.create_task(self._deliver(client, job), name="webhook attempt")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(jobs)

    async def lease(self, limit: int) -> list[Job]:
        lease_id = ids.new_uuid()

        async def take(conn: Conn) -> list[uuid.UUID]:
            params = {"limit": limit, "lease": timedelta(seconds=self.lease_s), "lease_id": lease_id}
            rows: list[tuple[Any, ...]] = await (await conn.execute(LEASE, params)).fetchall()
            return [row[0] for row in rows]

        # One statement in autocommit: its own short transaction, one round trip when idle. Re-run
        # only on 40001/40P01 (it did not commit); an unknown outcome is not re-run (run_read), and
        # rows it may have leased are simply due again when the lease runs out.
        leased = await run_read(self.pool, take)
        if not leased:
            return []
        rows = await read_all(self.pool, LEASED, (leased, lease_id))
        return [_job(row, lease_id) for row in rows]

    async def _deliver(self, client: Clients, job: Job) -> None:
        try:
            if job.endpoint_deleted or job.endpoint_status != "enabled":
                await self._set_aside(job)
                return
            started = time.perf_counter()
            outcome = await attempt(client, job, self.config)
            metrics.observe_webhook_attempt(time.perf_counter() - started)
            await self.record(job, outcome)
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError, ApiError) as exc:  # the database is down or busy
            log.warning("webhook delivery %s: attempt not recorded (%s); retried when its lease runs out",
                        ids.encode(ids.WEBHOOK_DELIVERY, job.delivery_id), exc)
        except Exception:  # the lease runs out and another attempt is made: never lost
            log.exception("webhook delivery %s: attempt not recorded",
                          ids.encode(ids.WEBHOOK_DELIVERY, job.delivery_id))

    async def _set_aside(self, job: Job) -> None:
        async def set_aside(conn: Conn) -> None:
            if job.endpoint_deleted:
                await conn.execute(STOP, (job.delivery_id, job.lease_id))
                return
            cursor = await conn.execute(PARK, (job.delivery_id, job.lease_id))
            if cursor.rowcount == 0:  # enabled again meanwhile: due now
                await conn.execute(UNLEASE, (job.delivery_id, job.lease_id))

        await run_transaction(self.pool, set_aside, policy=self.config.retry, idempotent=True)

    async def record(self, job: Job, outcome: Outcome) -> None:
        delays = self.config.retry_delays_s
        if outcome.succeeded:
            status, delay = "succeeded", None
        elif job.attempt <= len(delays):
            status, delay = "pending", timedelta(seconds=delays[job.attempt - 1])
        else:
            status, delay = "failed", None
        limit = self.config.disable_after_failed_deliveries

        async def write(conn: Conn) -> tuple[Any, ...] | None:
            row = await (await conn.execute(RECORD, {
                "status": status, "code": outcome.status_code, "error": outcome.error, "delay": delay,
                "id": job.delivery_id, "lease_id": job.lease_id,
            })).fetchone()
            if row is None:  # our lease ran out and another deliverer took the row: its record counts
                return None
            if status == "succeeded":
                await conn.execute(ENDPOINT_SUCCEEDED, (job.endpoint_id,))
            elif status == "failed":
                return await (await conn.execute(ENDPOINT_FAILED, {"limit": limit, "id": job.endpoint_id})).fetchone()
            return row

        written = await run_transaction(self.pool, write, policy=self.config.retry, idempotent=True)
        if written is None:
            return
        metrics.record_webhook_attempt({"succeeded": "succeeded", "pending": "retrying"}.get(status, "failed"))
        if status == "failed" and written[0] == "disabled" and limit and written[1] == limit:
            log.warning("webhook endpoint %s disabled after %d failed deliveries in a row",
                        ids.encode(ids.WEBHOOK_ENDPOINT, job.endpoint_id), limit)

    async def _watch_backlog(self) -> None:
        while True:
            with contextlib.suppress(psycopg.Error, OSError, ApiError):
                await update_backlog(self.pool)
            await asyncio.sleep(BACKLOG_INTERVAL_S)


async def update_backlog(pool: Pool) -> None:
    row = await read_one(pool, BACKLOG, ())
    if row is not None:
        count, oldest, now = row
        metrics.set_webhook_backlog(int(count), 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))


def _job(row: tuple[Any, ...], lease_id: uuid.UUID) -> Job:
    (delivery_id, attempts_in_budget, endpoint_id, url, endpoint_status, deleted, secret, previous,
     event_id, event_type, data, created_at) = row
    body = encode(event_from_row((event_id, event_type, data, created_at)))
    live = (secret,) if previous is None else (secret, previous)
    return Job(
        delivery_id=delivery_id, lease_id=lease_id, attempt=int(attempts_in_budget) + 1, endpoint_id=endpoint_id,
        url=url, endpoint_status=endpoint_status, endpoint_deleted=bool(deleted), secrets=live,
        event_id=ids.encode(ids.EVENT, event_id), body=body,
    )

