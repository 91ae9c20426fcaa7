"""Authentication (``Authorization: Bearer <api key>``) and the per-key rate limit."""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

from litestar import Request
from litestar.datastructures import State

from paysvc import admin
from paysvc.api.decode import check_query
from paysvc.errors import ApiError
from paysvc.tenants import Tenant


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class RateLimiter:
    """A token bucket per API key, in this process: ``rate_per_s`` requests a second, bursts of the same."""

    MAX_KEYS = 100_000

    def __init__(self, rate_per_s: int) -> None:
        self.rate_per_s = rate_per_s
        self._buckets: dict[bytes, tuple[float, float]] = {}  # key hash -> (tokens, last refill)

    def check(self, key_hash: bytes) -> None:
        if self.rate_per_s <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key_hash, (float(self.rate_per_s), now))
        tokens = min(float(self.rate_per_s), tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[key_hash] = (tokens, now)
            retry_after = max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
            raise ApiError("rate_limited", "Too many requests with this API key; slow down.",
                           retry_after_s=retry_after)
        if len(self._buckets) >= self.MAX_KEYS and key_hash not in self._buckets:
            self._buckets.clear()
        self._buckets[key_hash] = (tokens - 1.0, now)


async def provide_tenant(request: Request[Any, Any, State]) -> Tenant:
    token = bearer_token(request)
    if token is None:
        raise ApiError("api_key_missing",
                       "No API key provided: send it as 'Authorization: Bearer <api key>'.")
    tenant = None
    if admin.well_formed(token):  # garbage gets the same answer without costing a database round trip
        # Read on every request, never cached: a revoked key is refused from the next request on.
        # Concurrent requests share one lookup query (admin.KeyLookups), each answered by a query
        # that started after it arrived.
        lookups: admin.KeyLookups = request.app.state.key_lookups
        tenant = await lookups.authenticate(token)
    if tenant is None:
        raise ApiError("api_key_invalid", "The API key is not valid or has been revoked.")
    # The request log's tenant_id (api/context.py, TENANT_ID_KEY), set even when the rate limit refuses.
    request.scope["paysvc.tenant_id"] = tenant.id  # type: ignore[typeddict-unknown-key]
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(tenant.key_hash)
    check_query(request.scope)  # parameters come after authentication (brief 2b); edge.py checks the rest
    return tenant


def check_admin(request: Request[Any, Any, State]) -> None:
    expected: str | None = request.app.state.settings.admin_token
    token = bearer_token(request)
    if token is None:
        raise ApiError("api_key_missing", "No admin token provided: send 'Authorization: Bearer <token>'.")
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError("api_key_invalid", "The admin token is not valid (or PAYSVC_ADMIN_TOKEN is not set).")
