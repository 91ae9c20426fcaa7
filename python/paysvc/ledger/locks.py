"""In-process, per-row locks (accounts, and payments for their transitions) taken in id order before
a money transaction starts.

They are not what keeps money safe (SERIALIZABLE transactions and CHECK constraints are). They stop
transactions of ONE process from racing for the same row, which on PostgreSQL would make all but
one of them fail with 40001 and retry. Across processes, the database still decides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager


class AccountLocks:
    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._users: dict[uuid.UUID, int] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, account_ids: Sequence[uuid.UUID]) -> AsyncIterator[None]:
        ordered = sorted(set(account_ids))
        for account_id in ordered:
            self._users[account_id] = self._users.get(account_id, 0) + 1
            self._locks.setdefault(account_id, asyncio.Lock())
        acquired: list[asyncio.Lock] = []
        try:
            for account_id in ordered:
                lock = self._locks[account_id]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()
            for account_id in ordered:
                left = self._users[account_id] - 1
                if left == 0:
                    del self._users[account_id]
                    del self._locks[account_id]
                else:
                    self._users[account_id] = left
