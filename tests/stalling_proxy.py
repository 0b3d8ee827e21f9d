"""A TCP proxy in front of PostgreSQL that can hold back the server's answer to one query:
the network fault that makes a client give up on a statement the server has already run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class StallingProxy:
    """Forwards every connection to the server of ``url`` (TCP or a Unix socket's directory in
    ``?host=``); once ``arm(marker)`` is called, the next client message containing
    ``marker`` goes through but the server's answers on that connection wait until
    ``release()``. ``url_through`` is ``url`` by way of the proxy."""

    def __init__(self, url: str) -> None:
        self._url = urlsplit(url)
        self._marker: bytes | None = None
        self.seen = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._holding: set[asyncio.Event] = set()

    def url_through(self) -> str:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        userinfo, _, _ = self._url.netloc.rpartition("@")
        netloc = (f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{port}"
        query = urlencode([(k, v) for k, v in parse_qsl(self._url.query) if k != "host"])
        return urlunsplit(self._url._replace(netloc=netloc, query=query))

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = dict(parse_qsl(self._url.query)).get("host", "")
        port = self._url.port or 5432
        if socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        return await asyncio.open_connection(self._url.hostname or "127.0.0.1", port)

    def arm(self, marker: bytes) -> None:
        self._marker = marker
        self.seen.clear()
        self._released.clear()

    def release(self) -> None:
        self._marker = None
        for holding in self._holding:  # a later arm() holds only its own connection
            holding.clear()
        self._holding.clear()
        self._released.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await self._open_upstream()
        holding = asyncio.Event()

        async def to_server() -> None:
            while data := await client_r.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    holding.set()
                    self._holding.add(holding)
                    self.seen.set()
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def to_client() -> None:
            while data := await server_r.read(65536):
                if holding.is_set():
                    await self._released.wait()
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        pumps = [asyncio.create_task(to_server()), asyncio.create_task(to_client())]
        self._pumps.update(pumps)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(*pumps)
        self._pumps.difference_update(pumps)
        for writer in (client_w, server_w):
            writer.close()


@contextlib.asynccontextmanager
async def stalling_proxy(url: str) -> AsyncIterator[StallingProxy]:
    proxy = StallingProxy(url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
