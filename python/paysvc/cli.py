"""The ``paysvc`` command: serve, migrate, tenant create."""

from __future__ import annotations

import argparse
import asyncio
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
            http="auto",
            timeout_graceful_shutdown=10,
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
    configure_logging(settings.log_level)
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
