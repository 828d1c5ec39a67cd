"""User search text → terms that can never be a syntax error.

A user's query is never handed to the store as syntax. It is cut into terms of plain words, which
the store renders for its engine (FTS5: each word an FTS5 string, so AND/OR/NOT/NEAR, `:`, `^`,
`-`, `(` are just words or separators; see `store.memory_fts5.fts5_term`), and only these forms are
given meaning on purpose:

- `"exact phrase"` — balanced double quotes: the words in that order. An unbalanced `"` is a space.
- `prefix*` — a `*` right after a term's last word makes that word a prefix (`deplo*`,
  `"rolling upd*"`). The prefix needs two or more characters: a one-letter prefix matches
  nearly every entry and ranking them all costs a second at 100k entries, so `a*` means `a`.
- `#tag` — a term starting with `#` matches the tags column only.
- anything else: each whitespace-separated chunk is one term; a chunk that punctuation cuts into
  several words (`src/app.py`, `a:b`, `foo-bar`) is matched as the phrase of those words.

Terms are ANDed (`all_terms()`). `any_terms()` gives the individual words (explicit phrases kept
whole) for the caller's fallback when the AND finds nothing; `match_all()` / `match_any()` are
the two as FTS5 expressions. Words are what FTS5's unicode61 tokenizer sees as token characters
(Unicode letters, digits, private-use and combining marks); everything else (emoji, symbols,
control characters, NUL) only separates words. A query with no
words at all is empty: `parse_query` returns a query whose `match_all()` is None.

Only the first `MAX_QUERY_CHARS` characters and `MAX_TERMS` terms are used, which bounds the
work a single (possibly pasted) query can cause.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from boocode_mcp.store.memory_fts5 import fts5_match

MAX_QUERY_CHARS = 4096
MAX_TERMS = 32
MAX_PHRASE_WORDS = 32
MIN_PREFIX_CHARS = 2


@dataclass(frozen=True)
class Term:
    """One unit of a query: one or more words matched as a phrase."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word is a prefix
    quoted: bool = False  # the user wrote it as an explicit "phrase"
    tag: bool = False  # restricted to the tags column


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        return not self.terms

    def all_terms(self) -> tuple[Term, ...]:
        """The terms that must all match, each once."""
        return _unique(self.terms)

    def any_terms(self) -> tuple[Term, ...]:
        """The fallback's terms, of which any may match: every word on its own, except in an
        explicit phrase; empty when that is no different from all_terms()."""
        loose: list[Term] = []
        for t in self.terms:
            if t.quoted or len(t.words) == 1:
                loose.append(t)
                continue
            last = len(t.words) - 1
            loose.extend(Term((w,), prefix=t.prefix and i == last, tag=t.tag) for i, w in enumerate(t.words))
        terms = _unique(loose)
        return terms if len(terms) >= 2 else ()

    def match_all(self) -> str | None:
        """Every term must match, as FTS5; None when there is nothing to search for."""
        return fts5_match(self.terms) if self.terms else None

    def match_any(self) -> str | None:
        """Any word may match (explicit phrases stay whole), as FTS5; None when that equals
        match_all()."""
        terms = self.any_terms()
        return fts5_match(terms, any_term=True) if terms else None


def parse_query(text: str) -> ParsedQuery:
    """Cut a user's search text into terms (see the module docstring for the syntax)."""
    text = text[:MAX_QUERY_CHARS]
    terms: list[Term] = []
    for segment, quoted in _segments(text):
        if quoted:
            spans = _word_spans(segment)
            if spans:
                words = tuple(segment[a:b] for a, b in spans[:MAX_PHRASE_WORDS])
                prefix = (
                    segment.rstrip().endswith("*")
                    and len(spans) <= MAX_PHRASE_WORDS
                    and len(words[-1]) >= MIN_PREFIX_CHARS
                )
                terms.append(Term(words, prefix=prefix, quoted=True))
            continue
        for chunk in segment.split():
            term = _chunk_term(chunk)
            if term is not None:
                terms.append(term)
    return ParsedQuery(tuple(terms[:MAX_TERMS]))


def _chunk_term(chunk: str) -> Term | None:
    spans = _word_spans(chunk)
    if not spans:
        return None
    spans = spans[:MAX_PHRASE_WORDS]
    words = tuple(chunk[a:b] for a, b in spans)
    last_end = spans[-1][1]
    prefix = last_end < len(chunk) and chunk[last_end] == "*" and len(words[-1]) >= MIN_PREFIX_CHARS
    tag = chunk.startswith("#") and spans[0][0] == 1 and any(c.isalpha() for c in words[0])
    return Term(words, prefix=prefix, tag=tag)


def _segments(text: str) -> list[tuple[str, bool]]:
    """Split on balanced double quotes: [(text, is_quoted)]; a lone trailing `"` is a space."""
    parts = text.split('"')
    balanced = len(parts) % 2 == 1
    out: list[tuple[str, bool]] = []
    for i, part in enumerate(parts):
        quoted = i % 2 == 1
        if quoted and not balanced and i == len(parts) - 1:
            # The unmatched opening quote: its text is ordinary words.
            quoted = False
        out.append((part, quoted))
    return out


def _is_word_char(c: str) -> bool:
    # Mirrors unicode61's default token categories "L* N* Co" (plus combining marks, which
    # remove_diacritics folds into the letter before them).
    cat = unicodedata.category(c)
    return cat[0] in "LN" or cat in ("Co", "Mn")


def _word_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = -1
    for i, c in enumerate(text):
        if _is_word_char(c):
            if start < 0:
                start = i
        elif start >= 0:
            spans.append((start, i))
            start = -1
    if start >= 0:
        spans.append((start, len(text)))
    return spans


def _unique(terms: Iterable[Term]) -> tuple[Term, ...]:
    """Each term once; a quoted and an unquoted term with the same words are the same match."""
    seen: dict[tuple[tuple[str, ...], bool, bool], Term] = {}
    for t in terms:
        seen.setdefault((t.words, t.prefix, t.tag), t)
    return tuple(seen.values())
