"""Benchmark search_memory: search latency at 10k and 100k entries, and indexing rates.

Run:  .venv/bin/python bench/bench_memory.py [--sizes 10000,100000] [--queries 300] [--seed 1]

Synthetic entries (Zipf-distributed words from a made-up vocabulary) go through the real schema
and triggers: index rates are measured through the MemoryIndex API (index_subagent one by one,
refresh_notes over real note files), the bulk of the corpus is inserted straight into the
`memory` table in large transactions. Search latency is measured through MemoryIndex.search
(query parsing, bm25 ranking, snippets) on a mix of one-word, two-word, phrase and prefix
queries. The baseline, measured in the same run on the same database, is the naive
alternative: `(title LIKE '%w%' OR body LIKE '%w%') ORDER BY created_at DESC LIMIT n`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiosqlite
import anyio

from boocode_mcp.memory import MemoryIndex
from boocode_mcp.memory.index import MAX_LIMIT
from boocode_mcp.store import connect

VOCAB_SIZE = 20_000
LIMIT = 10
GOAL_P50_MS = 10.0
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]


class Corpus:
    """Deterministic synthetic text: Zipf-ish word frequencies like real prose."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < VOCAB_SIZE:
            words.add("".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 4))))
        self.vocab = sorted(words)
        self.rng.shuffle(self.vocab)
        weights = [1.0 / (rank + 1) ** 1.07 for rank in range(VOCAB_SIZE)]
        self.cum = list(_accumulate(weights))

    def words(self, n: int) -> list[str]:
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=n)

    def entry(self) -> tuple[str, str, str]:
        title = " ".join(self.words(self.rng.randint(2, 6)))
        tags = " ".join(self.words(self.rng.randint(0, 3)))
        body = " ".join(self.words(self.rng.randint(30, 150)))
        return title, tags, body

    def queries(self, n: int) -> list[str]:
        """A mix users type: mid-frequency words, word pairs, an exact phrase, a prefix."""
        out: list[str] = []
        for i in range(n):
            kind = i % 10
            if kind < 5:
                out.append(self._mid_word())
            elif kind < 8:
                out.append(f"{self._mid_word()} {self._mid_word()}")
            elif kind == 8:
                body = self.words(40)
                j = self.rng.randrange(len(body) - 1)
                out.append(f'"{body[j]} {body[j + 1]}"')
            else:
                out.append(self._mid_word()[:4] + "*")
        return out

    def _mid_word(self) -> str:
        return self.vocab[self.rng.randint(20, 5000)]


def _accumulate(xs: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for x in xs:
        total += x
        out.append(total)
    return out


def pct(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def run(sizes: Sequence[int], n_queries: int, seed: int) -> None:
    corpus = Corpus(seed)
    with tempfile.TemporaryDirectory() as tmp:
        db = await connect(Path(tmp) / "bench.db")
        notes = Path(tmp) / "notes"
        notes.mkdir()
        try:
            # -- indexing through the API ---------------------------------------------------
            api = MemoryIndex(db, [notes])
            n_api = 2000
            start = time.perf_counter()
            for i in range(n_api):
                title, tags, body = corpus.entry()
                await api.index_subagent(
                    subagent_id=f"api-{i}",
                    agent="bench",
                    prompt=f"{title}\n{tags}",
                    final_message=body,
                    tool_titles=["Edit file", "Run tests"],
                    files=["src/app.py"],
                    created_at=time.time(),
                )
            api_rate = n_api / (time.perf_counter() - start)
            print(f"index_subagent, one call per run:     {api_rate:9,.0f} entries/s  ({n_api} runs)")

            n_files, per_file = 200, 10
            for f in range(n_files):
                parts = []
                for _ in range(per_file):
                    title, tags, body = corpus.entry()
                    parts.append(f"## {title} #{tags.split()[0] if tags else 'misc'}\n\n{body}\n")
                (notes / f"note-{f:04d}.md").write_text("\n".join(parts), encoding="utf-8")
            start = time.perf_counter()
            stats = await api.refresh_notes()
            notes_s = time.perf_counter() - start
            print(
                f"refresh_notes, first pass:            {stats.entries_written / notes_s:9,.0f} entries/s  "
                f"({stats.files_indexed} files, {stats.entries_written} sections, {notes_s * 1000:.0f} ms)"
            )
            stat_only = [await timed(api.refresh_notes) for _ in range(20)]
            print(
                f"refresh_notes, nothing changed:       p50 {pct(stat_only, 50):6.2f} ms  "
                f"({n_files} files stat'ed; search runs this at most every 2 s)"
            )

            # -- bulk fill and search latency -----------------------------------------------
            # Searches go through an index over the same note directory, so they include the
            # stat-only refresh search() runs every 2 s, as a server's do.
            searcher = MemoryIndex(db, [notes])
            for size in sizes:
                cur = await db.execute("SELECT count(*) FROM memory")
                row = await cur.fetchone()
                have = int(row[0]) if row else 0
                if size > have:
                    rate = await bulk_fill(db, corpus, size - have)
                    print(f"\nbulk insert to {size:,} entries: {rate:9,.0f} entries/s (FTS5 fed by triggers)")
                await report_latency(db, searcher, corpus.queries(n_queries), size)
        finally:
            await db.close()


async def bulk_fill(db: aiosqlite.Connection, corpus: Corpus, n: int) -> float:
    now = time.time()
    start = time.perf_counter()
    batch = 5000
    for first in range(0, n, batch):
        rows = []
        for i in range(first, min(n, first + batch)):
            title, tags, body = corpus.entry()
            source = "note" if i % 2 else "subagent"
            ref = f"bulk-{now}-{i}"
            rows.append((source, ref, title, tags, body, now - i, ref))
        await db.execute("BEGIN IMMEDIATE")
        await db.executemany(
            "INSERT INTO memory (source, ref, title, tags, body, created_at, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await db.execute("COMMIT")
    return n / (time.perf_counter() - start)


async def report_latency(db: aiosqlite.Connection, index: MemoryIndex, queries: list[str], size: int) -> None:
    for q in queries[:20]:  # warm the page cache like a running server has it
        await index.search(q, LIMIT)
    lat: list[float] = []
    empty = 0
    for q in queries:
        start = time.perf_counter()
        hits = await index.search(q, LIMIT)
        lat.append((time.perf_counter() - start) * 1000)
        empty += not hits
    by_kind: dict[str, list[float]] = {}
    for q, ms in zip(queries, lat, strict=True):
        kind = "phrase" if q.startswith('"') else "prefix" if q.endswith("*") else f"{len(q.split())}-word"
        by_kind.setdefault(kind, []).append(ms)

    like: list[float] = []
    for q in queries[: max(20, len(queries) // 10)]:
        word = q.strip('"*').split()[0]
        pattern = f"%{word}%"
        start = time.perf_counter()
        cur = await db.execute(
            "SELECT id, title FROM memory WHERE title LIKE ? OR body LIKE ? ORDER BY created_at DESC LIMIT ?",
            (pattern, pattern, LIMIT),
        )
        await cur.fetchall()
        like.append((time.perf_counter() - start) * 1000)

    top_word = await _most_common_word(db)
    worst = [await timed(lambda: index.search(top_word, MAX_LIMIT)) for _ in range(5)]

    p50, p99 = pct(lat, 50), pct(lat, 99)
    verdict = "meets" if p50 <= GOAL_P50_MS else "MISSES"
    print(f"search at {size:,} entries ({len(queries)} queries, limit {LIMIT}, {empty} with no hit):")
    print(
        f"  search_memory   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        f"   ({verdict} the p50 ≤ {GOAL_P50_MS:g} ms goal)"
    )
    for kind, samples in sorted(by_kind.items()):
        print(
            f"    {kind:<8}      p50 {pct(samples, 50):7.2f} ms"
            f"   p99 {pct(samples, 99):7.2f} ms   n={len(samples)}"
        )
    print(f"  LIKE baseline   p50 {pct(like, 50):7.2f} ms   p99 {pct(like, 99):7.2f} ms   (n={len(like)})")
    print(f"  ratio LIKE/FTS at p50: {pct(like, 50) / p50:6.1f}x")
    print(f"  worst case, the most common word {top_word!r}, limit {MAX_LIMIT}: p50 {pct(worst, 50):.1f} ms")
    short = top_word[:2] + "*"
    two_letter = [await timed(lambda: index.search(short, LIMIT)) for _ in range(3)]
    print(f"  worst case, a two-letter prefix {short!r}: p50 {pct(two_letter, 50):.1f} ms")


async def _most_common_word(db: aiosqlite.Connection) -> str:
    cur = await db.execute("SELECT body FROM memory ORDER BY id DESC LIMIT 200")
    counts: dict[str, int] = {}
    for row in await cur.fetchall():
        for w in str(row[0]).split():
            counts[w] = counts.get(w, 0) + 1
    return max(counts, key=lambda w: counts[w])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes to measure, comma-separated")
    parser.add_argument("--queries", type=int, default=300, help="queries per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    start = time.perf_counter()
    anyio.run(run, sizes, args.queries, args.seed)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
