"""A loopback TCP proxy that can black-hole traffic, to make a watch go silent without closing it
(the half-open connection a load balancer can leave behind)."""

from __future__ import annotations

import asyncio
import contextlib


class BlackholeProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self._generation = 0

    def blackhole(self) -> None:
        """Stop forwarding bytes on every connection, current and future; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def blackhole_existing(self) -> None:
        """Existing connections go silent forever (half-open); new ones work."""
        self._generation += 1

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, generation: int) -> None:
        try:
            while data := await r.read(65536):
                await self._flowing.wait()
                if generation != self._generation:
                    await asyncio.Future()  # silent forever, never closed
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        sr, sw = await asyncio.open_connection(*self.target)
        gen = self._generation
        for t in (asyncio.create_task(self._pipe(cr, sw, gen)), asyncio.create_task(self._pipe(sr, cw, gen))):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
