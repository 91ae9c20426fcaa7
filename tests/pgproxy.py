"""A TCP proxy in front of the test PostgreSQL, to break the connection between the API and the
database on purpose: take the database "down" (drop every connection, refuse new ones) or lose the
connection right after the server committed a transaction (the ambiguous commit).

It relays bytes unchanged (the PostgreSQL protocol is not parsed beyond spotting a simple-query
``COMMIT`` and the payment insert that precedes it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

CHUNK = 65_536


class PgProxy:
    def __init__(self, database_url: str) -> None:
        params = conninfo_to_dict(database_url)
        host, port = str(params.get("host", "/tmp")), str(params.get("port") or 5432)
        assert host.startswith("/"), "the test database is reached over its unix socket"
        self.socket_path = str(Path(host) / f".s.PGSQL.{port}")
        self.database_url = database_url
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.down = False
        self.cut_after_payment_commit = False  # one-shot
        self.cuts = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        params = conninfo_to_dict(self.database_url)
        params.update(host="127.0.0.1", port=str(port), sslmode="disable")
        return make_conninfo(**params)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        self.take_down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def take_down(self) -> None:
        """The database becomes unreachable: every open connection drops, new ones are refused."""
        self.down = True
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def bring_up(self) -> None:
        self.down = False

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.down:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            client_writer.transport.abort()
            return
        self._links.update((client_writer, server_writer))
        state = {"payment_written": False, "cut": False}

        async def upstream() -> None:
            while chunk := await client_reader.read(CHUNK):
                if b"INSERT INTO payments" in chunk:
                    state["payment_written"] = True
                if self.cut_after_payment_commit and state["payment_written"] and b"COMMIT" in chunk:
                    # The server gets the COMMIT; its answer will be lost (see downstream).
                    self.cut_after_payment_commit = False
                    state["cut"] = True
                server_writer.write(chunk)
                await server_writer.drain()

        async def downstream() -> None:
            while chunk := await server_reader.read(CHUNK):
                if state["cut"]:
                    # The server has answered the COMMIT, so it committed: drop the answer and the
                    # connection. The client cannot know whether its transaction committed.
                    self.cuts += 1
                    return
                client_writer.write(chunk)
                await client_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_writer, server_writer):
            self._links.discard(writer)
            writer.transport.abort()


@contextlib.asynccontextmanager
async def pg_proxy(database_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(database_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
