"""Versioned migrations: `schema/NNN_name.sql`, applied in order, tracked by `PRAGMA user_version`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import aiosqlite

from boocode_mcp.errors import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("boocode_mcp.store").joinpath("schema").iterdir():
        m = re.fullmatch(r"(\d{3})_(\w+)\.sql", entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration files are not numbered 001..{len(found):03d}: {versions}")
    return found


LATEST_VERSION = len(load_migrations())


async def current_version(db: aiosqlite.Connection) -> int:
    cur = await db.execute("PRAGMA user_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, where: str = "the database") -> int:
    """Bring the schema up to date; a no-op when it already is. Returns the final version."""
    migrations = load_migrations()
    version = await current_version(db)
    if version > len(migrations):
        raise StoreError(
            f"{where} was written by a newer BooCode (schema version {version}, this one knows "
            f"{len(migrations)}); upgrade boocode-mcp or point --workspace elsewhere"
        )
    for mig in migrations[version:]:
        # One transaction per migration: the schema change and the version bump land together,
        # and BEGIN IMMEDIATE makes a second process wait instead of migrating concurrently.
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await current_version(db) >= mig.version:
                await db.execute("COMMIT")
                continue
            for statement in _statements(mig.sql):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {mig.version}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    return await current_version(db)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps triggers whole."""
    import sqlite3

    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise StoreError(f"incomplete SQL statement in a migration: {buf[:80]!r}")
    return out
