"""The deliverer's guarantees, driven directly on a database of their own (no API process leasing
beside them): deliveries made once per matching event by the sequencer, leases that several
deliverers never share, a crashed deliverer's lease running out, a stale lease's result ignored,
and the SSRF checks made at each attempt (every resolved address, then the checked one called)."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from standardwebhooks import Webhook

from conftest import fresh_database
from paysvc import admin, ids
from paysvc.config import Settings, SettingsError
from paysvc.db.pool import Pool, make_pool
from paysvc.db.retry import RetryPolicy
from paysvc.ledger import events
from paysvc.torture.receiver import HANG, OK, Answer, Received, Receiver
from paysvc.webhooks import signing, ssrf
from paysvc.webhooks.deliverer import Deliverer, DelivererConfig, Job, Outcome, attempt, make_client

POLICY = RetryPolicy()


@pytest.fixture(scope="module")
def own_database(server_url: str) -> Iterator[str]:
    with fresh_database(server_url, "paysvc_hooks") as url:
        yield url


@pytest.fixture
async def own_pool(own_database: str) -> AsyncIterator[Pool]:
    pool = make_pool(Settings(database_url=own_database, pool_size=6), own_database)
    await pool.open(wait=True)
    yield pool
    await pool.close()


def _config(**changes: Any) -> DelivererConfig:
    base = DelivererConfig(allow_private=True, timeout_s=1.0, retry_delays_s=(1,), concurrency=8,
                           poll_interval_s=0.05, disable_after_failed_deliveries=0, retry=POLICY)
    return dataclasses.replace(base, **changes)


async def _tenant(pool: Pool) -> uuid.UUID:
    async with pool.connection() as conn:
        created = await admin.create_tenant(conn, "hooks")
    key = ids.decode(ids.TENANT, created.id)
    assert key is not None
    return key


async def _endpoint(pool: Pool, tenant: uuid.UUID, url: str, events_: list[str], secret: str) -> uuid.UUID:
    endpoint = uuid.uuid4()
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, enabled_events, status, metadata, secret, "
            "consecutive_failed_deliveries, created_at) VALUES (%s, %s, %s, %s, 'enabled', %s, %s, 0, "
            "now() - interval '1 minute')",
            (endpoint, tenant, url, events_, Jsonb({}), secret))
    return endpoint


async def _events(pool: Pool, tenant: uuid.UUID, count: int, event_type: str = "payment.succeeded") -> list[uuid.UUID]:
    made = [uuid.uuid4() for _ in range(count)]
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO events (id, tenant_id, type, data, created_at) "
            "SELECT u, %s, %s, convert_to('{\"id\":\"pay_x\",\"object\":\"payment\"}', 'UTF8'), now() "
            "FROM unnest(%s::UUID[]) AS u", (tenant, event_type, made))
    return made


async def _rows(pool: Pool, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        return await (await conn.execute(query, params)).fetchall()


async def test_the_sequencer_makes_one_delivery_per_matching_event_and_endpoint(own_pool: Pool) -> None:
    tenant = await _tenant(own_pool)
    secret = signing.new_secret()
    star = await _endpoint(own_pool, tenant, "http://127.0.0.1:9/a", ["*"], secret)
    refunds = await _endpoint(own_pool, tenant, "http://127.0.0.1:9/b", ["refund.succeeded"], secret)
    disabled = await _endpoint(own_pool, tenant, "http://127.0.0.1:9/c", ["*"], secret)
    await _rows(own_pool, "UPDATE webhook_endpoints SET status = 'disabled' WHERE id = %s RETURNING id", (disabled,))
    paid = await _events(own_pool, tenant, 3)
    refunded = await _events(own_pool, tenant, 2, "refund.succeeded")
    # Two sequencers at once (two API processes): each event is numbered and delivered once.
    await asyncio.gather(events.sequence_all(own_pool, POLICY), events.sequence_all(own_pool, POLICY))
    await events.sequence_all(own_pool, POLICY)
    rows = await _rows(own_pool, "SELECT endpoint_id, event_id, status, attempts, next_attempt_at IS NOT NULL "
                       "FROM webhook_deliveries WHERE tenant_id = %s", (tenant,))
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        [(star, e) for e in paid + refunded] + [(refunds, e) for e in refunded])
    assert all(r[2:] == ("pending", 0, True) for r in rows)
    await _rows(own_pool, "DELETE FROM webhook_deliveries WHERE tenant_id = %s RETURNING id", (tenant,))


async def test_leases_are_never_shared_and_a_crashed_lease_runs_out(own_pool: Pool) -> None:
    tenant = await _tenant(own_pool)
    await _endpoint(own_pool, tenant, "http://127.0.0.1:9/x", ["*"], signing.new_secret())
    await _events(own_pool, tenant, 40)
    await events.sequence_all(own_pool, POLICY)

    crashed = Deliverer(own_pool, _config(), lease_s=1.5)
    other = Deliverer(own_pool, _config(), lease_s=1.5)
    first, second = await asyncio.gather(crashed.lease(25), other.lease(25))
    taken_first = {job.delivery_id for job in first}
    taken_second = {job.delivery_id for job in second}
    assert not taken_first & taken_second, "two deliverers leased the same delivery"
    assert len(taken_first | taken_second) == 40
    # Everything is leased: nothing more is due until the leases run out.
    assert await other.lease(50) == []
    await asyncio.sleep(1.7)
    # The "crashed" deliverer never recorded: its deliveries are due again, and another takes them.
    again = await other.lease(50)
    assert {job.delivery_id for job in again} == taken_first | taken_second
    # A stale lease's result is ignored: the row belongs to the newer lease.
    stale = first[0]
    await crashed.record(stale, Outcome(True, 200, None))
    (status, attempts), = await _rows(own_pool, "SELECT status, attempts FROM webhook_deliveries WHERE id = %s",
                                      (stale.delivery_id,))
    assert (status, attempts) == ("pending", 0)
    fresh = next(job for job in again if job.delivery_id == stale.delivery_id)
    await other.record(fresh, Outcome(True, 200, None))
    (status, attempts), = await _rows(own_pool, "SELECT status, attempts FROM webhook_deliveries WHERE id = %s",
                                      (stale.delivery_id,))
    assert (status, attempts) == ("succeeded", 1)
    await _rows(own_pool, "DELETE FROM webhook_deliveries WHERE tenant_id = %s RETURNING id", (tenant,))


async def test_a_deliverer_killed_mid_attempt_loses_nothing(own_pool: Pool) -> None:
    """A deliverer task cancelled while its receiver hangs (as a killed process would stop); a second
    deliverer delivers everything once the lease runs out."""
    tenant = await _tenant(own_pool)
    hanging = True

    def behaviour(_request: Received) -> Answer:
        return HANG if hanging else OK

    async with Receiver(behaviour) as receiver:
        secret = signing.new_secret()
        await _endpoint(own_pool, tenant, receiver.url, ["*"], secret)
        made = await _events(own_pool, tenant, 5)
        await events.sequence_all(own_pool, POLICY)
        doomed = Deliverer(own_pool, _config(timeout_s=30.0), lease_s=1.0)
        task = asyncio.create_task(doomed.run_forever())
        await receiver.wait_for(5, timeout_s=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hanging = False
        survivor = Deliverer(own_pool, _config())
        runner = asyncio.create_task(survivor.run_forever())
        try:
            async with asyncio.timeout(15):
                while True:
                    rows = await _rows(own_pool, "SELECT count(*) FROM webhook_deliveries WHERE tenant_id = %s "
                                       "AND status = 'succeeded'", (tenant,))
                    if rows[0][0] == 5:
                        break
                    await asyncio.sleep(0.05)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        delivered = {r.headers["webhook-id"] for r in receiver.received[5:]}
        assert delivered == {ids.encode(ids.EVENT, e) for e in made}
        for request in receiver.received[5:]:
            Webhook(secret).verify(request.body, request.headers)


def _job(url: str) -> Job:
    return Job(delivery_id=uuid.uuid4(), lease_id=uuid.uuid4(), attempt=1, endpoint_id=uuid.uuid4(), url=url,
               endpoint_status="enabled", endpoint_deleted=False, secrets=(signing.new_secret(),),
               event_id=ids.encode(ids.EVENT, uuid.uuid4()), body=b"{}")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:{port}/", "http://127.0.0.1:{port}/", "https://localhost:{port}/",
    "https://[::1]:{port}/", "https://[::ffff:127.0.0.1]:{port}/", "https://10.0.0.1:{port}/",
    "https://169.254.169.254/",
])
async def test_each_attempt_refuses_non_public_addresses_before_connecting(url: str) -> None:
    """The attempt-time check (an endpoint stored while allowed, or a name re-pointed at a private
    address after creation, as DNS rebinding does): nothing reaches the receiver."""
    async with Receiver() as receiver:
        config = _config(allow_private=False)
        async with make_client(config) as client:
            outcome = await attempt(client, _job(url.format(port=receiver.port)), config)
        assert not outcome.succeeded and outcome.status_code is None
        assert outcome.error is not None and outcome.error.startswith("refused:"), outcome.error
        assert receiver.received == []


async def test_every_resolved_address_is_checked_and_the_checked_one_is_called() -> None:
    target = ssrf.parse("https://localhost:8443/hook?x=1", allow_private=True)
    addresses = await ssrf.resolve(target)
    assert addresses and all(not ssrf.is_public(a) for a in addresses)
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.check_addresses([ipaddress.ip_address("93.184.216.34"), *addresses], allow_private=False)
    ssrf.check_addresses([ipaddress.ip_address("93.184.216.34")], allow_private=False)
    assert (target.host, target.port, target.path) == ("localhost", 8443, "/hook?x=1")
    # A name that resolves to loopback is called at the address checked, with its own Host header.
    async with Receiver() as receiver:
        config = _config()
        async with make_client(config) as client:
            outcome = await attempt(client, _job(f"http://localhost:{receiver.port}/named"), config)
        assert outcome == Outcome(True, 200, None)
        (request,) = receiver.received
        assert request.headers["host"] == f"localhost:{receiver.port}" and request.path == "/named"


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.1.1.1", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.1.1", False), ("100.64.0.1", False),
    ("0.0.0.0", False),  # noqa: S104 - an address to judge, not to bind
    ("255.255.255.255", False), ("224.0.0.251", False), ("240.0.0.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True), ("2002:7f00:1::", False), ("64:ff9b::7f00:1", False),
])
def test_public_addresses(address: str, public: bool) -> None:
    assert ssrf.is_public(ipaddress.ip_address(address)) is public


def test_signature_matches_the_standard_webhooks_reference() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    # The example of the Standard Webhooks specification.
    assert signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()))}
    other = signing.new_secret()
    headers["webhook-signature"] = signing.signature_header([secret, other], "msg_1", int(headers["webhook-timestamp"]),
                                                            body)
    Webhook(secret).verify(body, headers)
    Webhook(other).verify(body, headers)


async def test_paysvc_webhooks_run_delivers_in_a_process_of_its_own(own_pool: Pool, own_database: str) -> None:
    tenant = await _tenant(own_pool)
    async with Receiver() as receiver:
        secret = signing.new_secret()
        await _endpoint(own_pool, tenant, receiver.url, ["*"], secret)
        made = await _events(own_pool, tenant, 3)  # numbered by the process itself
        env = {**os.environ, "PAYSVC_DATABASE_URL": own_database, "PAYSVC_WEBHOOK_ALLOW_PRIVATE": "true",
               "PAYSVC_EVENTS_SEQUENCE_INTERVAL_MS": "100", "PAYSVC_POOL_SIZE": "2"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; from paysvc.cli import main; sys.exit(main())", "webhooks", "run",
            env=env, stderr=asyncio.subprocess.PIPE)
        try:
            received = await receiver.wait_for(3, timeout_s=30)
        finally:
            process.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert {r.headers["webhook-id"] for r in received} == {ids.encode(ids.EVENT, e) for e in made}
        for request in received:
            Webhook(secret).verify(request.body, request.headers)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A CA, and a certificate for localhost it signed (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=paysvc test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    return str(d / "ca.pem"), str(d / "leaf.pem"), str(d / "leaf.key")


async def test_https_attempts_verify_the_certificate_for_the_urls_host(tls_files: tuple[str, str, str]) -> None:
    """The attempt connects to the checked address, yet TLS names and verifies the URL's host."""
    ca, cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with Receiver(tls=server_tls) as receiver:
        config = _config()
        trusting = ssl.create_default_context(cafile=ca)
        async with make_client(config, verify=trusting) as client:
            outcome = await attempt(client, _job(f"https://localhost:{receiver.port}/tls"), config)
            assert outcome == Outcome(True, 200, None)
            (request,) = receiver.received
            assert request.headers["host"] == f"localhost:{receiver.port}" and request.path == "/tls"
            # The certificate names localhost, not 127.0.0.1: an IP URL fails verification.
            outcome = await attempt(client, _job(f"https://127.0.0.1:{receiver.port}/tls"), config)
            assert not outcome.succeeded and outcome.status_code is None, outcome
        # The system's CAs do not know the test CA: verification fails, nothing is sent.
        async with make_client(config) as client:
            outcome = await attempt(client, _job(f"https://localhost:{receiver.port}/tls"), config)
        assert not outcome.succeeded and outcome.error is not None and "CERTIFICATE" in outcome.error.upper(), outcome
        assert len(receiver.received) == 1


def test_webhook_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"PAYSVC_WEBHOOK_RETRY_SCHEDULE_S": "1, 2,30", "PAYSVC_WEBHOOK_ALLOW_PRIVATE": "true",
                                  "PAYSVC_WEBHOOK_TIMEOUT_MS": "2500"})
    assert settings.webhook_retry_delays_s == (1, 2, 30)
    assert settings.webhook_allow_private is True and settings.webhook_timeout_ms == 2_500
    defaults = Settings()
    assert defaults.webhook_retry_delays_s == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert sum(defaults.webhook_retry_delays_s) > 86_400 * 0.9  # about a day in all
    assert (defaults.webhook_allow_private, defaults.webhook_timeout_ms, defaults.webhook_secret_overlap_s) == (
        False, 10_000, 86_400)
    assert Settings.from_env({"PAYSVC_WEBHOOK_RETRY_SCHEDULE_S": " "}).webhook_retry_delays_s == ()
    for name, value in (("RETRY_SCHEDULE_S", "5,x"), ("RETRY_SCHEDULE_S", "-1"), ("RETRY_SCHEDULE_S", "1.5"),
                        ("RETRY_SCHEDULE_S", ",".join(["1"] * 51)), ("TIMEOUT_MS", "0"), ("CONCURRENCY", "0"),
                        ("SECRET_OVERLAP_S", "-1"), ("POOL_SIZE", "0"), ("DISABLE_AFTER_FAILED_DELIVERIES", "-1")):
        with pytest.raises(SettingsError):
            Settings.from_env({f"PAYSVC_WEBHOOK_{name}": value})
