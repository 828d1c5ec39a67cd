"""The web page's server: one per daemon, on 127.0.0.1, started the first time `boocode ui` asks."""

from __future__ import annotations

import logging
import secrets
import socket
from typing import TYPE_CHECKING, Any

import anyio

from boocode_mcp.daemon.api import connection_caller
from boocode_mcp.mcp_server import bind_listener, embedded_uvicorn
from boocode_mcp.ui.app import build_app
from boocode_mcp.ui.guard import Guard
from boocode_mcp.ui.stream import StreamHub

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine

logger = logging.getLogger(__name__)

# Loopback only, whatever the caller wants: the page shows every diff and applies patches.
HOST = "127.0.0.1"
# Open streams end at once on shutdown; this bounds a response still being written.
SHUTDOWN_S = 3


class UiServer:
    """Serves the page for one engine until cancelled, with one login token for its whole life."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.token = secrets.token_urlsafe(32)
        self.url: str | None = None
        # The page acts for nobody's session in particular: it names every id it acts on.
        self._caller = connection_caller(engine, None)
        self._hub = StreamHub(self._caller)

    @property
    def login_url(self) -> str:
        """The address to open: the page with its login token (exchanged for a cookie)."""
        if self.url is None:
            raise RuntimeError("the UI server is not listening yet")
        return f"{self.url}?token={self.token}"

    @property
    def open_streams(self) -> int:
        """Pages open right now (each holds one event stream): front ends, for the daemon."""
        return self._hub.open_streams

    async def serve(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free loopback port, hand over the login URL, serve until cancelled. A
        failure of the server after start-up is logged and ends it (the caller may start another);
        it never takes the caller down."""
        sock = bind_listener(HOST, 0)
        port = sock.getsockname()[1]
        self.url = f"http://{HOST}:{port}/"
        uv = embedded_uvicorn(
            Guard(build_app(self._caller, self._hub), token=self.token, port=port),
            graceful_shutdown_s=SHUTDOWN_S,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._run, uv, sock, tg.cancel_scope)
                logger.warning("the web page for %s is at %s", self.engine.workspace, self.url)
                task_status.started(self.login_url)
                try:
                    await anyio.sleep_forever()
                finally:
                    # Streams end, then uvicorn closes its connections and returns (see _run).
                    self._hub.close()
                    uv.should_exit = True
        finally:
            sock.close()

    async def _run(self, uv: Any, sock: socket.socket, scope: anyio.CancelScope) -> None:
        try:
            # Shielded: when the daemon stops, uvicorn is asked to exit (should_exit) and shuts
            # down its connections itself, within SHUTDOWN_S, instead of being torn mid-response.
            with anyio.CancelScope(shield=True):
                await uv.serve([sock])
        except Exception:
            logger.exception("the web page's server failed")
        scope.cancel()
