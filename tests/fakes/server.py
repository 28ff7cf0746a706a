"""Serving a fake venue's aiohttp middleware on an ephemeral loopback port."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class LoopbackServer:
    """Runs one middleware that answers every request; ``url`` is set once started."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, middleware: Any) -> str:
        app = web.Application(middlewares=[middleware])
        app.router.add_route("*", "/{tail:.*}", _unreachable)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _unreachable(request: web.Request) -> web.StreamResponse:
    raise AssertionError("every request is answered by the middleware")  # pragma: no cover
