"""Per-process cache of each tenant's risk policy: settings, rules and models compiled into one
native ``RiskPolicy``, used by every payment of the tenant in this process.

An entry is used for at most ``TTL_S`` after the read that built it began, so a PUT in any process
is seen everywhere within a second; a PUT in this process drops the entry at once. A refresh is one
read (one statement) per tenant per second per process, shared by the requests that wait for
it; the payment's own transaction never reads settings.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from dataclasses import dataclass
from functools import partial

from paysvc._native import RiskPolicy
from paysvc.db.pool import Pool
from paysvc.resources import RiskRule, RiskRules, RiskSettings
from paysvc.risk import store
from paysvc.risk.registry import ModelRegistry

TTL_S = 1.0


@dataclass(frozen=True, slots=True)
class TenantRisk:
    """What the payment path needs: the compiled policy, and the rules as the API shows them (the
    policy's ``rule_index`` points into ``rules``)."""

    policy: RiskPolicy
    rules: list[RiskRule]
    settings: RiskSettings


def compile_policy(tenant_id: uuid.UUID, settings: RiskSettings, rules: RiskRules, models: ModelRegistry) -> TenantRisk:
    challenger = settings.challenger
    policy = RiskPolicy(
        tenant_id=tenant_id.bytes,
        mode=settings.mode,
        elevated=settings.thresholds.elevated,
        highest=settings.thresholds.highest,
        rules=[(rule.id, rule.action, rule.predicate) for rule in rules.rules],
        champion=models.get(settings.champion),
        challenger=None if challenger is None else models.get(challenger.model),
        challenger_percent=0 if challenger is None else challenger.percent,
        challenger_id=None if challenger is None else challenger.model,
        shadows=[m for m in (models.get(s) for s in settings.shadow_models) if m is not None],
    )
    return TenantRisk(policy=policy, rules=list(rules.rules), settings=settings)


class RiskCache:
    def __init__(self, pool: Pool, models: ModelRegistry, ttl_s: float = TTL_S) -> None:
        self.pool = pool
        self.models = models
        self.ttl_s = ttl_s
        self._entries: dict[uuid.UUID, tuple[float, TenantRisk]] = {}
        self._loading: dict[uuid.UUID, asyncio.Task[TenantRisk]] = {}
        self._forgotten = 0  # bumped by forget(): a read begun before it is not kept

    def cached(self, tenant_id: uuid.UUID) -> TenantRisk | None:
        """The fresh entry, without awaiting (the payment path's fast case)."""
        entry = self._entries.get(tenant_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl_s:
            return entry[1]
        return None

    async def get(self, tenant_id: uuid.UUID) -> TenantRisk:
        fresh = self.cached(tenant_id)
        if fresh is not None:
            return fresh
        task = self._loading.get(tenant_id)
        if task is None:
            # Its own task (with an empty context): a request that goes away while waiting does not
            # cancel the read the others wait for.
            task = asyncio.create_task(self._load(tenant_id), name="risk settings read",
                                       context=contextvars.Context())
            self._loading[tenant_id] = task
            task.add_done_callback(partial(self._loaded, tenant_id))
        return await asyncio.shield(task)

    def _loaded(self, tenant_id: uuid.UUID, task: asyncio.Task[TenantRisk]) -> None:
        if self._loading.get(tenant_id) is task:
            del self._loading[tenant_id]
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone away

    async def _load(self, tenant_id: uuid.UUID) -> TenantRisk:
        started, generation = time.monotonic(), self._forgotten
        settings, rules = await store.read_settings(self.pool, tenant_id)
        risk = compile_policy(tenant_id, settings, rules, self.models)
        if generation == self._forgotten:  # no PUT in this process since the read began
            self._entries[tenant_id] = (started, risk)
        return risk

    def forget(self, tenant_id: uuid.UUID) -> None:
        """A PUT in this process: the next payment reads the new settings."""
        self._entries.pop(tenant_id, None)
        self._loading.pop(tenant_id, None)  # a read begun before the PUT serves only its own waiters
        self._forgotten += 1

