"""Markdown notes → searchable sections: front matter, heading sections, tags.

A note is cut into one section per heading (ATX `#`…`######` or setext `===`/`---`), each section
holding the text up to the next heading of any level. Text before the first heading is section 0,
titled by the front matter's `title:` or the file name. Headings and tags inside fenced code
blocks are text, not structure.

Tags come from YAML-ish front matter (`tags: [a, b]`, `tags: a, b`, or a `- a` block list) and
apply to every section of the file, plus inline `#tags` which apply to the section they are in.
An inline tag needs a letter (`#123` is an issue number, not a tag) and is not preceded by a
word character, `/` or `&` (URL fragments, HTML entities).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INLINE_TAG = re.compile(r"(?<![\w&/#])#([\w][\w/-]*)")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)])(?:\s|$)")
_FRONT_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)$")
_BLOCK_ITEM = re.compile(r"^[ \t]+-[ \t]+(.*)$")

# Front matter longer than this is not front matter but a document that starts with a rule.
_MAX_FRONT_MATTER_LINES = 200


@dataclass(frozen=True)
class Section:
    """One searchable piece of a note: a heading and the text under it (or the preamble)."""

    ordinal: int  # 0 = text before the first heading; headings count from 1 in file order
    title: str
    tags: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class FrontMatter:
    title: str | None
    tags: tuple[str, ...]


def parse_note(text: str, *, fallback_title: str) -> list[Section]:
    """Split a markdown note into sections; empty preambles are dropped, empty headings kept."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    front, start = _front_matter(lines)
    file_tags = front.tags
    preamble_title = front.title or fallback_title

    sections: list[Section] = []
    title = preamble_title
    ordinal = 0
    body: list[str] = []
    heading_tags: tuple[str, ...] = ()
    fence: str | None = None

    def flush() -> None:
        text_body = "\n".join(body).strip()
        if ordinal == 0 and not text_body:
            return
        tags = _dedupe((*file_tags, *heading_tags, *inline_tags(text_body)))
        sections.append(Section(ordinal=ordinal, title=title, tags=tags, body=text_body))

    for line in lines[start:]:
        if fence is not None:
            body.append(line)
            m = _FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        m = _FENCE.match(line)
        if m:
            fence = m.group(1)
            body.append(line)
            continue
        heading = _atx_heading(line)
        if heading is None and _SETEXT.match(line) and body and _setext_candidate(body[-1]):
            heading = body.pop().strip()
        if heading is None:
            body.append(line)
            continue
        flush()
        ordinal += 1
        title = heading or fallback_title
        heading_tags = inline_tags(heading)
        body = []
    flush()
    return sections


def inline_tags(text: str) -> tuple[str, ...]:
    """`#tags` in text outside code; a tag must contain a letter, trailing `-`/`/` is dropped."""
    found: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        for tag in _INLINE_TAG.findall(_INLINE_CODE.sub(" ", line)):
            tag = tag.rstrip("-/")
            if any(c.isalpha() for c in tag):
                found.append(tag)
    return _dedupe(found)


def _atx_heading(line: str) -> str | None:
    m = _ATX.match(line)
    if m is None:
        return None
    return _ATX_CLOSING.sub("", m.group(2) or "").strip()


def _setext_candidate(previous: str) -> bool:
    # CommonMark: a paragraph line followed by ===/--- is a heading; list items, quotes and blank
    # lines are not paragraphs, so a rule after them stays a rule.
    return (
        bool(previous.strip())
        and _ATX.match(previous) is None
        and _FENCE.match(previous) is None
        and not _LIST_OR_QUOTE.match(previous)
    )


def _front_matter(lines: list[str]) -> tuple[FrontMatter, int]:
    """Parse a leading `---` … `---` block; returns it and the index of the first body line."""
    if not lines or lines[0].rstrip() != "---":
        return FrontMatter(None, ()), 0
    end = None
    for i in range(1, min(len(lines), _MAX_FRONT_MATTER_LINES + 1)):
        if lines[i].rstrip() in ("---", "..."):
            end = i
            break
    if end is None:
        return FrontMatter(None, ()), 0
    title: str | None = None
    tags: list[str] = []
    key: str | None = None
    for line in lines[1:end]:
        item = _BLOCK_ITEM.match(line)
        if item and key in ("tags", "tag", "keywords"):
            tags.extend(_split_tags(item.group(1)))
            continue
        m = _FRONT_KEY.match(line)
        if m is None:
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        if key in ("tags", "tag", "keywords"):
            tags.extend(_split_tags(value))
        elif key == "title" and value:
            title = _unquote(value)
    return FrontMatter(title, _dedupe(tags)), end + 1


def _split_tags(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    out = []
    for part in value.split(","):
        tag = _unquote(part.strip()).lstrip("#").strip()
        if tag:
            out.append(tag)
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _dedupe(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for tag in tags:
        folded = tag.casefold()
        if folded not in seen:
            seen.add(folded)
            out.append(tag)
    return tuple(out)
