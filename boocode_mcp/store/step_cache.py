"""The `workflow_step_cache` table: completed workflow steps by the hash of what they were asked,
bounded, the least recently used dropped first."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from boocode_mcp.store.db import Database


@dataclass(frozen=True)
class CachedStep:
    key: str
    step_id: str
    subagent_id: str
    patch_id: str | None
    result: dict[str, Any]


async def take(db: Database, key: str) -> CachedStep | None:
    """The cached result for `key`, marked used now; None when there is none."""
    cur = await db.execute(
        "UPDATE workflow_step_cache SET used_at = ? WHERE key = ? RETURNING *", (time.time(), key)
    )
    rows = list(await cur.fetchall())
    if not rows:
        return None
    r = rows[0]
    return CachedStep(r["key"], r["step_id"], r["subagent_id"], r["patch_id"], json.loads(r["result_json"]))


async def put(
    db: Database,
    *,
    key: str,
    step_id: str,
    subagent_id: str,
    patch_id: str | None,
    result: dict[str, Any],
    size: int,
) -> None:
    """Keep a completed step's result, then drop the least recently used beyond `size` entries."""
    now = time.time()
    await db.execute(
        "INSERT INTO workflow_step_cache (key, step_id, subagent_id, patch_id, result_json, created_at,"
        " used_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET step_id = excluded.step_id,"
        " subagent_id = excluded.subagent_id, patch_id = excluded.patch_id,"
        " result_json = excluded.result_json, created_at = excluded.created_at, used_at = excluded.used_at",
        (key, step_id, subagent_id, patch_id, json.dumps(result), now, now),
    )
    await db.execute(
        "DELETE FROM workflow_step_cache WHERE key NOT IN"
        " (SELECT key FROM workflow_step_cache ORDER BY used_at DESC LIMIT ?)",
        (size,),
    )


async def count(db: Database) -> int:
    cur = await db.execute("SELECT COUNT(*) FROM workflow_step_cache")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0
