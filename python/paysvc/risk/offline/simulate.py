"""A seeded payment simulator with known fraud scenarios (``paysvc risk simulate``).

In the spirit of the transaction simulator of Le Borgne et al., "Reproducible Machine Learning for Credit
Card Fraud Detection" (customers with spending profiles, terminals, a daily rhythm, fraud scenarios
injected with their labels) and of PaySim (account-to-account transfers, account takeover and mule
accounts). Legitimate customers pay a few favourite merchants, mostly during their waking hours; some
customers are dormant; some accounts are created during the simulated period (so "new" is not fraud by
itself). Legitimate look-alikes of each fraud pattern keep the problem honest: a few customers pay in quick
bursts of small amounts (top-ups), some payments are large for their payer, some of those go to a payee
never paid before (a new landlord), new merchants launch with a rush of distinct payers, most new customers
pay minutes after signing up, and new businesses move an opening balance and scripted test payments
between two accounts opened minutes before.
Four fraud scenarios are injected:

- ``card_testing``: a burst of many small payments, seconds apart, from one source (a fresh account or a
  compromised one) to one or two merchants; many are declined.
- ``account_takeover``: a dormant (sometimes a new) source suddenly drains several times its usual amount
  to a mule account created days before and never paid before.
- ``compromised_destination``: a destination (a new merchant, or a small existing one) is suddenly paid
  by many distinct sources within hours, each more than it usually pays (a launch's rush pays less).
- ``amount_outlier``: one payment far above its source's usual amount.

A fraud label becomes known days after the payment (``label_time_s``); a legitimate one when the report
window closes. The same seed and options give the same rows (and the same file bytes).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from paysvc.risk.offline.dataset import LEGIT, Payment, write
from paysvc.risk.offline.progress import Progress

START_S: Final = 1_767_225_600  # 2026-01-01T00:00:00Z: the simulated period starts here
DAY_S: Final = 86_400
HOUR_S: Final = 3_600
REPORT_WINDOW_S: Final = 7 * DAY_S  # a fraud report arrives within this; no report by then means legitimate
CURRENCIES: Final = (("USD", 0.8), ("EUR", 0.15), ("GBP", 0.05))
CHANNELS: Final = ("web", "app", "pos")


@dataclass(frozen=True)
class Options:
    seed: int = 1
    days: int = 84
    customers: int = 2_000
    merchants: int = 400
    # fraud incidents per day per 1,000 customers (each incident is one or more payments)
    card_testing_rate: float = 0.25
    account_takeover_rate: float = 1.0
    compromised_destination_rate: float = 0.2
    amount_outlier_rate: float = 1.5
    # legitimate look-alikes, per day per 1,000 customers: merchant launches, and merchants onboarding
    # (a new account's first small test payments from its owner's new account, minutes after both opened)
    merchant_launch_rate: float = 0.3
    onboarding_rate: float = 1.5


@dataclass
class Account:
    id: str
    created_s: int
    currency: str


@dataclass
class Customer(Account):
    mean_amount_minor: float = 4_000.0
    payments_per_day: float = 2.0
    peak_hour: float = 14.0
    dormant: bool = False
    bursty: bool = False  # sometimes tops up in quick bursts of small payments
    favourites: list[Account] = field(default_factory=list)


class Simulator:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.end_s = START_S + options.days * DAY_S
        self.payments: list[Payment] = []
        self.merchants: dict[str, list[Account]] = {}
        self.merchant_weights: dict[str, list[float]] = {}
        self.customers: list[Customer] = []

    # ---- building blocks -------------------------------------------------------------------------------

    def new_id(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex

    def currency(self) -> str:
        return self.rng.choices([c for c, _ in CURRENCIES], [w for _, w in CURRENCIES])[0]

    def poisson(self, mean: float) -> int:
        """Knuth's method for small means, a rounded normal for large ones (only counts of events per day)."""
        if mean <= 0:
            return 0
        if mean > 30:
            return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))
        limit, product, count = math.exp(-mean), self.rng.random(), 0
        while product > limit:
            product *= self.rng.random()
            count += 1
        return count

    def merchant(self, currency: str) -> Account:
        return self.rng.choices(self.merchants[currency], self.merchant_weights[currency])[0]

    def time_of_day_s(self, peak_hour: float) -> int:
        hour = self.rng.gauss(peak_hour, 3.0) % 24.0
        return int(hour * HOUR_S)

    def emit(
        self, time_s: int, source: Account, destination: Account, amount_minor: int, *, scenario: str,
        declined_probability: float, channel: str, capture: bool | None = None,
    ) -> None:
        if time_s >= self.end_s or time_s < max(source.created_s, destination.created_s):
            return
        fraud = scenario != LEGIT
        delay_s = min(max(int(self.rng.expovariate(1 / (2 * DAY_S))), 6 * HOUR_S), REPORT_WINDOW_S)
        self.payments.append(Payment(
            time_s=time_s, source=source.id, destination=destination.id, source_created_s=source.created_s,
            destination_created_s=destination.created_s, amount_minor=max(1, amount_minor),
            currency=source.currency,
            capture=capture if capture is not None else self.rng.random() < 0.9,
            outcome="declined" if self.rng.random() < declined_probability else "authorized",
            metadata={"channel": channel}, label=int(fraud), scenario=scenario,
            label_time_s=time_s + (delay_s if fraud else REPORT_WINDOW_S),
        ))

    # ---- the world -------------------------------------------------------------------------------------

    def build(self) -> None:
        rng = self.rng
        for currency, _ in CURRENCIES:
            self.merchants[currency] = []
        for _ in range(self.o.merchants):
            currency = self.currency()
            new = rng.random() < 0.05
            created_s = (START_S + rng.randrange(self.o.days * DAY_S) if new
                         else START_S - rng.randrange(30 * DAY_S, 1000 * DAY_S))
            self.merchants[currency].append(Account(self.new_id(), created_s, currency))
        for currency, _ in CURRENCIES:  # a currency no merchant drew gets one, so every customer can pay
            if not self.merchants[currency]:
                self.merchants[currency].append(Account(self.new_id(), START_S - 100 * DAY_S, currency))
            # popularity falls with rank (Zipf-like): a few merchants take much of the traffic
            self.merchant_weights[currency] = [1 / (rank + 1) ** 0.8 for rank in range(len(self.merchants[currency]))]
        for _ in range(self.o.customers):
            currency = self.currency()
            new = rng.random() < 0.15
            created_s = (START_S + rng.randrange(self.o.days * DAY_S) if new
                         else START_S - rng.randrange(DAY_S, 700 * DAY_S))
            dormant = rng.random() < 0.1
            customer = Customer(
                self.new_id(), created_s, currency,
                mean_amount_minor=math.exp(rng.gauss(math.log(4_000), 0.8)),
                payments_per_day=rng.uniform(0.02, 0.1) if dormant else math.exp(rng.gauss(math.log(2.0), 0.6)),
                peak_hour=rng.gauss(14.0, 2.5), dormant=dormant, bursty=not dormant and rng.random() < 0.03,
            )
            for _ in range(rng.randint(3, 12)):
                favourite = self.merchant(currency)
                if favourite not in customer.favourites:
                    customer.favourites.append(favourite)
            self.customers.append(customer)

    def legit(self, day: int) -> None:
        rng = self.rng
        day_s = START_S + day * DAY_S
        for customer in self.customers:
            if day_s <= customer.created_s < day_s + DAY_S and rng.random() < 0.6:
                # sign up, then buy at once: a new account's first payment minutes after it opened
                self.emit(customer.created_s + rng.randint(10, 30 * 60), customer, rng.choice(customer.favourites),
                          round(rng.lognormvariate(math.log(customer.mean_amount_minor), 0.5)), scenario=LEGIT,
                          declined_probability=0.01, channel=rng.choice(CHANNELS))
            for _ in range(self.poisson(customer.payments_per_day)):
                time_s = day_s + self.time_of_day_s(customer.peak_hour)
                destination = (rng.choice(customer.favourites) if rng.random() < 0.85
                               else self.merchant(customer.currency))
                amount = rng.lognormvariate(math.log(customer.mean_amount_minor), 0.5)
                if rng.random() < 0.004:  # a legitimate big payment: rare, but it exists
                    amount *= rng.uniform(3, 20)
                    if rng.random() < 0.4:  # ... to a payee never paid before (a new landlord, a contractor)
                        destination = Account(self.new_id(), time_s - rng.randrange(HOUR_S, 30 * DAY_S),
                                              customer.currency)
                self.emit(time_s, customer, destination, round(amount), scenario=LEGIT,
                          declined_probability=0.01, channel=rng.choice(CHANNELS))
            if customer.bursty and rng.random() < 0.15:  # a burst of small top-ups to one merchant
                time_s = day_s + self.time_of_day_s(customer.peak_hour)
                destination = rng.choice(customer.favourites)
                for _ in range(rng.randint(4, 14)):
                    time_s += rng.randint(10, 240)
                    self.emit(time_s, customer, destination, rng.choice((100, 200, 500, 1000)), scenario=LEGIT,
                              declined_probability=0.05, channel="app")

    def active_customer(self, currency: str | None = None) -> Customer:
        while True:
            customer = self.rng.choice(self.customers)
            if not customer.dormant and (currency is None or customer.currency == currency):
                return customer

    def card_testing(self, day_s: int) -> None:
        rng = self.rng
        start_s = day_s + rng.randrange(DAY_S)
        if rng.random() < 0.6:  # a fresh account opened for the attack
            source: Account = Account(self.new_id(), start_s - rng.randrange(60, 2 * HOUR_S), self.currency())
        else:  # a compromised existing one
            source = self.active_customer()
        targets = [self.merchant(source.currency) for _ in range(rng.randint(1, 2))]
        time_s = start_s
        for _ in range(rng.randint(10, 40)):
            time_s += rng.randint(3, 40)
            amount = rng.choice((50, 99, 100, 100, 150, 200, 250, 500)) + rng.choice((0, 0, 0, 1, 9))
            self.emit(time_s, source, rng.choice(targets), amount, scenario="card_testing",
                      declined_probability=0.5, channel="web")

    def account_takeover(self, day_s: int) -> None:
        rng = self.rng
        start_s = day_s + rng.randrange(DAY_S)
        dormant = [c for c in self.customers if c.dormant and c.created_s < start_s]
        if rng.random() < 0.75 and dormant:
            source: Customer = rng.choice(dormant)
        elif rng.random() < 0.5:
            source = self.active_customer()
        else:  # a new account, opened with stolen credentials and funded
            source = Customer(self.new_id(), start_s - rng.randrange(HOUR_S, 3 * DAY_S), self.currency())
        if rng.random() < 0.7:  # a mule account opened for the drain
            mule = Account(self.new_id(), start_s - rng.randrange(HOUR_S // 2, 3 * DAY_S), source.currency)
        else:  # an established account used as a mule
            mule = self.merchant(source.currency)
        time_s = start_s
        for drain in range(rng.randint(1, 4)):
            time_s += rng.randint(60, 20 * 60)
            amount = round(source.mean_amount_minor * rng.uniform(8, 30), -2)
            self.emit(time_s, source, mule, int(amount), scenario="account_takeover",
                      declined_probability=0.1 + 0.2 * drain, channel="app", capture=True)

    def compromised_destination(self, day_s: int) -> None:
        rng = self.rng
        start_s = day_s + rng.randrange(DAY_S)
        currency = self.currency()
        if rng.random() < 0.8:
            destination = Account(self.new_id(), start_s - rng.randrange(DAY_S, 14 * DAY_S), currency)
        else:  # a small existing merchant (the least popular half) taken over
            pool = self.merchants[currency]
            destination = pool[rng.randrange(len(pool) // 2, len(pool))] if len(pool) > 1 else pool[0]
        window_s = rng.randint(1, 6) * HOUR_S
        payers: list[Customer] = []
        for _ in range(rng.randint(15, 50)):
            payer = self.active_customer(currency)
            if payer not in payers:
                payers.append(payer)
        for payer in payers:  # the fraudster's goods cost more than what the payer usually buys
            amount = payer.mean_amount_minor * rng.uniform(1.5, 5.0)
            self.emit(start_s + rng.randrange(window_s), payer, destination, round(amount),
                      scenario="compromised_destination", declined_probability=0.02, channel=rng.choice(CHANNELS))

    def merchant_launch(self, day_s: int) -> None:
        """Legitimate: a new merchant's opening sale, many distinct payers within hours."""
        rng = self.rng
        start_s = day_s + rng.randrange(DAY_S)
        currency = self.currency()
        destination = Account(self.new_id(), start_s - rng.randrange(HOUR_S, 10 * DAY_S), currency)
        window_s = rng.randint(2, 8) * HOUR_S
        for _ in range(rng.randint(15, 60)):
            payer = self.active_customer(currency)
            amount = payer.mean_amount_minor * rng.uniform(0.3, 1.5)  # an opening sale: usual or lower
            self.emit(start_s + rng.randrange(window_s), payer, destination, round(amount), scenario=LEGIT,
                      declined_probability=0.01, channel=rng.choice(CHANNELS))

    def onboarding(self, day_s: int) -> None:
        """Legitimate: a business opens two accounts and moves money between them at once: often an opening
        balance, then test payments, seconds apart when a script runs them (an integration test against
        the API looks exactly like this). Card testing hits established merchants, not a new account."""
        rng = self.rng
        opened_s = day_s + rng.randrange(DAY_S)
        currency = self.currency()
        owner = Account(self.new_id(), opened_s, currency)
        merchant = Account(self.new_id(), opened_s + rng.randint(1, 600), currency)
        time_s = merchant.created_s
        if rng.random() < 0.4:  # the opening balance
            time_s += rng.randint(1, 10 * 60)
            self.emit(time_s, owner, merchant, rng.choice((1, 2, 5, 10, 50, 100)) * 10_000, scenario=LEGIT,
                      declined_probability=0.02, channel="web")
        scripted = rng.random() < 0.5
        for _ in range(rng.randint(1, 12) if scripted else rng.randint(1, 3)):
            time_s += rng.randint(0, 20) if scripted else rng.randint(5, 30 * 60)
            self.emit(time_s, owner, merchant, rng.choice((1, 10, 50, 100, 100, 200, 500, 1000, 2000, 5000)),
                      scenario=LEGIT, declined_probability=0.1, channel=rng.choice(CHANNELS))

    def amount_outlier(self, day_s: int) -> None:
        rng = self.rng
        customer = self.active_customer()
        amount = customer.mean_amount_minor * rng.uniform(10, 40)
        self.emit(day_s + self.time_of_day_s(customer.peak_hour), customer, self.merchant(customer.currency),
                  round(amount), scenario="amount_outlier", declined_probability=0.05, channel=rng.choice(CHANNELS))

    def run(self, progress: Progress | None = None) -> list[Payment]:
        self.build()
        per_thousand = self.o.customers / 1000
        scenarios: list[tuple[float, Callable[[int], None]]] = [
            (self.o.card_testing_rate, self.card_testing),
            (self.o.account_takeover_rate, self.account_takeover),
            (self.o.compromised_destination_rate, self.compromised_destination),
            (self.o.amount_outlier_rate, self.amount_outlier),
            (self.o.merchant_launch_rate, self.merchant_launch),
            (self.o.onboarding_rate, self.onboarding),
        ]
        for day in range(self.o.days):
            self.legit(day)
            for rate, inject in scenarios:
                for _ in range(self.poisson(rate * per_thousand)):
                    inject(START_S + day * DAY_S)
            if progress is not None:
                progress.update()
        # stable sort: rows of the same second keep their generation order, so the output is deterministic
        self.payments.sort(key=lambda p: p.time_s)
        return self.payments


def simulate(options: Options, *, show_progress: bool | None = None) -> list[Payment]:
    with Progress("simulate", options.days, enabled=show_progress) as bar:
        return Simulator(options).run(bar)


def main(options: Options, out: Path) -> dict[str, int]:
    """Simulate and write ``out``; the counts per scenario (printed by the command)."""
    payments = simulate(options)
    write(out, payments)
    counts: dict[str, int] = {"payments": len(payments)}
    for p in payments:
        counts[p.scenario] = counts.get(p.scenario, 0) + 1
    return counts
