"""The simulated dataset: one row per payment, in time order, as gzip-compressed CSV.

Columns: ``time_s, source, destination, source_created_s, destination_created_s, amount_minor, currency,
capture, outcome, metadata, label, scenario, label_time_s``. Accounts are the 32 hex digits of a UUID (the
bytes the Rust state and feature functions take); ``metadata`` is a JSON object of strings; ``outcome`` is
what the funds check did (``authorized`` or ``declined``); ``label`` is 1 for fraud; ``label_time_s`` is
when the label becomes known (a fraud report days later; for a legitimate payment, the end of the report
window, after which "no report" counts as legitimate).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

COLUMNS = (
    "time_s", "source", "destination", "source_created_s", "destination_created_s", "amount_minor",
    "currency", "capture", "outcome", "metadata", "label", "scenario", "label_time_s",
)
LEGIT = "legit"
SCENARIOS = ("card_testing", "account_takeover", "compromised_destination", "amount_outlier")


@dataclass(frozen=True, slots=True)
class Payment:
    time_s: int
    source: str
    destination: str
    source_created_s: int
    destination_created_s: int
    amount_minor: int
    currency: str
    capture: bool
    outcome: str
    metadata: dict[str, str]
    label: int
    scenario: str
    label_time_s: int


def write(path: Path, payments: Iterable[Payment]) -> int:
    """Write the rows; the gzip header carries no time or name, so one seed gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        text = io.TextIOWrapper(packed, encoding="utf-8", newline="")
        out = csv.writer(text, lineterminator="\n")
        out.writerow(COLUMNS)
        for p in payments:
            out.writerow((
                p.time_s, p.source, p.destination, p.source_created_s, p.destination_created_s, p.amount_minor,
                p.currency, int(p.capture), p.outcome, json.dumps(p.metadata, sort_keys=True, separators=(",", ":")),
                p.label, p.scenario, p.label_time_s,
            ))
            count += 1
        text.flush()
        text.detach()
    return count


def read(path: Path) -> list[Payment]:
    return list(iter_rows(path))


def iter_rows(path: Path) -> Iterator[Payment]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
        rows = csv.reader(text)
        header = next(rows, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path}: not a paysvc risk dataset (expected the columns {', '.join(COLUMNS)})")
        for row in rows:
            yield Payment(
                time_s=int(row[0]), source=row[1], destination=row[2], source_created_s=int(row[3]),
                destination_created_s=int(row[4]), amount_minor=int(row[5]), currency=row[6],
                capture=row[7] == "1", outcome=row[8], metadata=json.loads(row[9]), label=int(row[10]),
                scenario=row[11], label_time_s=int(row[12]),
            )
