"""The page's live updates: server-sent events fed by the engine's change listeners.

One stream per open page. Every stream says which resources changed (`event: change`, the same
URIs MCP announces: `subagents://ID`, `patches://SESSION/ID`, `traces://SESSION`, …), coalesced,
so a page refetches only what it shows. A stream opened for one run (`?run=ID`) also carries
that run's new events and status (`event: run`, the `watch` operation's answer) as they are
written, with the last event's seq as the SSE id: a browser that reconnects sends it back as
Last-Event-ID and continues from there without gaps or repeats.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from boocode_mcp.errors import BooCodeError
from boocode_mcp.ops import Caller
from boocode_mcp.ops.workspace import WATCH_BATCH, watch

# A comment line this often keeps proxies and the browser from timing an idle stream out, and
# lets the server notice a page that went away.
KEEPALIVE_S = 15.0
RETRY_MS = 1000


class _Changes:
    """The resource URIs announced since the last take, and the wake-up that says there are some."""

    def __init__(self) -> None:
        self._uris: dict[str, None] = {}
        self.wake = anyio.Event()

    def __call__(self, uri: str) -> None:
        # Called synchronously by the engine, in its own code paths: only record and wake.
        self._uris[uri] = None
        self.wake.set()

    async def take(self, timeout_s: float) -> list[str]:
        with anyio.move_on_after(timeout_s):
            await self.wake.wait()
        self.wake = anyio.Event()
        uris, self._uris = list(self._uris), {}
        return uris


def message(event: str, data: Any, *, event_id: int | None = None) -> str:
    """One SSE message; JSON never contains a raw newline, so `data` is one line."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


class StreamHub:
    """Every open stream of one UI server: how many (an open page keeps the daemon up) and how
    to end them all when the server shuts down."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller
        self._open: set[_Changes] = set()
        self._closing = anyio.Event()

    @property
    def open_streams(self) -> int:
        return len(self._open)

    def close(self) -> None:
        self._closing.set()
        for changes in self._open:
            changes.wake.set()

    async def stream(self, run: str | None, after: int) -> AsyncIterator[str]:
        changes = _Changes()
        engine = self._caller.engine
        # Listening before the first read: a change between the read and the wait is not lost.
        remove = engine.add_listener(changes)
        self._open.add(changes)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            if run is not None:
                try:
                    chunks, after = await self._run_messages(run, after)
                except BooCodeError as e:
                    yield message("failure", {"message": str(e)})
                    return
                for chunk in chunks:
                    yield chunk
            while not self._closing.is_set():
                uris = await changes.take(KEEPALIVE_S)
                if self._closing.is_set():
                    break
                if not uris:
                    yield ": keep-alive\n\n"
                    continue
                if run is not None and f"subagents://{run}" in uris:
                    chunks, after = await self._run_messages(run, after)
                    for chunk in chunks:
                        yield chunk
                yield message("change", {"uris": uris})
        finally:
            remove()
            self._open.discard(changes)

    async def _run_messages(self, run: str, after: int) -> tuple[list[str], int]:
        """The run's events after `after` (in batches of the watch operation) and its status, as
        messages, and the seq they bring the page up to."""
        out: list[str] = []
        while True:
            answer = (await watch(self._caller, run, after_seq=after)).result
            after = answer.next_seq
            out.append(message("run", answer.model_dump(mode="json"), event_id=after))
            if len(answer.events) < WATCH_BATCH:
                return out, after
