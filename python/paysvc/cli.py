"""The ``paysvc`` command: serve, migrate, expire, audit, torture, tenant create, key create/list/revoke,
bench, risk simulate/train/report, webhooks run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

from paysvc.config import Settings, SettingsError
from paysvc.db.embedded import EmbeddedPostgres
from paysvc.db.migrate import migrate
from paysvc.logs import configure_logging
from paysvc.resources import encode


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL: PAYSVC_DATABASE_URL, or the embedded server (started, migrated, then stopped
    on exit unless another paysvc process still uses it)."""
    if settings.database_url is not None:
        migrate(settings.database_url)
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        migrate(url)
        yield url
    finally:
        embedded.stop()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from paysvc.api.edge import uvicorn_options

    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal with the handler
    # it found installed. Ours only notes it, so the embedded database is stopped before we exit 0.
    stopped_by: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stopped_by.append(number))

    with database(settings) as url:
        os.environ["PAYSVC_DATABASE_URL"] = url  # the worker processes read their settings from the env
        if stopped_by:  # a signal came while the database was starting
            return 0
        uvicorn.run(
            "paysvc.api.app:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            server_header=False,
            loop="auto",
            timeout_graceful_shutdown=10,
            **uvicorn_options(settings),  # the HTTP edge's protocol and limits (api/edge.py)
        )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with database(settings):
        pass
    print("migrations applied", file=sys.stderr)
    return 0


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import admin
    from paysvc.errors import ApiError

    try:
        name = admin.validate_tenant_name(args.name)
    except ApiError as exc:
        print(f"paysvc: {exc.message}", file=sys.stderr)
        return 2

    async def create(url: str) -> bytes:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return encode(await admin.create_tenant(conn, name))

    with database(settings) as url:
        print(asyncio.run(create(url)).decode())
    return 0


def cmd_expire(settings: Settings, args: argparse.Namespace) -> int:
    """Release every hold whose time is up now (what each API process also does in the background)."""
    from paysvc.db.pool import make_pool
    from paysvc.ledger import housekeeping
    from paysvc.ledger.engine import EngineConfig, LedgerEngine

    def progress(expired: int) -> None:
        print(f"\rexpired {expired} holds", end="", file=sys.stderr, flush=True)

    async def sweep(url: str) -> int:
        pool = make_pool(settings, url)
        await pool.open(wait=True, timeout=max(5.0, settings.connect_timeout_s * 2.0))
        try:
            engine = LedgerEngine(pool, EngineConfig.from_settings(settings))
            return await housekeeping.expire_holds(engine, max_batches=args.max_batches, progress=progress)
        finally:
            await pool.close()

    with database(settings) as url:
        expired = asyncio.run(sweep(url))
    print(file=sys.stderr)
    print(json.dumps({"expired": expired}))
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import audit

    with database(settings) as url:
        return audit.main(url, as_json=args.json)


def cmd_torture(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import torture

    return torture.main(settings, duration_s=args.duration, clients=args.clients, as_json=args.json)


def cmd_key_create(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import keys

    with database(settings) as url:
        return keys.create(url, args.tenant)


def cmd_key_list(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import keys

    with database(settings) as url:
        return keys.list_keys(url, args.tenant)


def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from paysvc import keys

    with database(settings) as url:
        return keys.revoke(url, args.key)


def cmd_webhooks_run(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver webhooks in this process until SIGTERM/SIGINT (API processes also do, unless
    PAYSVC_WEBHOOK_DELIVER_IN_API=false). It numbers new events too, which makes their deliveries."""
    from paysvc.db.retry import RetryPolicy
    from paysvc.ledger import events, housekeeping
    from paysvc.webhooks.deliverer import Deliverer, DelivererConfig, make_deliverer_pool

    async def run(url: str) -> None:
        pool = make_deliverer_pool(settings, url)
        await pool.open(wait=True, timeout=max(5.0, settings.connect_timeout_s * 2.0))
        config = DelivererConfig.from_settings(settings)
        policy = RetryPolicy(settings.tx_max_attempts, settings.tx_backoff_base_ms, settings.tx_backoff_cap_ms)
        numbering = housekeeping.Job("number events", settings.events_sequence_interval_ms / 1000,
                                     lambda: events.sequence_all(pool, policy))
        tasks = [asyncio.create_task(Deliverer(pool, config).run_forever(), name="webhook deliverer"),
                 asyncio.create_task(housekeeping.run_job_forever(numbering), name=numbering.name)]
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: [task.cancel() for task in tasks])
        print("delivering webhooks (SIGTERM or Ctrl-C stops)", file=sys.stderr)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await pool.close()

    with database(settings) as url:
        asyncio.run(run(url))
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from paysvc import bench

    try:
        scenarios = bench.parse_scenarios(args.scenarios)
    except ValueError as exc:
        print(f"paysvc: {exc}", file=sys.stderr)
        return 2
    options = bench.Options(
        processes=args.processes, duration_s=args.duration, connections=args.connections,
        out_dir=Path(args.out), scenarios=scenarios, as_json=args.json, risk_mode=args.risk_mode,
        risk_rules=args.risk_rules, webhook_hanging_endpoint=args.webhook_hanging_endpoint,
    )
    return bench.main(settings, options)


def _risk_extra_missing(exc: ImportError) -> int:
    print(f"paysvc: the offline risk commands need the risk extra (pip install 'paysvc[risk]'): {exc}",
          file=sys.stderr)
    return 2


def cmd_risk_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from paysvc.risk.offline import simulate

    options = simulate.Options(seed=args.seed, days=args.days, customers=args.customers,
                               merchants=args.merchants if args.merchants else max(args.customers // 5, 1))
    counts = simulate.main(options, Path(args.out))
    print(json.dumps(counts | {"out": args.out}))
    return 0


def cmd_risk_train(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        from paysvc.risk.offline import export, train
    except ImportError as exc:
        return _risk_extra_missing(exc)
    options = train.Options(data=Path(args.data), out=Path(args.out), test_days=args.test_days, trees=args.trees,
                            depth=args.depth, learning_rate=args.learning_rate, seed=args.seed,
                            version=args.version)
    try:
        trained = train.run(options)
    except (ValueError, export.ExportRefused) as exc:
        print(f"paysvc: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"models": {k: str(v) for k, v in trained.paths.items()}, "metrics": trained.metrics,
                      "goals": train.goals(trained.metrics)}, indent=2))
    return 0


def cmd_risk_report(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        from paysvc.risk.offline import report
    except ImportError as exc:
        return _risk_extra_missing(exc)
    try:
        written = report.run(Path(args.data), Path(args.models), Path(args.out), seed=args.seed)
    except ValueError as exc:
        print(f"paysvc: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"report": str(written.path), "metrics": {s.name: s.metrics for s in written.scored}}, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="paysvc", description="paysvc: payments on a double-entry ledger")
    commands = top.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API (embedded PostgreSQL unless PAYSVC_DATABASE_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    mig = commands.add_parser("migrate", help="apply pending schema migrations")
    mig.set_defaults(func=cmd_migrate)

    expire = commands.add_parser("expire", help="release the holds whose expires_at has passed, then exit")
    expire.add_argument("--max-batches", type=int, default=10_000,
                        help="stop after this many batches of 200 holds (default 10000)")
    expire.set_defaults(func=cmd_expire)

    audit = commands.add_parser("audit", help="check every ledger invariant over the whole database")
    audit.add_argument("--json", action="store_true", help="print a machine-readable summary")
    audit.set_defaults(func=cmd_audit)

    torture = commands.add_parser(
        "torture", help="run two API processes on a scratch database under random load and injected faults, "
        "then check that nothing acknowledged was lost or doubled")
    torture.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    torture.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    torture.add_argument("--json", action="store_true", help="print a machine-readable summary")
    torture.set_defaults(func=cmd_torture)

    key = commands.add_parser("key", help="manage API keys")
    key_commands = key.add_subparsers(dest="key_command", required=True)
    key_create = key_commands.add_parser("create", help="create another API key for a tenant (shown once)")
    key_create.add_argument("tenant", help="tenant id (ten_…)")
    key_create.set_defaults(func=cmd_key_create)
    key_list = key_commands.add_parser("list", help="list a tenant's keys by prefix (never the keys)")
    key_list.add_argument("tenant", help="tenant id (ten_…)")
    key_list.set_defaults(func=cmd_key_list)
    key_revoke = key_commands.add_parser("revoke", help="revoke an API key, given in full or by its prefix")
    key_revoke.add_argument("key", help="the key, or its prefix as `key list` shows it")
    key_revoke.set_defaults(func=cmd_key_revoke)

    bench = commands.add_parser(
        "bench", help="measure payments/s and latency (wrk) on a scratch database and API processes, "
        "the database's ceiling for the same SQL (pgbench), and the Rust core against its Python reference")
    bench.add_argument("--processes", type=int, default=1, help="API processes (default 1)")
    bench.add_argument("--duration", type=float, default=20.0, help="seconds per scenario (default 20)")
    bench.add_argument("--connections", type=int, default=16,
                       help="HTTP connections, and pgbench clients (default 16)")
    bench.add_argument("--out", default="bench-results",
                       help="directory for bench.json and the PNG plots (default ./bench-results)")
    bench.add_argument("--scenarios", default="spread,hot_merchant,read_heavy,open_loop,committer",
                       help="comma-separated subset of spread,hot_merchant,read_heavy,open_loop,committer "
                            "(default all)")
    bench.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
    bench.add_argument("--risk-mode", choices=("off", "shadow", "enforce"), default=None,
                       help="the bench tenant's risk mode (default: the service's default, shadow)")
    bench.add_argument("--risk-rules", type=int, default=0,
                       help="install this many risk rules (0..100) on the bench tenant; none matches a bench "
                            "payment, each is evaluated (default 0)")
    bench.add_argument("--webhook-hanging-endpoint", action="store_true",
                       help="register a webhook endpoint for every event whose receiver never answers "
                            "(compare spread with and without it)")
    bench.set_defaults(func=cmd_bench)

    risk = commands.add_parser("risk", help="the offline risk loop: simulate payments, train and report models "
                               "(needs the risk extra)")
    risk_commands = risk.add_subparsers(dest="risk_command", required=True)
    simulate = risk_commands.add_parser(
        "simulate", help="write a seeded simulated payment stream with labelled fraud scenarios (gzip CSV)")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--days", type=int, default=84, help="simulated days (default 84)")
    simulate.add_argument("--customers", type=int, default=2_000, help="paying accounts (default 2000)")
    simulate.add_argument("--merchants", type=int, default=0, help="destinations (default customers / 5)")
    simulate.add_argument("--out", required=True, help="the file to write, e.g. risk.csv.gz")
    simulate.set_defaults(func=cmd_risk_simulate)
    train = risk_commands.add_parser(
        "train", help="replay a simulated stream through the Rust feature function, train the rules-only "
        "baseline, logistic regression and GBDT on a time split, and export the two models")
    train.add_argument("--data", required=True, help="a file written by `paysvc risk simulate`")
    train.add_argument("--out", required=True, help="directory for <kind>_<version>.json")
    train.add_argument("--test-days", type=int, default=14, help="the held-out last days (default 14)")
    train.add_argument("--trees", type=int, default=100, help="GBDT trees (default 100)")
    train.add_argument("--depth", type=int, default=4, help="GBDT tree depth (default 4)")
    train.add_argument("--learning-rate", type=float, default=0.1, help="GBDT learning rate (default 0.1)")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--version", default="v1", help="model ids are <kind>_<version> (default v1)")
    train.set_defaults(func=cmd_risk_train)
    report = risk_commands.add_parser(
        "report", help="evaluate exported models on the held-out period: Markdown report and PNG plots")
    report.add_argument("--data", required=True, help="the file the models were trained on")
    report.add_argument("--models", required=True, help="directory of exported models (one per kind)")
    report.add_argument("--out", required=True, help="directory for report.md and the plots")
    report.add_argument("--seed", type=int, default=1, help="seed of the permutation importance")
    report.set_defaults(func=cmd_risk_report)

    webhooks = commands.add_parser("webhooks", help="webhook delivery")
    webhooks_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    webhooks_run = webhooks_commands.add_parser(
        "run", help="deliver webhooks in this process until stopped (beside or instead of the API processes)")
    webhooks_run.set_defaults(func=cmd_webhooks_run)

    tenant = commands.add_parser("tenant", help="manage tenants")
    tenant_commands = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_commands.add_parser("create", help="create a tenant and print its API key (shown once)")
    create.add_argument("name")
    create.set_defaults(func=cmd_tenant_create)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"paysvc: {exc}", file=sys.stderr)
        return 2
    try:
        configure_logging(settings.log_level)  # the API worker processes do the same (create_app_from_env)
    except ValueError as exc:
        print(f"paysvc: {exc}", file=sys.stderr)
        return 2
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
