"""MemoryIndex: FTS5 search over markdown notes and finished subagent transcripts.

Entries live in the `memory` table (schema/002_memory.sql) with an external-content FTS5 index
kept in step by triggers. Two sources:

- `note`: one entry per heading section of every `*.md` / `*.markdown` file under the note
  directories (hidden files and directories skipped), id `note:<path>#<n>`. Kept current
  incrementally: `refresh_notes()` stats every file and re-reads only those whose (mtime, size)
  moved; a file whose content hash is unchanged is not re-indexed, and within a changed file only
  the sections whose text changed are rewritten. Deleted files drop out. `search()` runs this
  refresh itself at most once every `refresh_interval_s` (2 s by default; not for a
  `source="subagent"` search), so an edit is found by the next search without a full rebuild
  per query; `refresh_notes()` is public for callers that want it now (e.g. at start-up).
- `subagent`: one entry per finished run (`index_subagent`), id `subagent:<subagent id>`;
  indexing the same id again replaces it.

Search: the query is parsed by `memory.query` (never FTS5 syntax by accident), all terms ANDed;
when that finds nothing and the query has several words, it is retried with the words ORed, so a
stray word does not hide every hit. An empty query, or one with no words at all (`*`, `"`, emoji
only), returns no hits rather than an error. Ranking is bm25 with the title weighted over tags
over body, more recent entries first among equal scores; `score` is `-bm25`, positive, higher
is better. Snippets mark matched words as «word». `limit` outside 1..100 or a `source` other
than None/"note"/"subagent" is an InvalidRequestError.

Writes that must land together run as one job on the connection's worker thread (see
`store.transaction.atomically`): the connection is shared with the rest of the engine, and awaiting between
BEGIN and COMMIT would let another task's statements fall inside (or collide with) this
transaction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

import aiosqlite
import anyio
import anyio.to_thread

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.memory.notes import Section, parse_note
from boocode_mcp.memory.query import ParsedQuery, parse_query
from boocode_mcp.store.transaction import atomically
from boocode_mcp.views import MemoryHit, MemorySource

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_REFRESH_INTERVAL_S = 2.0
NOTE_SUFFIXES = (".md", ".markdown")
# A note bigger than this is indexed from its first MAX_NOTE_BYTES only.
MAX_NOTE_BYTES = 4 * 1024 * 1024
# Files handled per write transaction: bounds how long one refresh holds the shared connection.
FILES_PER_WRITE = 100

# bm25 column weights (title, tags, body): a heading about the thing beats a passing mention.
W_TITLE, W_TAGS, W_BODY = 10.0, 5.0, 1.0
SNIPPET_OPEN, SNIPPET_CLOSE, SNIPPET_ELLIPSIS = "«", "»", "…"
SNIPPET_TOKENS = 24
SUBAGENT_TITLE_CHARS = 120

_SOURCES: tuple[MemorySource, ...] = ("note", "subagent")


@dataclass(frozen=True)
class RefreshStats:
    """What one refresh_notes() pass did."""

    files_seen: int
    files_unchanged: int  # same (mtime, size): only stat'ed
    files_touched: int  # (mtime, size) moved but the content hash did not: nothing re-indexed
    files_indexed: int  # new or changed content: sections re-indexed
    files_removed: int
    entries_written: int  # section rows inserted or rewritten
    entries_deleted: int


@dataclass(frozen=True)
class _Stat:
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class _Known:
    mtime_ns: int
    size: int
    hash: str


@dataclass(frozen=True)
class _Read:
    path: str
    stat: _Stat
    hash: str
    sections: tuple[Section, ...] | None  # None: content hash unchanged, not parsed


@dataclass
class _Counts:
    written: int = 0
    deleted: int = 0


class MemoryIndex:
    """Index and search notes and subagent transcripts in the workspace database."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        note_dirs: Sequence[Path],
        *,
        refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
    ) -> None:
        self._db = db
        self._note_dirs = tuple(Path(d).expanduser() for d in note_dirs)
        self._refresh_interval_s = refresh_interval_s
        self._refresh_lock = anyio.Lock()
        self._last_refresh: float | None = None

    @property
    def note_dirs(self) -> tuple[Path, ...]:
        return self._note_dirs

    # -- notes ---------------------------------------------------------------------------------

    async def refresh_notes(self) -> RefreshStats:
        """Bring note entries up to date with the files on disk (incremental; see module doc)."""
        async with self._refresh_lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> RefreshStats:
        rows = await self._db.execute_fetchall("SELECT path, mtime_ns, size, hash FROM memory_files")
        known = {str(r[0]): _Known(int(r[1]), int(r[2]), str(r[3])) for r in rows}
        seen = await anyio.to_thread.run_sync(_scan, self._note_dirs)
        moved = [
            p
            for p, st in seen.items()
            if (k := known.get(p)) is None or (k.mtime_ns, k.size) != (st.mtime_ns, st.size)
        ]
        reads = await anyio.to_thread.run_sync(_read_notes, moved, known)
        vanished = set(moved) - {r.path for r in reads}
        # A file that vanished between the scan and the read counts as removed.
        gone = sorted((set(known) - set(seen)) | vanished)
        counts = _Counts()
        now = time.time()
        for i in range(0, max(len(reads), 1), FILES_PER_WRITE):
            batch = reads[i : i + FILES_PER_WRITE]
            removals = gone if i == 0 else []
            if batch or removals:
                await atomically(
                    self._db, partial(_write_notes, reads=batch, gone=removals, now=now, counts=counts)
                )
        self._last_refresh = time.monotonic()
        touched = sum(1 for r in reads if r.sections is None)
        return RefreshStats(
            files_seen=len(seen) - len(vanished),
            files_unchanged=len(seen) - len(moved),
            files_touched=touched,
            files_indexed=len(reads) - touched,
            files_removed=len(gone),
            entries_written=counts.written,
            entries_deleted=counts.deleted,
        )

    async def _maybe_refresh(self) -> None:
        async with self._refresh_lock:
            last = self._last_refresh
            if last is not None and time.monotonic() - last < self._refresh_interval_s:
                return
            try:
                await self._refresh_locked()
            except sqlite3.OperationalError as e:
                # Another process holding the write lock past the busy timeout must not fail a
                # search: answer from the index as it is and retry on a later search.
                log.warning("memory: note refresh skipped (%s); searching the existing index", e)

    # -- subagents -----------------------------------------------------------------------------

    async def index_subagent(
        self,
        *,
        subagent_id: str,
        agent: str,
        prompt: str,
        final_message: str | None,
        tool_titles: Sequence[str],
        files: Sequence[str],
        created_at: float,
    ) -> None:
        """Index (or re-index, replacing) one finished subagent run as a `subagent` entry."""
        if not subagent_id:
            raise InvalidRequestError("index_subagent needs a subagent_id")
        title = _subagent_title(prompt) or f"{agent} run {subagent_id}"
        parts = [prompt.strip(), (final_message or "").strip()]
        # Once each: a run that read one file fifty times is not fifty times more about it.
        parts.append("\n".join(dict.fromkeys(t.strip() for t in tool_titles if t.strip())))
        parts.append("\n".join(dict.fromkeys(f.strip() for f in files if f.strip())))
        body = "\n\n".join(p for p in parts if p)
        tags = agent
        await self._db.execute(
            """
            INSERT INTO memory (source, ref, path, title, tags, body, agent, created_at, hash)
            VALUES ('subagent', ?, NULL, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, ref) DO UPDATE SET
                title = excluded.title, tags = excluded.tags, body = excluded.body,
                agent = excluded.agent, created_at = excluded.created_at, hash = excluded.hash
            """,
            (subagent_id, title, tags, body, agent, created_at, _entry_hash(title, tags, body)),
        )

    # -- search --------------------------------------------------------------------------------

    async def search(self, query: str, limit: int = 10, source: str | None = None) -> list[MemoryHit]:
        """Ranked hits for a user's query; no hits for a query without words (see module doc)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_LIMIT} (got {limit!r})")
        if source is not None and source not in _SOURCES:
            raise InvalidRequestError(
                f"unknown memory source {source!r}; use one of {', '.join(_SOURCES)}, or omit it for all"
            )
        parsed = parse_query(query)
        if parsed.empty:
            return []
        if source != "subagent":
            await self._maybe_refresh()
        return await self._search_parsed(parsed, limit, source)

    async def _search_parsed(self, parsed: ParsedQuery, limit: int, source: str | None) -> list[MemoryHit]:
        strict = parsed.match_all()
        if strict is None:
            return []
        hits = await self._run_match(strict, limit, source)
        if not hits and (loose := parsed.match_any()) is not None:
            hits = await self._run_match(loose, limit, source)
        return hits

    async def _run_match(self, match: str, limit: int, source: str | None) -> list[MemoryHit]:
        # Rank every match cheaply (rowid + bm25, source/created_at from the covering index), keep
        # the top `limit`, and only then build snippets: snippet() is costly, and evaluated before
        # the sort it would run for every match. CROSS JOIN keeps `top` outermost so the second
        # MATCH is a rowid seek per hit, not another scan of every match.
        # execute_fetchall: one round trip to the connection's thread instead of two.
        rows = await self._db.execute_fetchall(
            """
            WITH top AS MATERIALIZED (
                SELECT memory_fts.rowid AS id, bm25(memory_fts, ?, ?, ?) AS rank, m.created_at AS created_at
                FROM memory_fts JOIN memory AS m INDEXED BY memory_rank ON m.id = memory_fts.rowid
                WHERE memory_fts MATCH ? AND (? IS NULL OR m.source = ?)
                ORDER BY rank, created_at DESC
                LIMIT ?
            )
            SELECT m.source, m.ref, m.path, m.title, m.created_at, top.rank,
                   snippet(memory_fts, 2, ?, ?, ?, ?) AS body_snippet,
                   snippet(memory_fts, -1, ?, ?, ?, ?) AS best_snippet
            FROM top
            CROSS JOIN memory_fts ON memory_fts.rowid = top.id
            JOIN memory AS m ON m.id = top.id
            WHERE memory_fts MATCH ?
            ORDER BY top.rank, top.created_at DESC
            """,
            (
                W_TITLE,
                W_TAGS,
                W_BODY,
                match,
                source,
                source,
                limit,
                *_SNIPPET_ARGS,
                *_SNIPPET_ARGS,
                match,
            ),
        )
        hits = []
        for r in rows:
            body_snippet, best_snippet = str(r["body_snippet"] or ""), str(r["best_snippet"] or "")
            # Prefer the body's context; when only the title or tags matched, show that match.
            snippet = body_snippet if SNIPPET_OPEN in body_snippet else best_snippet or body_snippet
            snippet = " ".join(snippet.split())  # one line: transcripts are full of blank lines
            hits.append(
                MemoryHit(
                    id=f"{r['source']}:{r['ref']}",
                    source=cast(MemorySource, r["source"]),
                    title=str(r["title"]),
                    snippet=snippet,
                    score=-float(r["rank"]),
                    path=r["path"],
                    created_at=float(r["created_at"]),
                )
            )
        return hits


_SNIPPET_ARGS = (SNIPPET_OPEN, SNIPPET_CLOSE, SNIPPET_ELLIPSIS, SNIPPET_TOKENS)


def _subagent_title(prompt: str) -> str:
    for line in prompt.splitlines():
        line = line.strip()
        if line:
            if len(line) > SUBAGENT_TITLE_CHARS:
                return line[: SUBAGENT_TITLE_CHARS - 1].rstrip() + "…"
            return line
    return ""


def _entry_hash(title: str, tags: str, body: str) -> str:
    return hashlib.blake2b("\x1f".join((title, tags, body)).encode(), digest_size=16).hexdigest()


# -- file side (worker threads) ----------------------------------------------------------------


def _scan(note_dirs: Sequence[Path]) -> dict[str, _Stat]:
    """Every note file under the directories, by path; missing directories are simply empty."""
    found: dict[str, _Stat] = {}
    for d in note_dirs:
        root = os.path.realpath(d)
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            for name in filenames:
                if name.startswith(".") or not name.lower().endswith(NOTE_SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if os.path.isfile(path):
                    found.setdefault(path, _Stat(st.st_mtime_ns, st.st_size))
    return found


def _read_notes(paths: Sequence[str], known: dict[str, _Known]) -> list[_Read]:
    out: list[_Read] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                # Stat before reading: if the file changes mid-read, its mtime moves past the one
                # recorded and the next refresh reads it again.
                st = os.fstat(f.fileno())
                data = f.read(MAX_NOTE_BYTES)
        except OSError as e:
            log.debug("memory: cannot read note %s: %s", path, e)
            continue
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        stat = _Stat(st.st_mtime_ns, st.st_size)
        k = known.get(path)
        if k is not None and k.hash == digest:
            out.append(_Read(path, stat, digest, None))
            continue
        text = data.decode("utf-8", errors="replace")
        stem = os.path.splitext(os.path.basename(path))[0]
        out.append(_Read(path, stat, digest, tuple(parse_note(text, fallback_title=stem))))
    return out


# -- database side (the connection's worker thread) --------------------------------------------


def _write_notes(
    conn: sqlite3.Connection, reads: Sequence[_Read], gone: Sequence[str], now: float, counts: _Counts
) -> None:
    for path in gone:
        counts.deleted += conn.execute(
            "DELETE FROM memory WHERE source = 'note' AND path = ?", (path,)
        ).rowcount
        conn.execute("DELETE FROM memory_files WHERE path = ?", (path,))
    for r in reads:
        if r.sections is not None:
            _write_sections(conn, r.path, r.sections, r.stat.mtime_ns / 1e9, counts)
        conn.execute(
            """
            INSERT INTO memory_files (path, mtime_ns, size, hash, indexed_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (path) DO UPDATE SET
                mtime_ns = excluded.mtime_ns, size = excluded.size, hash = excluded.hash,
                indexed_at = excluded.indexed_at
            """,
            (r.path, r.stat.mtime_ns, r.stat.size, r.hash, now),
        )


def _write_sections(
    conn: sqlite3.Connection, path: str, sections: Sequence[Section], mtime: float, counts: _Counts
) -> None:
    """Make the file's rows match `sections`, rewriting only rows whose text changed."""
    existing = {
        str(ref): (int(rowid), str(h))
        for rowid, ref, h in conn.execute(
            "SELECT id, ref, hash FROM memory WHERE source = 'note' AND path = ?", (path,)
        )
    }
    for s in sections:
        ref = f"{path}#{s.ordinal}"
        tags = " ".join(s.tags)
        digest = _entry_hash(s.title, tags, s.body)
        old = existing.pop(ref, None)
        if old is None:
            conn.execute(
                """
                INSERT INTO memory (source, ref, path, title, tags, body, created_at, hash)
                VALUES ('note', ?, ?, ?, ?, ?, ?, ?)
                """,
                (ref, path, s.title, tags, s.body, mtime, digest),
            )
            counts.written += 1
        elif old[1] != digest:
            conn.execute(
                "UPDATE memory SET title = ?, tags = ?, body = ?, created_at = ?, hash = ? WHERE id = ?",
                (s.title, tags, s.body, mtime, digest, old[0]),
            )
            counts.written += 1
    for rowid, _ in existing.values():
        conn.execute("DELETE FROM memory WHERE id = ?", (rowid,))
        counts.deleted += 1
