"""The `agent_capabilities` table: what each agent said it can do the last time it started."""

from __future__ import annotations

import time
from dataclasses import dataclass

from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class AgentCapabilities:
    """An agent's ACP initialize answer, as far as BooCode uses it."""

    agent: str
    image: bool
    audio: bool
    embedded_context: bool
    mcp_http: bool
    mcp_sse: bool
    load_session: bool
    agent_name: str | None = None
    agent_version: str | None = None
    seen_at: float = 0.0


async def record(db: Database, caps: AgentCapabilities) -> None:
    await db.execute(
        "INSERT INTO agent_capabilities (agent, image, audio, embedded_context, mcp_http, mcp_sse,"
        " load_session, agent_name, agent_version, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (agent) DO UPDATE SET image = excluded.image, audio = excluded.audio,"
        " embedded_context = excluded.embedded_context, mcp_http = excluded.mcp_http,"
        " mcp_sse = excluded.mcp_sse, load_session = excluded.load_session,"
        " agent_name = excluded.agent_name, agent_version = excluded.agent_version,"
        " seen_at = excluded.seen_at",
        (
            caps.agent,
            int(caps.image),
            int(caps.audio),
            int(caps.embedded_context),
            int(caps.mcp_http),
            int(caps.mcp_sse),
            int(caps.load_session),
            caps.agent_name,
            caps.agent_version,
            caps.seen_at or time.time(),
        ),
    )


def _caps(r: Row) -> AgentCapabilities:
    return AgentCapabilities(
        agent=r["agent"],
        image=bool(r["image"]),
        audio=bool(r["audio"]),
        embedded_context=bool(r["embedded_context"]),
        mcp_http=bool(r["mcp_http"]),
        mcp_sse=bool(r["mcp_sse"]),
        load_session=bool(r["load_session"]),
        agent_name=r["agent_name"],
        agent_version=r["agent_version"],
        seen_at=r["seen_at"],
    )


async def get(db: Database, agent: str) -> AgentCapabilities | None:
    cur = await db.execute("SELECT * FROM agent_capabilities WHERE agent = ?", (agent,))
    r = await cur.fetchone()
    return _caps(r) if r is not None else None


async def all_agents(db: Database) -> dict[str, AgentCapabilities]:
    cur = await db.execute("SELECT * FROM agent_capabilities")
    return {str(r["agent"]): _caps(r) for r in await cur.fetchall()}
