"""Training rows from a simulated stream, through the SAME Rust functions the service scores with.

The stream is replayed in time order: before each payment, ``risk_features`` computes its vector from the
source's and the destination's current risk state (exactly what the live risk step does inside the batch);
then ``risk_state_record`` records the payment into both states with the outcome the simulator gave it
(what the batch's write statement stores). So a training row and a served row cannot differ in definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from paysvc import _native
from paysvc.risk.offline.dataset import LEGIT, Payment
from paysvc.risk.offline.progress import Progress
from paysvc.risk.offline.simulate import DAY_S, REPORT_WINDOW_S

WARMUP_S: Final = 3 * DAY_S  # velocity features need history: the first days are replayed, not trained on

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Table:
    """One row per payment: the feature vector, the eventual label and when it became known."""

    names: list[str]
    x: Floats
    y: Ints
    time_s: Ints
    label_time_s: Ints
    scenario: npt.NDArray[np.str_]

    def rows(self, mask: npt.NDArray[np.bool_]) -> Table:
        return Table(self.names, self.x[mask], self.y[mask], self.time_s[mask], self.label_time_s[mask],
                     self.scenario[mask])

    def __len__(self) -> int:
        return len(self.y)


def replay(payments: Sequence[Payment], *, show_progress: bool | None = None) -> Table:
    names = list(_native.risk_feature_names())
    x = np.empty((len(payments), len(names)), dtype=np.float64)
    states: dict[bytes, bytes] = {}  # account UUID -> its risk state (one per account, whichever side it is on)
    last_s = -1
    with Progress("features", len(payments), enabled=show_progress) as bar:
        for i, p in enumerate(payments):
            if p.time_s < last_s:
                raise ValueError("the payments must be in time order (the state only moves forward)")
            last_s = p.time_s
            source, destination = bytes.fromhex(p.source), bytes.fromhex(p.destination)
            source_state, destination_state = states.get(source), states.get(destination)
            x[i] = _native.risk_features(
                p.amount_minor, p.currency, p.capture, source, destination,
                source_state, p.source_created_s, destination_state, p.destination_created_s,
                p.time_s, p.metadata,
            )
            states[source] = _native.risk_state_record(
                source_state, p.time_s, as_source=True, counterparty_id=destination,
                amount_minor=p.amount_minor, outcome=p.outcome,
            )
            states[destination] = _native.risk_state_record(
                # a payment to oneself updates one state twice, as the service's batch does
                states[source] if destination == source else destination_state, p.time_s, as_source=False,
                counterparty_id=source, amount_minor=p.amount_minor, outcome=p.outcome,
            )
            if i % 1024 == 0:
                bar.set(i)
    return Table(
        names=names, x=x,
        y=np.fromiter((p.label for p in payments), dtype=np.int64, count=len(payments)),
        time_s=np.fromiter((p.time_s for p in payments), dtype=np.int64, count=len(payments)),
        label_time_s=np.fromiter((p.label_time_s for p in payments), dtype=np.int64, count=len(payments)),
        scenario=np.array([p.scenario for p in payments], dtype=np.str_),
    )


@dataclass(frozen=True)
class Split:
    """Train on ``[train_start_s, train_end_s)`` with the labels known by ``test_start_s`` (when the model is
    trained); skip the gap ``[train_end_s, test_start_s)`` (as long as the label delay, so no test payment's
    story leaks into training); test on ``[test_start_s, end)`` with the eventual labels."""

    train_start_s: int
    train_end_s: int
    test_start_s: int

    @staticmethod
    def of(table: Table, *, test_days: int, gap_s: int = REPORT_WINDOW_S) -> Split:
        first_s, last_s = int(table.time_s.min()), int(table.time_s.max())
        test_start_s = last_s + 1 - test_days * DAY_S
        split = Split(train_start_s=first_s + WARMUP_S, train_end_s=test_start_s - gap_s, test_start_s=test_start_s)
        if split.train_end_s <= split.train_start_s + DAY_S:
            days = (last_s - first_s) // DAY_S + 1
            raise ValueError(
                f"{days} days of data leave no training period: warm-up {WARMUP_S // DAY_S} d + gap "
                f"{gap_s // DAY_S} d + test {test_days} d (simulate more days or pass a smaller --test-days)")
        return split

    def train(self, table: Table) -> Table:
        rows = table.rows((table.time_s >= self.train_start_s) & (table.time_s < self.train_end_s))
        # a fraud reported after the model was trained was, at training time, a payment with no report
        known = (rows.y == 1) & (rows.label_time_s < self.test_start_s)
        return Table(rows.names, rows.x, known.astype(np.int64), rows.time_s, rows.label_time_s, rows.scenario)

    def test(self, table: Table) -> Table:
        return table.rows(table.time_s >= self.test_start_s)


def scenario_names(table: Table) -> list[str]:
    return sorted(str(s) for s in set(table.scenario.tolist()) if s != LEGIT)
