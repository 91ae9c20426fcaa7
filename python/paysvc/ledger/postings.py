"""Turn a list of postings into balance updates and ledger entries, exactly and in memory.

Works on account rows already locked (FOR UPDATE) in the current transaction: lock, then read,
then write. Every posting set sums to zero; no zero-amount entries; seq follows each account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from paysvc import ids

EntryKind = Literal["payment", "fee", "refund"]

# By primary key only (the caller drops rows of other tenants): a lookup through the tenant index
# would take SSI predicate locks on all of the tenant's index pages and conflict with every payment.
LOCK_ACCOUNTS = (
    "SELECT id, tenant_id, currency, allow_negative, posted, pending, entry_seq FROM accounts "
    "WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
)


# The same lock for the payment path (ledger/batching.py), which also reads what risk needs: the
# account's risk state and creation time.
LOCK_ACCOUNTS_WITH_RISK = (
    "SELECT id, tenant_id, currency, allow_negative, posted, pending, entry_seq, risk_state, created_at "
    "FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
)


@dataclass(slots=True)
class LockedAccount:
    id: uuid.UUID
    tenant_id: uuid.UUID
    currency: str
    allow_negative: bool
    posted: int
    pending: int
    entry_seq: int
    risk_state: bytes | None = None  # only read by LOCK_ACCOUNTS_WITH_RISK
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> LockedAccount:
        return cls(*row)

    @property
    def available(self) -> int:
        return self.posted - self.pending


def lock_rows_of_tenant(rows: list[tuple[Any, ...]], tenant_id: uuid.UUID) -> dict[uuid.UUID, LockedAccount]:
    """The locked accounts of this tenant; another tenant's account counts as missing."""
    accounts: dict[uuid.UUID, LockedAccount] = {}
    for row in rows:
        account = LockedAccount.from_row(row)
        if account.tenant_id == tenant_id:
            accounts[account.id] = account
    return accounts


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: uuid.UUID
    kind: EntryKind
    amount: int  # signed: credit +, debit -


@dataclass(slots=True)
class Writes:
    """Arrays for one ``UPDATE accounts … FROM unnest`` and one ``INSERT INTO entries … unnest``."""

    account_ids: list[uuid.UUID]
    posted_deltas: list[int]
    pending_deltas: list[int]
    entry_seqs: list[int]
    entry_ids: list[uuid.UUID]
    entry_accounts: list[uuid.UUID]
    entry_seq_values: list[int]
    entry_kinds: list[str]
    entry_amounts: list[int]
    entry_balances: list[int]

    def params(self) -> dict[str, object]:
        return {
            "acct_ids": self.account_ids,
            "posted_deltas": self.posted_deltas,
            "pending_deltas": self.pending_deltas,
            "acct_seqs": self.entry_seqs,
            "e_ids": self.entry_ids,
            "e_accounts": self.entry_accounts,
            "e_seqs": self.entry_seq_values,
            "e_kinds": self.entry_kinds,
            "e_amounts": self.entry_amounts,
            "e_balances": self.entry_balances,
        }


def apply(
    accounts: dict[uuid.UUID, LockedAccount],
    postings: list[Posting],
    pending_deltas: dict[uuid.UUID, int] | None = None,
) -> Writes:
    """Apply postings (and hold changes) to the locked rows; return what to write.

    Mutates ``accounts`` so the caller sees the new balances. Asserts the invariants it can see.
    """
    assert sum(p.amount for p in postings) == 0, "a posting set must sum to zero"
    pending = pending_deltas or {}
    touched: dict[uuid.UUID, tuple[int, int]] = {}  # id -> (posted delta, pending delta)
    writes = Writes([], [], [], [], [], [], [], [], [], [])
    for posting in postings:
        assert posting.amount != 0, "no zero-amount entries"
        account = accounts[posting.account_id]
        account.posted += posting.amount
        account.entry_seq += 1
        posted_delta, pending_delta = touched.get(account.id, (0, 0))
        touched[account.id] = (posted_delta + posting.amount, pending_delta)
        writes.entry_ids.append(ids.new_uuid())
        writes.entry_accounts.append(account.id)
        writes.entry_seq_values.append(account.entry_seq)
        writes.entry_kinds.append(posting.kind)
        writes.entry_amounts.append(posting.amount)
        writes.entry_balances.append(account.posted)
    for account_id, delta in pending.items():
        if delta == 0:
            continue
        account = accounts[account_id]
        account.pending += delta
        assert account.pending >= 0, "pending never goes below zero"
        posted_delta, pending_delta = touched.get(account_id, (0, 0))
        touched[account_id] = (posted_delta, pending_delta + delta)
    for account_id, (posted_delta, pending_delta) in sorted(touched.items()):
        account = accounts[account_id]
        assert account.allow_negative or account.available >= 0, "available never goes below zero"
        writes.account_ids.append(account_id)
        writes.posted_deltas.append(posted_delta)
        writes.pending_deltas.append(pending_delta)
        writes.entry_seqs.append(account.entry_seq)
    return writes


def no_writes() -> Writes:
    return Writes([], [], [], [], [], [], [], [], [], [])
