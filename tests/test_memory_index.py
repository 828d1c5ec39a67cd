"""MemoryIndex against real sqlite files and real note files: ranking, snippets, incremental
re-indexing, subagent transcripts, hostile queries, filters."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.memory.index import Ranking
from boocode_mcp.memory.query import parse_query
from boocode_mcp.store import LATEST_VERSION, Database, connect
from boocode_mcp.store import memory as store_memory
from boocode_mcp.store.db import SqliteDatabase
from boocode_mcp.store.migrations import load_migrations

from .conftest import sqlite_only
from .test_memory_query import HOSTILE

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(store_target: str | Path) -> AsyncIterator[Database]:
    conn = await connect(store_target)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    d = tmp_path / "ws" / ".boocode" / "memory"
    d.mkdir(parents=True)
    return d


def write(path: Path, text: str, *, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def bump_mtime(path: Path) -> None:
    # Filesystems with coarse timestamps could leave an immediate rewrite at the same mtime;
    # move it explicitly so the test pins the index's behaviour, not the clock's resolution.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def ids(index: MemoryIndex, query: str, *, source: str | None = None) -> list[str]:
    return [h.id for h in await index.search(query, source=source)]


async def memory_rows(db: Database) -> dict[str, int]:
    cur = await db.execute("SELECT source || ':' || ref, id FROM memory")
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


# -- ranking and snippets ----------------------------------------------------------------------


async def test_note_about_a_thing_beats_a_passing_mention(db: Database, notes: Path) -> None:
    about = write(
        notes / "postgres.md",
        "# Vacuum\nRun vacuum weekly. Vacuum reclaims dead tuples; autovacuum tuning matters.\n",
    )
    write(
        notes / "misc.md",
        "# Groceries\nBuy milk, eggs, bread, apples, coffee and remember to vacuum the car someday.\n",
    )
    for i in range(6):  # enough unrelated entries that "vacuum" is a rare, meaningful word
        write(notes / f"filler{i}.md", f"# Topic {i}\nunrelated text about subject number {i}\n")
    index = MemoryIndex(db, [notes])
    hits = await index.search("vacuum")
    assert [h.id for h in hits] == [f"note:{about}#1", f"note:{notes / 'misc.md'}#1"]
    assert hits[0].score > hits[1].score > 0
    assert hits[0].title == "Vacuum"
    assert hits[0].path == str(about)


async def test_title_match_outranks_the_same_word_in_the_body(db: Database, notes: Path) -> None:
    # Unweighted bm25 would rank b.md first (a one-word body is all "kafka"); the title weight
    # must put the note whose heading names the thing first.
    write(
        notes / "a.md",
        "# Kafka consumer group rebalancing notes\nhow partitions get reassigned as members join or leave\n",
    )
    write(notes / "b.md", "# Message queues\nkafka\n")
    for i in range(6):
        write(notes / f"filler{i}.md", f"# Topic {i}\nunrelated text about subject number {i}\n")
    index = MemoryIndex(db, [notes])
    assert await ids(index, "kafka") == [f"note:{notes / 'a.md'}#1", f"note:{notes / 'b.md'}#1"]


async def test_snippet_marks_the_matched_words(db: Database, notes: Path) -> None:
    filler = " ".join(f"word{i}" for i in range(80))
    write(notes / "n.md", f"# Notes\n{filler} the flaky integration test fails on Mondays {filler}\n")
    index = MemoryIndex(db, [notes])
    (hit,) = await index.search("flaky mondays")
    assert "«flaky»" in hit.snippet and "«Mondays»" in hit.snippet
    assert "…" in hit.snippet  # cut to the context, not the whole 160-word body
    assert len(hit.snippet) < 400


async def test_snippet_shows_a_title_or_tag_match_when_the_body_has_none(db: Database, notes: Path) -> None:
    write(notes / "n.md", "---\ntags: [observability]\n---\n# Grafana dashboards\nsee the wiki\n")
    index = MemoryIndex(db, [notes])
    (by_title,) = await index.search("grafana")
    assert "«Grafana»" in by_title.snippet
    (by_tag,) = await index.search("observability")
    assert "«observability»" in by_tag.snippet


async def test_recency_breaks_ties(db: Database) -> None:
    index = MemoryIndex(db, [])
    for sid, when in (("old", 1000.0), ("new", 2000.0), ("mid", 1500.0)):
        await index.index_subagent(
            subagent_id=sid,
            agent="opencode",
            prompt="rotate the signing keys",
            final_message=None,
            tool_titles=[],
            files=[],
            created_at=when,
        )
    assert await ids(index, "signing keys") == ["subagent:new", "subagent:mid", "subagent:old"]


# -- incremental note indexing -----------------------------------------------------------------


async def test_edit_reindexes_only_the_changed_section(db: Database, notes: Path) -> None:
    note = write(notes / "runbook.md", "# Restart\nuse systemctl restart\n# Logs\nlogs live in journald\n")
    index = MemoryIndex(db, [notes])
    first = await index.refresh_notes()
    assert (first.files_indexed, first.entries_written) == (1, 2)
    before = await memory_rows(db)

    write(note, "# Restart\nuse systemctl restart\n# Logs\nlogs now ship to loki\n")
    bump_mtime(note)
    stats = await index.refresh_notes()
    assert (stats.files_indexed, stats.entries_written, stats.entries_deleted) == (1, 1, 0)
    assert await ids(index, "loki") == [f"note:{note}#2"]
    assert await ids(index, "journald") == []
    # The untouched section kept its row (not deleted and re-inserted).
    after = await memory_rows(db)
    assert after[f"note:{note}#1"] == before[f"note:{note}#1"]


async def test_removed_section_and_deleted_file_disappear(db: Database, notes: Path) -> None:
    keep = write(notes / "keep.md", "# One\nalpha\n# Two\nbravo\n")
    doomed = write(notes / "sub" / "doomed.md", "# Gone soon\ncharlie\n")
    index = MemoryIndex(db, [notes])
    await index.refresh_notes()
    assert await ids(index, "charlie") == [f"note:{doomed}#1"]

    write(keep, "# One\nalpha\n")
    bump_mtime(keep)
    doomed.unlink()
    stats = await index.refresh_notes()
    assert (stats.files_removed, stats.entries_deleted) == (1, 2)
    assert await ids(index, "charlie") == []
    assert await ids(index, "bravo") == []
    assert await ids(index, "alpha") == [f"note:{keep}#1"]
    assert set(await memory_rows(db)) == {f"note:{keep}#1"}


async def test_unchanged_files_are_not_reread_or_rewritten(db: Database, notes: Path) -> None:
    paths = [write(notes / f"n{i}.md", f"# Note {i}\nbody {i}\n") for i in range(5)]
    index = MemoryIndex(db, [notes])
    await index.refresh_notes()
    rows = await memory_rows(db)
    changes = db.connection.total_changes if isinstance(db, SqliteDatabase) else None

    again = await index.refresh_notes()
    assert (again.files_seen, again.files_unchanged, again.files_indexed) == (5, 5, 0)
    assert (again.entries_written, again.entries_deleted) == (0, 0)
    if isinstance(db, SqliteDatabase):
        assert db.connection.total_changes == changes  # not a single row written
    assert await memory_rows(db) == rows

    # A new mtime with the same bytes is re-read and hashed, but nothing is re-indexed.
    bump_mtime(paths[0])
    touched = await index.refresh_notes()
    assert (touched.files_unchanged, touched.files_touched, touched.files_indexed) == (4, 1, 0)
    assert touched.entries_written == 0
    assert await memory_rows(db) == rows


async def test_undecodable_note_is_indexed_with_replacement(db: Database, notes: Path) -> None:
    note = notes / "latin1.md"
    note.write_bytes(b"# Caf\xe9 menu\nespresso \xff\xfe and\x00 more\n")
    index = MemoryIndex(db, [notes])
    assert (await index.refresh_notes()).files_indexed == 1
    assert await ids(index, "espresso") == [f"note:{note}#1"]


async def test_search_refreshes_notes_by_itself(db: Database, notes: Path) -> None:
    index = MemoryIndex(db, [notes], refresh_interval_s=0)
    assert await ids(index, "zanzibar") == []
    note = write(notes / "travel.md", "# Trip\nflights to zanzibar\n")
    assert await ids(index, "zanzibar") == [f"note:{note}#1"]
    note.unlink()
    assert await ids(index, "zanzibar") == []


async def test_search_refreshes_at_most_once_per_interval(db: Database, notes: Path) -> None:
    index = MemoryIndex(db, [notes], refresh_interval_s=3600)
    assert await ids(index, "zanzibar") == []  # this search did the refresh
    note = write(notes / "travel.md", "# Trip\nflights to zanzibar\n")
    assert await ids(index, "zanzibar") == []  # within the interval: no re-scan per query
    await index.refresh_notes()
    assert await ids(index, "zanzibar") == [f"note:{note}#1"]


async def test_notes_from_workspace_and_user_dirs(db: Database, notes: Path, tmp_path: Path) -> None:
    user = tmp_path / "home" / ".config" / "boocode" / "memory"
    ws_note = write(notes / "ws.md", "# Build\nmake release from the workspace\n")
    user_note = write(user / "mine.markdown", "# Habits\nalways make release notes\n")
    write(notes / ".hidden.md", "# Hidden\nrelease\n")
    write(notes / "readme.txt", "release\n")
    index = MemoryIndex(db, [notes, user, tmp_path / "does-not-exist"])
    assert sorted(await ids(index, "release")) == sorted([f"note:{ws_note}#1", f"note:{user_note}#1"])


async def test_refresh_inside_another_tasks_transaction(db: Database, notes: Path) -> None:
    # The connection is shared with the engine: a transaction another task has open must not
    # make refresh fail ("cannot start a transaction within a transaction"), nor be broken by it.
    sqlite_only(db, "a transaction opened by hand on the one shared connection")
    assert isinstance(db, SqliteDatabase)
    note = write(notes / "n.md", "# Shared\nconnection test\n")
    index = MemoryIndex(db, [notes])
    await db.execute("BEGIN IMMEDIATE")
    stats = await index.refresh_notes()
    assert db.in_transaction
    await db.execute("COMMIT")
    assert stats.entries_written == 1
    assert await ids(index, "connection") == [f"note:{note}#1"]


async def test_concurrent_searches_all_see_the_notes(db: Database, notes: Path) -> None:
    for i in range(20):
        write(notes / f"n{i}.md", f"# Note {i}\nconcurrency {i}\n")
    index = MemoryIndex(db, [notes], refresh_interval_s=3600)
    results: list[int] = []

    async def one() -> None:
        results.append(len(await index.search("concurrency", limit=50)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
    assert results == [20] * 8
    assert (await index.refresh_notes()).files_unchanged == 20


# -- subagent transcripts ----------------------------------------------------------------------


async def test_subagent_transcript_is_searchable_at_once(db: Database) -> None:
    index = MemoryIndex(db, [])
    await index.index_subagent(
        subagent_id="run-1",
        agent="opencode",
        prompt="Add retry with backoff to the uploader",
        final_message="Added exponential backoff in uploader.py",
        tool_titles=["Edit src/uploader.py", "Run pytest"],
        files=["src/uploader.py", "tests/test_uploader.py"],
        created_at=1_700_000_000.0,
    )
    for query in ("backoff", "exponential", "pytest", "test_uploader", '"src/uploader.py"', "opencode"):
        hits = await index.search(query)
        assert [h.id for h in hits] == ["subagent:run-1"], query
    (hit,) = await index.search("exponential")
    assert hit.source == "subagent"
    assert hit.title == "Add retry with backoff to the uploader"
    assert hit.created_at == 1_700_000_000.0
    assert hit.path is None


async def test_subagent_needs_an_id(db: Database) -> None:
    index = MemoryIndex(db, [])
    with pytest.raises(InvalidRequestError, match="subagent_id"):
        await index.index_subagent(
            subagent_id="",
            agent="a",
            prompt="p",
            final_message=None,
            tool_titles=[],
            files=[],
            created_at=0.0,
        )


async def test_reindexing_a_subagent_replaces_it(db: Database) -> None:
    index = MemoryIndex(db, [])
    for final in ("first draft wording", "second final wording"):
        await index.index_subagent(
            subagent_id="r",
            agent="qwen",
            prompt="p",
            final_message=final,
            tool_titles=[],
            files=[],
            created_at=1.0,
        )
    assert await ids(index, "draft") == []
    assert await ids(index, "second") == ["subagent:r"]
    assert list(await memory_rows(db)) == ["subagent:r"]


# -- query language and arguments --------------------------------------------------------------


async def test_hostile_queries_never_error(db: Database, notes: Path) -> None:
    write(notes / "n.md", "# AND OR NOT\nNEAR title foo a b x 東京都 café\n")
    index = MemoryIndex(db, [notes])
    for query in HOSTILE:
        hits = await index.search(query, limit=100)
        assert isinstance(hits, list), query
    # The operators are plain words that can be searched for.
    assert len(await index.search("NEAR")) == 1
    assert len(await index.search("title:foo")) == 1
    assert len(await index.search("東京都")) == 1
    assert len(await index.search("cafe")) == 1  # diacritics folded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60) | st.text(alphabet='"*():^-#{}+ aANDORNEAR', max_size=30))
async def test_generated_queries_never_error(db: Database, notes: Path, query: str) -> None:
    write(notes / "n.md", "# AND OR NOT\nNEAR title foo a b x\n")
    index = MemoryIndex(db, [notes], refresh_interval_s=3600)
    assert isinstance(await index.search(query), list)


async def test_empty_query_has_no_hits(db: Database, notes: Path) -> None:
    write(notes / "n.md", "# Something\ntext\n")
    index = MemoryIndex(db, [notes])
    for query in ("", "   ", "\n\t", "*", '""', "🎉"):
        assert await index.search(query) == [], repr(query)


async def test_exact_phrase(db: Database, notes: Path) -> None:
    adjacent = write(notes / "a.md", "# A\nthe quick brown fox\n")
    write(notes / "b.md", "# B\nbrown dogs are quick\n")
    index = MemoryIndex(db, [notes])
    assert await ids(index, '"quick brown"') == [f"note:{adjacent}#1"]
    assert len(await ids(index, "quick brown")) == 2


async def test_prefix_only_with_a_star(db: Database, notes: Path) -> None:
    note = write(notes / "a.md", "# Releases\nthe deployment pipeline\n")
    index = MemoryIndex(db, [notes])
    assert await ids(index, "deplo") == []
    assert await ids(index, "deplo*") == [f"note:{note}#1"]
    assert await ids(index, '"the deploy*"') == [f"note:{note}#1"]


async def test_all_words_first_then_any_word(db: Database, notes: Path) -> None:
    both = write(notes / "both.md", "# Both\nalpha and beta together\n")
    write(notes / "one.md", "# One\nalpha alone\n")
    index = MemoryIndex(db, [notes])
    assert await ids(index, "alpha beta") == [f"note:{both}#1"]
    # No entry has every word: fall back to any word rather than nothing.
    assert sorted(await ids(index, "alpha zzyzx")) == sorted([f"note:{both}#1", f"note:{notes / 'one.md'}#1"])


async def test_tags_are_searchable(db: Database, notes: Path) -> None:
    tagged = write(notes / "t.md", "---\ntags: [kubernetes, oncall]\n---\n# Pager\nwake up #incident\n")
    mention = write(notes / "m.md", "# Reading\nbook about kubernetes\n")
    index = MemoryIndex(db, [notes])
    assert set(await ids(index, "oncall")) == {f"note:{tagged}#1"}
    assert set(await ids(index, "incident")) == {f"note:{tagged}#1"}
    # Plain word: tag and body mentions both match, the tag ranks first.
    assert await ids(index, "kubernetes") == [f"note:{tagged}#1", f"note:{mention}#1"]
    # #tag: the tags column only.
    assert await ids(index, "#kubernetes") == [f"note:{tagged}#1"]


async def test_source_filter(db: Database, notes: Path) -> None:
    note = write(notes / "n.md", "# Migration\nschema migration steps\n")
    index = MemoryIndex(db, [notes])
    await index.index_subagent(
        subagent_id="s",
        agent="codex",
        prompt="write the migration",
        final_message="done",
        tool_titles=[],
        files=[],
        created_at=5.0,
    )
    assert sorted(await ids(index, "migration")) == sorted([f"note:{note}#1", "subagent:s"])
    assert await ids(index, "migration", source="note") == [f"note:{note}#1"]
    assert await ids(index, "migration", source="subagent") == ["subagent:s"]
    with pytest.raises(InvalidRequestError, match="unknown memory source 'notes'"):
        await index.search("migration", source="notes")


async def test_limit_is_bounded(db: Database) -> None:
    index = MemoryIndex(db, [])
    for i in range(12):
        await index.index_subagent(
            subagent_id=f"s{i}",
            agent="a",
            prompt="bounded limit",
            final_message=None,
            tool_titles=[],
            files=[],
            created_at=float(i),
        )
    assert len(await index.search("bounded")) == 10
    assert len(await index.search("bounded", limit=3)) == 3
    assert len(await index.search("bounded", limit=100)) == 12
    for bad in (0, -1, 101):
        with pytest.raises(InvalidRequestError, match="limit must be an integer from 1 to 100"):
            await index.search("bounded", limit=bad)


# -- bounded work on large and broad queries ---------------------------------------------------
# A small Ranking makes a handful of entries behave like a large memory: a word in more entries
# than term_cost_cap is "very common", a query matching more than window entries is "broad".


async def add_runs(index: MemoryIndex, texts: list[str], *, first_created: float = 1000.0) -> list[str]:
    ids = []
    for i, text in enumerate(texts):
        await index.index_subagent(
            subagent_id=f"r{i}",
            agent="opencode",
            prompt=f"run {i}",
            final_message=text,
            tool_titles=[],
            files=[],
            created_at=first_created + i,
        )
        ids.append(f"subagent:r{i}")
    return ids


async def test_a_very_common_word_lists_its_newest_matches_unscored(db: Database) -> None:
    index = MemoryIndex(db, [], ranking=Ranking(term_cost_cap=4))
    ids = await add_runs(index, [f"common text number {i}" for i in range(6)])
    hits = await index.search("common")
    assert [h.id for h in hits] == ids[::-1]  # most recently written first
    assert {h.score for h in hits} == {0.0}
    assert all("«common»" in h.snippet for h in hits)
    # The same corpus with a cap above the word's count ranks it by bm25 instead.
    scored = await MemoryIndex(db, []).search("common")
    assert sorted(h.id for h in scored) == sorted(ids)
    assert all(h.score > 0 for h in scored)


async def test_a_common_word_still_filters_while_a_rare_one_ranks(db: Database) -> None:
    index = MemoryIndex(db, [], ranking=Ranking(term_cost_cap=4))
    ids = await add_runs(
        index,
        [
            "common filler",
            "common kestrel kestrel kestrel sighting",
            "common filler again",
            "kestrel without the frequent word",
            "common kestrel once in a much longer text about many other things entirely",
            "common filler more",
        ],
    )
    hits = await index.search("common kestrel")
    # Both words must match; only "kestrel" (in 3 entries, under the cap) weighs the score.
    assert [h.id for h in hits] == [ids[1], ids[4]]
    assert hits[0].score > hits[1].score > 0


async def test_a_broad_query_ranks_its_newest_matches_and_older_headings(db: Database, notes: Path) -> None:
    # The note's heading names the word; it is written first, so it is the oldest match.
    note = write(notes / "osprey.md", "# Osprey\nnesting notes\n")
    index = MemoryIndex(db, [notes], ranking=Ranking(window=3, heading_window=2))
    await index.refresh_notes()
    ids = await add_runs(index, [f"saw an osprey today, entry {i}" for i in range(8)])
    hits = await index.search("osprey", limit=10)
    # Ranked: the 3 newest matches, and the newest matches with the word in the heading; the
    # title weight puts the note first. The other 5 are not ranked and do not show.
    assert hits[0].id == f"note:{note}#1"
    assert [h.id for h in hits[1:]] == ids[:-4:-1]
    assert all(h.score > 0 for h in hits)


async def test_any_word_fallback_ranks_rare_words_first_then_newest(db: Database) -> None:
    index = MemoryIndex(db, [], ranking=Ranking(term_cost_cap=4))
    ids = await add_runs(index, ["common a", "harrier b", "common c", "common d", "common e", "common f"])
    # No entry holds both words: any word may match. "harrier" is scored; the very common word's
    # matches follow, newest first, unscored.
    hits = await index.search("harrier common", limit=4)
    assert [h.id for h in hits] == [ids[1], ids[5], ids[4], ids[3]]
    assert hits[0].score > 0
    assert [h.score for h in hits[1:]] == [0.0, 0.0, 0.0]


async def test_source_filter_holds_for_a_rare_source_among_broad_matches(db: Database, notes: Path) -> None:
    note = write(notes / "n.md", "# Birds\nheron by the river\n")
    index = MemoryIndex(db, [notes], ranking=Ranking(window=2, heading_window=0, term_cost_cap=3))
    await index.refresh_notes()
    await add_runs(index, [f"heron number {i}" for i in range(6)])
    # The note is the oldest of 7 matches: the filter is part of the match, not applied after it.
    assert await ids(index, "heron", source="note") == [f"note:{note}#1"]
    assert len(await index.search("heron", source="subagent")) == 6


async def test_the_source_names_are_words_like_any_other(db: Database, notes: Path) -> None:
    # Each entry's source is indexed for the filter; a query word must not match it there.
    write(notes / "a.md", "# Plain\nempty here\n")
    write(notes / "b.md", "# Other\nstill empty\n")
    index = MemoryIndex(db, [notes])
    ids_ = await add_runs(index, ["wrote the release note", "spawned a subagent for it", "unrelated"])
    for query in ("note", "NOTE", "Nöte", "not*", "no*"):
        assert await ids(index, query) == [ids_[0]], query
    assert await ids(index, "ｎｏｔｅ") == []  # unicode61 does not fold full-width letters
    for query in ("subagent", "subag*", "su*"):
        assert await ids(index, query) == [ids_[1]], query
    assert await ids(index, "note", source="note") == []


async def test_snippets_for_phrases_and_long_prefixes(db: Database, notes: Path) -> None:
    filler = " ".join(f"pad{i}" for i in range(60))
    note = write(notes / "n.md", f"# Deploys\n{filler} the deployment pipeline runs nightly {filler}\n")
    index = MemoryIndex(db, [notes])
    (hit,) = await index.search("deploym*")  # longer than any prefix index: one merged walk
    assert hit.id == f"note:{note}#1" and "«deployment»" in hit.snippet
    (hit,) = await index.search('"pipeline runs"')  # a phrase: the hit is sought by rowid
    assert "«pipeline runs»" in hit.snippet and "…" in hit.snippet


async def test_term_costs_are_recounted_after_this_index_writes(db: Database) -> None:
    index = MemoryIndex(db, [], ranking=Ranking(term_cost_cap=3))
    await add_runs(index, ["plover one", "plover two"])
    assert all(h.score > 0 for h in await index.search("plover"))
    await add_runs(index, ["plover three", "plover four", "plover five"], first_created=2000.0)
    # Now in 5 entries, over the cap: the remembered count of 2 must not be used.
    assert {h.score for h in await index.search("plover")} == {0.0}


async def test_an_edited_section_counts_as_newly_written(db: Database, notes: Path) -> None:
    index = MemoryIndex(db, [notes], ranking=Ranking(term_cost_cap=1))
    a = write(notes / "a.md", "# A\ncommon alpha\n")
    await index.refresh_notes()
    b = write(notes / "b.md", "# B\ncommon beta\n")
    await index.refresh_notes()
    assert await ids(index, "common") == [f"note:{b}#1", f"note:{a}#1"]
    write(a, "# A\ncommon alpha, edited\n")
    bump_mtime(a)
    await index.refresh_notes()
    assert await ids(index, "common") == [f"note:{a}#1", f"note:{b}#1"]


async def test_term_costs_count_matching_entries_up_to_the_cap(db: Database) -> None:
    index = MemoryIndex(db, [])
    await add_runs(index, ["wren finch", "wren", "wren finch", "wren", "wren lark"])
    terms = parse_query('wren finch lark "wren finch" wre* wrens*').all_terms()
    # A word: entries holding it. A phrase: its rarest word's count, ten per entry (positions
    # are checked). A prefix: its indexed part's count, three per entry, or ten beyond 4 letters.
    assert await store_memory.term_costs(db, terms, 100) == [5, 2, 1, 20, 15, 50]
    assert await store_memory.term_costs(db, terms, 4) == [4, 2, 1, 4, 4, 4]


async def test_a_database_from_before_the_search_migration_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    ours = next(m.version for m in load_migrations() if m.name == "memory_search")
    for mig in load_migrations()[: ours - 1]:
        conn.executescript(mig.for_dialect("sqlite"))
    conn.execute(f"PRAGMA user_version = {ours - 1}")
    conn.executemany(
        "INSERT INTO memory (source, ref, path, title, tags, body, created_at, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("note", "/n.md#1", "/n.md", "Cormorant", "birds", "dives for fish", 1.0, "h1"),
            ("subagent", "s1", None, "Count birds", "opencode", "a cormorant and a gull", 2.0, "h2"),
        ],
    )
    conn.close()
    db = await connect(path)
    try:
        assert int((await db.execute_fetchall("PRAGMA user_version"))[0][0]) == LATEST_VERSION
        await db.execute("INSERT INTO memory_fts(memory_fts) VALUES ('integrity-check')")
        index = MemoryIndex(db, [])
        assert await ids(index, "cormorant") == ["note:/n.md#1", "subagent:s1"]
        assert await ids(index, "cormorant", source="subagent") == ["subagent:s1"]
        # In the title (weight 10) before in the tags (5): the weights survived the rebuild.
        assert await ids(index, "birds") == ["subagent:s1", "note:/n.md#1"]
    finally:
        await db.close()
