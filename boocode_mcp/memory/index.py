"""MemoryIndex: full-text search over markdown notes and finished subagent transcripts.

Entries live in the store (`store.memory`: the `memory` table and its FTS5 index). Two sources:

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

Search: the query is parsed by `memory.query` (never engine syntax by accident), all terms ANDed;
when that finds nothing and the query has several words, it is retried with the words ORed, so a
stray word does not hide every hit. An empty query, or one with no words at all (`*`, `"`, emoji
only), returns no hits rather than an error. `limit` outside 1..100 or a `source` other than
None/"note"/"subagent" is an InvalidRequestError.

Ranking (`Ranking`) is bm25 with the title weighted over tags over body, more recent entries first
among equal scores; `score` is that bm25, positive, higher is better. Its cost is kept bounded:

- A term whose words are in very many entries (a word in more than `term_cost_cap` entries, a
  phrase or prefix of very common words, which cost more per entry) does not count towards the
  score: bm25 would walk every entry it matches just to weigh it, and a word that common says
  little about relevance. It still has to match. The terms that count are the rarest, up to
  `scoring_budget` in all.
- Only the `window` most recently written entries matching the terms that count are ranked
  (those of them that match the whole query), and, when every term counts, the
  `heading_window` most recently written with those terms in their title or tags: the title
  and tag weights rank those high even when they are old, and they are few. "Written" means
  indexed, or for a note section, last changed (store rowids follow write order).
- A query none of whose terms counts (`the`, `te*`, `"fix the"`) lists its most recently written
  matches first; their `score` is 0. So do, after the scored hits, the matches of an any-word
  query that hold no word that counts.

Snippets mark matched words as «word».
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import anyio
import anyio.to_thread

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.memory.notes import parse_note
from boocode_mcp.memory.query import ParsedQuery, Term, parse_query
from boocode_mcp.store import memory as store
from boocode_mcp.store.db import Database, DatabaseError
from boocode_mcp.views import MemoryHit, MemorySource

log = logging.getLogger(__name__)

MAX_LIMIT = 100
DEFAULT_REFRESH_INTERVAL_S = 2.0
NOTE_SUFFIXES = (".md", ".markdown")
# A note bigger than this is indexed from its first MAX_NOTE_BYTES only.
MAX_NOTE_BYTES = 4 * 1024 * 1024
# Files handled per write transaction: bounds how long one refresh holds the shared connection.
FILES_PER_WRITE = 100

# How long term costs counted by a search are reused (see MemoryIndex._term_costs).
COSTS_TTL_S = 60.0
MAX_REMEMBERED_COSTS = 4096

SNIPPET = store.Snippet(open="«", close="»", ellipsis="…", tokens=24)
SUBAGENT_TITLE_CHARS = 120

_SOURCES: tuple[MemorySource, ...] = ("note", "subagent")


@dataclass(frozen=True)
class Ranking:
    """How search ranks, and the bounds on the work one search may do (see the module doc).

    The defaults keep a search at 100k entries within a few milliseconds whatever the query:
    scoring costs ~2 µs per ranked entry (up to window + heading_window of them), and a term's
    cost is the number of entries the store walks to weigh it (`store.memory.term_costs`:
    ~0.05 µs each for a word, more for a phrase or prefix).
    """

    # bm25 column weights (title, tags, body): a heading about the thing beats a passing mention.
    weights: tuple[float, float, float] = (10.0, 5.0, 1.0)
    window: int = 300
    heading_window: int = 200
    term_cost_cap: int = 10_000
    scoring_budget: int = 30_000

    def scored(self, terms: Sequence[Term], costs: Sequence[int]) -> list[Term]:
        """The terms that count towards the score: the cheapest, each under the cap, within budget."""
        chosen: list[Term] = []
        spent = 0
        for cost, term in sorted(zip(costs, terms, strict=True), key=lambda ct: ct[0]):
            if cost >= self.term_cost_cap or spent + cost > self.scoring_budget:
                break
            chosen.append(term)
            spent += cost
        return chosen


DEFAULT_RANKING = Ranking()


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


class MemoryIndex:
    """Index and search notes and subagent transcripts in the workspace database."""

    def __init__(
        self,
        db: Database,
        note_dirs: Sequence[Path],
        *,
        refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S,
        ranking: Ranking = DEFAULT_RANKING,
    ) -> None:
        self._db = db
        self._note_dirs = tuple(Path(d).expanduser() for d in note_dirs)
        self._refresh_interval_s = refresh_interval_s
        self._ranking = ranking
        self._refresh_lock = anyio.Lock()
        self._last_refresh: float | None = None
        # Term costs as last counted. Only a ranking input: a stale one changes which terms are
        # weighed, never what matches, so they are kept until this index writes, or for
        # COSTS_TTL_S when other processes may be writing.
        self._costs: dict[tuple[tuple[str, ...], bool, bool], int] = {}
        self._costs_since = time.monotonic()

    @property
    def note_dirs(self) -> tuple[Path, ...]:
        return self._note_dirs

    # -- notes ---------------------------------------------------------------------------------

    async def refresh_notes(self) -> RefreshStats:
        """Bring note entries up to date with the files on disk (incremental; see module doc)."""
        async with self._refresh_lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> RefreshStats:
        known = await store.known_note_files(self._db)
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
        written = deleted = 0
        now = time.time()
        for i in range(0, max(len(reads), 1), FILES_PER_WRITE):
            batch = reads[i : i + FILES_PER_WRITE]
            removals = gone if i == 0 else []
            if batch or removals:
                counts = await store.write_note_files(self._db, batch, removals, now)
                written += counts.written
                deleted += counts.deleted
        self._last_refresh = time.monotonic()
        if written or deleted:
            self._forget_costs()
        touched = sum(1 for r in reads if r.entries is None)
        return RefreshStats(
            files_seen=len(seen) - len(vanished),
            files_unchanged=len(seen) - len(moved),
            files_touched=touched,
            files_indexed=len(reads) - touched,
            files_removed=len(gone),
            entries_written=written,
            entries_deleted=deleted,
        )

    async def _maybe_refresh(self) -> None:
        async with self._refresh_lock:
            last = self._last_refresh
            if last is not None and time.monotonic() - last < self._refresh_interval_s:
                return
            try:
                await self._refresh_locked()
            except DatabaseError as e:
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
        await store.put_subagent(
            self._db,
            ref=subagent_id,
            title=title,
            tags=tags,
            body=body,
            agent=agent,
            created_at=created_at,
            hash=_entry_hash(title, tags, body),
        )
        self._forget_costs()

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

    async def _term_costs(self, terms: Sequence[Term]) -> list[int]:
        """The store's cost of each term, remembered: the common words of a workspace come up
        again and again, and counting one costs up to `term_cost_cap` entries walked."""
        now = time.monotonic()
        if now - self._costs_since > COSTS_TTL_S or len(self._costs) > MAX_REMEMBERED_COSTS:
            self._forget_costs()
        missing = list({_cost_key(t): t for t in terms if _cost_key(t) not in self._costs}.values())
        if missing:
            counted = await store.term_costs(self._db, missing, self._ranking.term_cost_cap)
            self._costs.update(zip(map(_cost_key, missing), counted, strict=True))
        return [self._costs[_cost_key(t)] for t in terms]

    def _forget_costs(self) -> None:
        self._costs.clear()
        self._costs_since = time.monotonic()

    async def _search_parsed(self, parsed: ParsedQuery, limit: int, source: str | None) -> list[MemoryHit]:
        r = self._ranking
        for terms, any_term in ((parsed.all_terms(), False), (parsed.any_terms(), True)):
            if not terms:
                continue
            costs = await self._term_costs(terms)
            search = store.Search(
                terms=terms,
                any_term=any_term,
                scored=r.scored(terms, costs),
                weights=r.weights,
                source=source,
                window=r.window,
                heading_window=r.heading_window,
                limit=limit,
            )
            found = await store.best_matches(self._db, search, SNIPPET)
            if found:
                break
        else:
            return []
        return [
            MemoryHit(
                id=f"{f.source}:{f.ref}",
                source=cast(MemorySource, f.source),
                title=f.title,
                # One line: transcripts are full of blank lines.
                snippet=" ".join(f.snippet.split()),
                score=f.score or 0.0,
                path=f.path,
                created_at=f.created_at,
            )
            for f in found
        ]


def _cost_key(term: Term) -> tuple[tuple[str, ...], bool, bool]:
    return (term.words, term.prefix, term.tag)


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
    """Every note file under the directories, by path; missing directories are simply empty.

    One stat per note file (scandir's entry types spare the rest): this runs on the search path
    every refresh interval, over every note.
    """
    found: dict[str, _Stat] = {}
    for d in note_dirs:
        pending = [os.path.realpath(d)]
        while pending:
            try:
                entries = os.scandir(pending.pop())
            except OSError:  # missing, not a directory, or unreadable
                continue
            subdirs = []
            with entries:
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    try:
                        # Like os.walk: symlinked directories are not descended into.
                        if e.is_dir(follow_symlinks=False):
                            subdirs.append(e.path)
                            continue
                        if not e.name.lower().endswith(NOTE_SUFFIXES):
                            continue
                        st = e.stat()
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.setdefault(e.path, _Stat(st.st_mtime_ns, st.st_size))
            pending.extend(sorted(subdirs, reverse=True))
    return found


def _read_notes(paths: Sequence[str], known: dict[str, store.KnownFile]) -> list[store.NoteFile]:
    out: list[store.NoteFile] = []
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
        k = known.get(path)
        entries: tuple[store.NoteEntry, ...] | None = None
        if k is None or k.hash != digest:
            text = data.decode("utf-8", errors="replace")
            stem = os.path.splitext(os.path.basename(path))[0]
            entries = tuple(
                store.NoteEntry(
                    ref=f"{path}#{s.ordinal}",
                    title=s.title,
                    tags=" ".join(s.tags),
                    body=s.body,
                    hash=_entry_hash(s.title, " ".join(s.tags), s.body),
                )
                for s in parse_note(text, fallback_title=stem)
            )
        out.append(store.NoteFile(path, st.st_mtime_ns, st.st_size, digest, entries))
    return out
