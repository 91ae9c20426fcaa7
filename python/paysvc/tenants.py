"""What an authenticated request knows about its tenant: id and fee schedule (read in the one
authentication query, so the Rust core can compute the fee before the money transaction starts)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

FeeRuleTuple = tuple[int, int, int | None, int | None]  # percent_bps, fixed, min, max


@dataclass(frozen=True, slots=True)
class Tenant:
    id: uuid.UUID
    key_hash: bytes
    fee_rules: dict[str, FeeRuleTuple] = field(default_factory=dict)
    fee_accounts: dict[str, uuid.UUID] = field(default_factory=dict)

    def fee_rule(self, currency: str) -> FeeRuleTuple | None:
        return self.fee_rules.get(currency.upper())
