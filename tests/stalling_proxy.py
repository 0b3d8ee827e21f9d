"""A TCP proxy in front of PostgreSQL that can hold back the server's answer to one query:
the network fault that makes a client give up on a statement the server has already run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class StallingProxy:
    """Forwards every connection to ``upstream``; once ``arm(marker)`` is called, the next
    client message containing ``marker`` goes through but the server's answers on that
    connection wait until ``release()``."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._marker: bytes | None = None
        self.seen = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def arm(self, marker: bytes) -> None:
        self._marker = marker
        self.seen.clear()
        self._released.clear()

    def release(self) -> None:
        self._marker = None
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
        server_r, server_w = await asyncio.open_connection(*self._upstream)
        holding = asyncio.Event()

        async def to_server() -> None:
            while data := await client_r.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    holding.set()
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
async def stalling_proxy(host: str, port: int) -> AsyncIterator[StallingProxy]:
    proxy = StallingProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
