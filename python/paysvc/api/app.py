"""The app factory: ``create_app(settings)``. The pool and the ledger engine live in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

from paysvc import admin
from paysvc.api import context, openapi
from paysvc.api.accounts import AccountController
from paysvc.api.auth import RateLimiter, provide_tenant
from paysvc.api.common import TenantDep
from paysvc.api.edge import WholeBodyMiddleware
from paysvc.api.errors_http import HANDLERS
from paysvc.api.events import EventController
from paysvc.api.fees import FeeScheduleController
from paysvc.api.payments import BATCH_PATH, PaymentController
from paysvc.api.reviews import ReviewController
from paysvc.api.risk import RiskController, fraud_report
from paysvc.api.system import create_tenant, healthz, metrics_endpoint, readyz
from paysvc.api.webhooks import WebhookEndpointController
from paysvc.config import Settings
from paysvc.db.pool import Pool, make_pool
from paysvc.ledger import housekeeping
from paysvc.ledger.engine import EngineConfig, LedgerEngine
from paysvc.logs import configure_logging
from paysvc.risk.cache import RiskCache
from paysvc.risk.registry import registry
from paysvc.webhooks.deliverer import Deliverer, DelivererConfig, make_deliverer_pool


def provide_engine(state: State, tenant: TenantDep) -> LedgerEngine:
    """The process's ledger engine. It takes ``tenant`` only so that Litestar resolves the two
    dependencies one after the other: two independent dependencies are resolved in an anyio task
    group, which cost about 5% of the CPU of a payment request (py-spy, `paysvc bench` spread)."""
    del tenant
    engine: LedgerEngine = state.engine
    return engine


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    if settings.database_url is None:
        raise RuntimeError(
            "PAYSVC_DATABASE_URL is not set: start the service with `paysvc serve`, which starts the "
            "embedded PostgreSQL, or point PAYSVC_DATABASE_URL at a server."
        )
    database_url = settings.database_url

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = make_pool(settings, database_url)
        await pool.open(wait=True, timeout=max(5.0, settings.connect_timeout_s * 2.0))
        risk = RiskCache(pool, registry(settings.risk_models_dir))
        engine = LedgerEngine(pool, EngineConfig.from_settings(settings), risk=risk)
        app.state.pool = pool
        app.state.engine = engine
        app.state.key_lookups = admin.KeyLookups(pool)
        background = [
            asyncio.create_task(housekeeping.run_job_forever(job), name=job.name)
            for job in housekeeping.jobs(
                engine, settings.expiry_sweep_interval_s, settings.events_sequence_interval_ms / 1000
            )
        ]
        webhook_pool: Pool | None = None
        if settings.webhook_deliver_in_api:  # beside the API, with its own pool and bounded concurrency
            webhook_pool = make_deliverer_pool(settings, database_url)
            await webhook_pool.open(wait=False)
            deliverer = Deliverer(webhook_pool, DelivererConfig.from_settings(settings))
            background.append(asyncio.create_task(deliverer.run_forever(), name="webhook deliverer"))
        # Everything alive now (modules, the app, routes, the pool) lives as long as the process:
        # frozen, it is no longer scanned by each full garbage collection.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await engine.close()
            if webhook_pool is not None:
                await webhook_pool.close()
            await pool.close()

    app = Litestar(
        route_handlers=[
            AccountController, PaymentController, EventController, FeeScheduleController, RiskController,
            ReviewController, fraud_report, WebhookEndpointController,
            create_tenant, healthz, readyz, metrics_endpoint,
        ],
        dependencies={
            "tenant": Provide(provide_tenant),
            "engine": Provide(provide_engine, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(
            cast(Any, WholeBodyMiddleware), max_body_bytes=settings.max_body_bytes,
            larger_bodies={BATCH_PATH: settings.max_batch_body_bytes},
        )],
        exception_handlers=HANDLERS,
        lifespan=[lifespan],
        openapi_config=openapi.config(),
        state=State({"settings": settings, "rate_limiter": RateLimiter(settings.rate_limit_per_s)}),
        request_max_body_size=None,
        logging_config=None,
        debug=False,
    )
    openapi.add_request_bodies(app)
    context.install(app)  # request ids, metrics and the request log, for unrouted requests too
    return app


def create_app_from_env() -> Litestar:
    """Entry point for ASGI servers (``uvicorn --factory paysvc.api.app:create_app_from_env``)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)  # each worker process of `paysvc serve --workers N` too
    return create_app(settings)
