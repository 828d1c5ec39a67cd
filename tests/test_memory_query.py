"""User query text → FTS5 MATCH expressions: only phrases, prefixes and #tags mean anything."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boocode_mcp.memory.query import MAX_TERMS, parse_query

HOSTILE = [
    "",
    "   \t\n",
    '"',
    '""',
    '"unbalanced',
    'a "b c',
    "(",
    ")",
    "AND",
    "OR x",
    "x OR",
    "NOT x",
    "NEAR(a b)",
    "NEAR(a b, 3)",
    "*",
    "**",
    "a**",
    "*a",
    "-x",
    "a - b",
    "a:b",
    "title:foo",
    "{title tags}: foo",
    "^x",
    "+x",
    "x AND (y OR",
    "🎉🎉",
    "東京都",
    "東京*",
    "\x00",
    "a\x00b",
    "'; DROP TABLE memory; --",
    "\\",
    "x" * 100_000,
    " ".join(["w"] * 10_000),
    '"' * 501,
    # 1024 distinct words (32 terms of 32): more than a compound SELECT holds (a regression).
    " ".join("-".join(f"w{i}x{j}" for j in range(32)) for i in range(32)),
]


def fts_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, tags, body, tokenize = 'unicode61 remove_diacritics 2')"
    )
    db.execute("INSERT INTO t VALUES ('near and or', 'x', 'a b title foo 東京都 w')")
    return db


def check_accepted(db: sqlite3.Connection, text: str) -> None:
    parsed = parse_query(text)
    for expr in (parsed.match_all(), parsed.match_any()):
        if expr is not None:
            db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expr,)).fetchall()


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_are_valid_fts5(text: str) -> None:
    check_accepted(fts_db(), text)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.text(alphabet='"*():^-#{} aAND', max_size=30)
)
def test_generated_queries_are_valid_fts5(text: str) -> None:
    check_accepted(fts_db(), text)


def test_words_become_quoted_terms_anded() -> None:
    assert parse_query("fix OR NOT the-bug").match_all() == '"fix" AND "OR" AND "NOT" AND "the bug"'


def test_balanced_quotes_make_a_phrase_unbalanced_quote_is_a_space() -> None:
    assert parse_query('"rolling update" now').match_all() == '"rolling update" AND "now"'
    assert parse_query('say "hello').match_all() == '"say" AND "hello"'


def test_trailing_star_is_a_prefix_elsewhere_a_separator() -> None:
    assert parse_query("depl*").match_all() == '"depl" *'
    assert parse_query('"rolling upd*"').match_all() == '"rolling upd" *'
    assert parse_query("*depl a*b").match_all() == '"depl" AND "a b"'


def test_one_letter_prefix_is_the_plain_word() -> None:
    # A one-letter prefix matches nearly everything; ranking all of it is the slow worst case.
    assert parse_query("a*").match_all() == '"a"'
    assert parse_query('"rolling u*"').match_all() == '"rolling u"'


def test_hash_term_is_a_tags_column_filter() -> None:
    assert parse_query("#ops deploy").match_all() == 'tags : "ops" AND "deploy"'
    # A number is an issue reference, not a tag.
    assert parse_query("#123").match_all() == '"123"'


def test_no_words_means_empty() -> None:
    for text in ("", "  ", "*", '"', '""', "()", "🎉", "\x00", "- : ^"):
        parsed = parse_query(text)
        assert parsed.empty, text
        assert parsed.match_all() is None


def test_or_fallback_splits_words_but_keeps_explicit_phrases() -> None:
    parsed = parse_query('src/app.py "exact words" xy*')
    assert parsed.match_any() == '"src" OR "app" OR "py" OR "exact words" OR "xy" *'
    assert parse_query("single").match_any() is None


def test_term_count_is_bounded() -> None:
    parsed = parse_query(" ".join(f"w{i}" for i in range(1000)))
    assert len(parsed.terms) == MAX_TERMS


def test_terms_are_kept_once_per_match() -> None:
    # A quoted and a bare word match the same; the store is asked about each match once.
    parsed = parse_query('deploy "deploy" deploy* #deploy')
    assert [(t.words, t.prefix, t.tag) for t in parsed.all_terms()] == [
        (("deploy",), False, False),
        (("deploy",), True, False),
        (("deploy",), False, True),
    ]
    assert parse_query('solo "solo"').any_terms() == ()
    assert parse_query('solo "solo"').match_any() is None
    assert [t.words for t in parse_query("src/app.py src").any_terms()] == [("src",), ("app",), ("py",)]
