"""Locust scenarios for paysvc (how to run them: loadtest/README.md).

User classes: name one on the command line (``locust -f loadtest/locustfile.py … SteadyUser``).

- ``SteadyUser``: the steady mix. Payments between random customers, holds then capture or cancel,
  partial refunds, declines, idempotent replays, balance and payment reads, payment listings, and
  tailing the event feed.
- ``HotMerchantUser``: the hot merchant. Every payment (and every captured hold) credits one merchant
  account, so its row is the contention point; the merchant also refunds and reads its balance and entries.

Shape: ``SpikeShape`` (baseline ``-u`` users, ``--spike-factor`` times as many for a short window, then
back to baseline, for ``-t``). Locust uses a shape as soon as the locustfile exposes one, so it is
active only with ``PAYSVC_LOAD_SHAPE=spike`` in the environment.

Once per run (the ``test_start`` event in the master or the single process) a tenant, a fee schedule,
a funding account, ``--customers`` funded customer accounts and a merchant account are created through
the API with the admin token from ``PAYSVC_ADMIN_TOKEN``; with ``--processes`` the master hands them to
its workers in a message.

Outcomes: 402 ``insufficient_funds`` and 409 ``invalid_state`` where a scenario provokes them are
expected (reported under the request's name with the status appended, not as failures); any other
4xx, every 5xx and connection errors are failures. Requests are named by route template
(``/v1/payments/[id]/capture``), so the statistics have one row per route.

SLO gate (the ``quitting`` event): the exit code is 1 when the p99 of all requests exceeds
``--slo-p99-ms`` (default 250), the failure ratio exceeds ``--slo-fail-ratio`` (default 0.01), no request
was made, or a task raised; otherwise 0. Setup failing exits 2.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import uuid
from collections import deque
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust import log as locust_log
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from paysvc_load import fixture as world
from paysvc_load.slo import DEFAULT_FAIL_RATIO, DEFAULT_P99_MS, Limits, Totals, breaches, summary

log = logging.getLogger("paysvc.loadtest")

FIXTURE_MESSAGE = "paysvc_fixture"
FIXTURE_WAIT_S = 120
SHAPE_ENV = "PAYSVC_LOAD_SHAPE"

DECLINED = frozenset({(402, "insufficient_funds")})
INVALID_STATE = frozenset({(409, "invalid_state")})
NOTHING_EXPECTED: frozenset[tuple[int, str]] = frozenset()


# ---------------------------------------------------------------- options and the run's fixture

@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument("--customers", type=int, default=100, env_var="PAYSVC_LOAD_CUSTOMERS",
                        help="customer accounts created and funded before the run (default 100)")
    parser.add_argument("--deposit", type=int, default=10_000_000, env_var="PAYSVC_LOAD_DEPOSIT",
                        help="each customer's deposit in USD cents (default 10000000, $100,000)")
    parser.add_argument("--slo-p99-ms", type=float, default=DEFAULT_P99_MS, env_var="PAYSVC_SLO_P99_MS",
                        help=f"SLO gate: p99 of all requests, in ms (default {DEFAULT_P99_MS:g})")
    parser.add_argument("--slo-fail-ratio", type=float, default=DEFAULT_FAIL_RATIO, env_var="PAYSVC_SLO_FAIL_RATIO",
                        help=f"SLO gate: failures / requests (default {DEFAULT_FAIL_RATIO:g})")
    parser.add_argument("--spike-factor", type=float, default=10.0, env_var="PAYSVC_SPIKE_FACTOR",
                        help="SpikeShape: users during the spike, as a multiple of -u (default 10)")
    parser.add_argument("--spike-at", type=float, default=None, env_var="PAYSVC_SPIKE_AT_S",
                        help="SpikeShape: seconds into the run the spike starts (default a third of -t)")
    parser.add_argument("--spike-for", type=float, default=None, env_var="PAYSVC_SPIKE_FOR_S",
                        help="SpikeShape: seconds the spike lasts (default a sixth of -t)")


class _Shared:
    """The fixture of the current run, in every process that runs users."""

    fixture: world.Fixture | None = None
    error: str | None = None
    ready = Event()

    @classmethod
    def publish(cls, fixture: world.Fixture | None, error: str | None) -> None:
        cls.fixture, cls.error = fixture, error
        cls.ready.set()


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(FIXTURE_MESSAGE, _on_fixture_message)


def _on_fixture_message(environment: Any, msg: Any, **_: Any) -> None:
    data = msg.data
    if data.get("error"):
        _Shared.publish(None, data["error"])
    else:
        _Shared.publish(world.Fixture.from_message(data), None)


@events.test_start.add_listener
def _create_fixture(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return  # the master creates the fixture and sends it
    _Shared.ready.clear()
    opts = environment.parsed_options
    host = environment.host or ""
    try:
        if not host:
            raise world.SetupError("no --host given")
        fixture = world.create(host, os.environ.get("PAYSVC_ADMIN_TOKEN", ""), opts.customers, opts.deposit)
    except world.SetupError as exc:
        message = f"setup failed: {exc}"
        log.error(message)
        _Shared.publish(None, message)
        if isinstance(runner, MasterRunner):
            runner.send_message(FIXTURE_MESSAGE, {"error": message})
        environment.process_exit_code = 2
        gevent.spawn_later(0.5, runner.quit)
        return
    log.info("fixture: %d customers funded with %d cents each, merchant %s",
             len(fixture.customers), opts.deposit, fixture.merchant)
    _Shared.publish(fixture, None)
    if isinstance(runner, MasterRunner):
        runner.send_message(FIXTURE_MESSAGE, fixture.to_message())


# ---------------------------------------------------------------- the SLO gate

_verdict: list[str] = []


@events.quitting.add_listener
def _slo_gate(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the aggregated statistics
    if environment.process_exit_code is not None:
        return  # setup failed: that exit code stands
    opts = environment.parsed_options
    limits = Limits(p99_ms=opts.slo_p99_ms, fail_ratio=opts.slo_fail_ratio)
    total = environment.stats.total
    totals = Totals(
        requests=total.num_requests,
        failures=total.num_failures,
        p99_ms=float(total.get_response_time_percentile(0.99)) if total.num_requests else 0.0,
        rps=total.total_rps,
        exceptions=sum(row["count"] for row in environment.runner.exceptions.values())
        + int(locust_log.unhandled_greenlet_exception),
    )
    line = summary(totals, limits)
    _verdict.append(line)
    # Set in both cases: locust's own rule would exit 1 on any failure at all, expected or not.
    environment.process_exit_code = 1 if breaches(totals, limits) else 0
    log.info(line)


@events.quit.add_listener
def _repeat_verdict(**_: Any) -> None:
    if _verdict:  # again after locust's final tables, so it is the last line of the run
        print(_verdict[-1], file=sys.stderr, flush=True)


# ---------------------------------------------------------------- users

def _error_code(response: Any) -> str:
    try:
        return str(response.json()["error"]["code"])
    except Exception:  # not our JSON error shape (a proxy's page, a cut connection)
        return ""


class PaysvcUser(FastHttpUser):
    abstract = True
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        if not _Shared.ready.wait(timeout=FIXTURE_WAIT_S) or _Shared.fixture is None:
            raise StopUser(f"no fixture ({_Shared.error or 'timed out waiting for it'}): the user stops")
        self.fx = _Shared.fixture
        self.auth = {"Authorization": f"Bearer {self.fx.api_key}"}
        self.rng = random.Random()
        # Captured payments this user may still refund: [id, refundable amount].
        self.captured: deque[list[Any]] = deque(maxlen=64)
        self.last_payment: tuple[str, dict[str, Any], int] | None = None  # key, body, status answered

    # -- requests

    def _call(self, method: str, path: str, name: str, *, body: dict[str, Any] | None = None,
              key: str | None = None, ok: tuple[int, ...] = (200,),
              expected: frozenset[tuple[int, str]] = NOTHING_EXPECTED) -> dict[str, Any] | None:
        """One request; its JSON body when the status is in ``ok``, else None. Statuses in ``expected``
        are successes reported as ``name [status code]``; anything else is a failure."""
        headers = dict(self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        with self.client.request(method, path, json=body, headers=headers, name=name,
                                 catch_response=True) as r:
            status = r.status_code
            if status in ok:
                try:
                    value: dict[str, Any] = r.json()
                except ValueError:
                    r.failure(f"{status} with a body that is not JSON")
                    return None
                r.success()
                return value
            if status == 0:
                r.failure(f"connection error: {type(r.error).__name__}")
                return None
            code = _error_code(r)
            if (status, code) in expected:
                r.request_meta["name"] = f"{name} [{status} {code}]"
                r.success()
            else:
                r.failure(f"unexpected {status} {code}".rstrip())
            return None

    def _two_customers(self) -> tuple[str, str]:
        source, destination = self.rng.sample(self.fx.customers, 2)
        return source, destination

    def _pay(self, source: str, destination: str, amount: int, *, capture: bool = True) -> dict[str, Any] | None:
        key = uuid.uuid4().hex
        body = {"amount": amount, "currency": world.CURRENCY, "source": source, "destination": destination,
                "capture": capture, "description": "load test", "metadata": {"scenario": type(self).__name__}}
        payment = self._call("POST", "/v1/payments", "/v1/payments", body=body, key=key, ok=(201,),
                             expected=DECLINED)
        self.last_payment = (key, body, 201 if payment else 402)
        if payment is not None and payment["status"] == "succeeded":
            self.captured.append([payment["id"], payment["amount_captured"]])
        return payment

    def _hold_then_capture_or_cancel(self, source: str, destination: str, capture_share: float) -> None:
        amount = self.rng.randint(500, 20_000)
        hold = self._pay(source, destination, amount, capture=False)
        if hold is None:
            return
        path = f"/v1/payments/{hold['id']}"
        if self.rng.random() < capture_share:
            captured = self.rng.randint(amount // 2, amount)
            payment = self._call("POST", f"{path}/capture", "/v1/payments/[id]/capture",
                                 body={"amount": captured}, key=uuid.uuid4().hex)
            if payment is not None:
                self.captured.append([payment["id"], payment["amount_captured"]])
        else:
            reason = self.rng.choice(["requested_by_customer", "abandoned", "duplicate"])
            self._call("POST", f"{path}/cancel", "/v1/payments/[id]/cancel", body={"reason": reason},
                       key=uuid.uuid4().hex)

    def _partial_refund(self) -> None:
        refundable = [row for row in self.captured if row[1] > 0]
        if not refundable:
            return
        row = self.rng.choice(refundable)
        amount = self.rng.randint(1, max(1, row[1] // 3))
        refund = self._call("POST", f"/v1/payments/{row[0]}/refunds", "/v1/payments/[id]/refunds",
                            body={"amount": amount}, key=uuid.uuid4().hex, ok=(201,), expected=DECLINED)
        if refund is not None:
            row[1] -= refund["amount"]


class SteadyUser(PaysvcUser):
    """The steady mix: money moves between random customers; reads and the event feed alongside."""

    def on_start(self) -> None:
        super().on_start()
        self.events_cursor: str | None = None

    @task(10)
    def payment(self) -> None:
        source, destination = self._two_customers()
        self._pay(source, destination, self.rng.randint(500, 20_000))

    @task(4)
    def hold_then_capture_or_cancel(self) -> None:
        self._hold_then_capture_or_cancel(*self._two_customers(), capture_share=0.7)

    @task(3)
    def partial_refund(self) -> None:
        self._partial_refund()

    @task(1)
    def declined_payment(self) -> None:
        source, destination = self._two_customers()
        self._pay(source, destination, 10**12)  # far more than any customer holds: 402, recorded as failed

    @task(1)
    def replayed_payment(self) -> None:
        """A client retrying: the same key and body again get the stored answer back."""
        if self.last_payment is None:
            return
        key, body, status = self.last_payment
        with self.client.post("/v1/payments", json=body, headers={**self.auth, "Idempotency-Key": key},
                              name="/v1/payments (replay)", catch_response=True) as r:
            replayed = (r.headers or {}).get("Idempotent-Replayed")
            if r.status_code == 0:
                r.failure(f"connection error: {type(r.error).__name__}")
            elif r.status_code != status or replayed != "true":
                r.failure(f"replay answered {r.status_code} (first answer {status}), Idempotent-Replayed={replayed}")
            else:
                r.success()

    @task(1)
    def cancel_after_capture(self) -> None:
        """A late cancel of a captured payment: 409 invalid_state is the right answer."""
        if not self.captured:
            return
        payment_id = self.rng.choice(self.captured)[0]
        self._call("POST", f"/v1/payments/{payment_id}/cancel", "/v1/payments/[id]/cancel", body={},
                   ok=(), expected=INVALID_STATE)

    @task(6)
    def balance(self) -> None:
        account = self.rng.choice(self.fx.customers)
        self._call("GET", f"/v1/accounts/{account}", "/v1/accounts/[id]")

    @task(2)
    def read_payment(self) -> None:
        if self.captured:
            payment_id = self.rng.choice(self.captured)[0]
            self._call("GET", f"/v1/payments/{payment_id}", "/v1/payments/[id]")

    @task(2)
    def list_payments(self) -> None:
        status = self.rng.choice(["", "&status=succeeded", "&status=failed"])
        self._call("GET", f"/v1/payments?limit=20{status}", "/v1/payments?limit=20")

    @task(2)
    def tail_events(self) -> None:
        after = f"&starting_after={self.events_cursor}" if self.events_cursor else ""
        page = self._call("GET", f"/v1/events?limit=100{after}", "/v1/events?limit=100")
        if page is not None and page["data"]:
            self.events_cursor = page["data"][-1]["id"]


class HotMerchantUser(PaysvcUser):
    """The hot merchant: every payment credits the same merchant account."""

    @task(10)
    def pay_merchant(self) -> None:
        self._pay(self.rng.choice(self.fx.customers), self.fx.merchant, self.rng.randint(500, 20_000))

    @task(3)
    def hold_then_capture(self) -> None:
        self._hold_then_capture_or_cancel(self.rng.choice(self.fx.customers), self.fx.merchant, capture_share=0.9)

    @task(2)
    def merchant_refund(self) -> None:
        self._partial_refund()  # the merchant pays part of a payment back: its account is debited

    @task(3)
    def merchant_balance(self) -> None:
        self._call("GET", f"/v1/accounts/{self.fx.merchant}", "/v1/accounts/[id]")

    @task(1)
    def merchant_entries(self) -> None:
        self._call("GET", f"/v1/accounts/{self.fx.merchant}/entries?limit=20", "/v1/accounts/[id]/entries")


# ---------------------------------------------------------------- the 10x spike

class SpikeShape(LoadTestShape):
    """Baseline ``-u`` users (reached at ``-r`` per second), then ``--spike-factor`` times as many
    from ``--spike-at`` for ``--spike-for`` seconds (they all arrive within about a second), then
    back to baseline until ``-t`` (default 90 s)."""

    # Locust picks up any concrete shape in the locustfile; this one only when asked for.
    abstract = os.environ.get(SHAPE_ENV, "").strip().lower() != "spike"
    use_common_options = True  # read -u, -r and -t

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        opts = self.runner.environment.parsed_options
        run_time = float(opts.run_time or 90)
        baseline = int(opts.num_users or 1)
        spawn_rate = float(opts.spawn_rate or 1)
        peak = max(baseline, round(baseline * opts.spike_factor))
        spike_at = opts.spike_at if opts.spike_at is not None else run_time / 3
        spike_for = opts.spike_for if opts.spike_for is not None else run_time / 6
        burst_rate = float(max(spawn_rate, peak - baseline))  # the whole step within about a second
        now = self.get_run_time()
        if now >= run_time:
            return None
        if now < spike_at:
            return baseline, spawn_rate
        if now < spike_at + spike_for:
            return peak, burst_rate
        return baseline, burst_rate
