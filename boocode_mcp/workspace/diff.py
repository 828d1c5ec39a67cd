"""Parsing git's unified diffs into files → hunks, with the counts a patch is summarized by.

Our own parser rather than a dependency: it follows what git emits (renames, copies, mode changes,
binary patches, quoted paths, "\\ No newline at end of file") and reads hunk bodies by their
counts, so a deleted line that happens to read "--- x" is never taken for a file header.
Lines are split on "\\n" only: a "\\r" stays part of its line, as git apply expects.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

FileStatus = Literal["added", "modified", "deleted", "renamed", "copied"]

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_BINARY_RE = re.compile(r"^Binary files (.+) and (.+) differ$")
_ESCAPES = {
    "a": 7,
    "b": 8,
    "t": 9,
    "n": 10,
    "v": 11,
    "f": 12,
    "r": 13,
    '"': 34,
    "\\": 92,
}


@dataclass(frozen=True)
class Hunk:
    """One `@@` block: its old and new line ranges, the section header, and its lines as in the diff."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class FileDiff:
    """One file of a diff. `path` is the new name (the old one for a deletion)."""

    path: str
    old_path: str | None
    status: FileStatus
    binary: bool
    additions: int
    deletions: int
    hunks: tuple[Hunk, ...]

    def record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "binary": self.binary,
            "additions": self.additions,
            "deletions": self.deletions,
        }

    def hunk_records(self) -> list[dict[str, Any]]:
        return [
            {
                "file": self.path,
                "old_start": h.old_start,
                "old_count": h.old_count,
                "new_start": h.new_start,
                "new_count": h.new_count,
                "section": h.section,
                "lines": list(h.lines),
            }
            for h in self.hunks
        ]

    @functools.cached_property
    def _json(self) -> tuple[str, str]:
        # Kept with the file: a turn's diff reuses the files it did not touch (their objects too),
        # so storing a chat's patch encodes only what changed since the last one.
        hunks = json.dumps(self.hunk_records())
        return json.dumps(self.record()), hunks[1:-1]


@dataclass(frozen=True)
class ParsedDiff:
    """A whole diff, with the totals shown for a patch."""

    files: tuple[FileDiff, ...]

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def hunk_count(self) -> int:
        return sum(len(f.hunks) for f in self.files)

    @property
    def additions(self) -> int:
        return sum(f.additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    def to_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(files, hunks) as JSON-ready dicts, the form a patch is stored in; each hunk names its
        file's new path, in file order."""
        return [f.record() for f in self.files], [h for f in self.files for h in f.hunk_records()]

    def to_json(self) -> tuple[str, str]:
        """`json.dumps` of each of `to_records()`, from what each file keeps of its own."""
        parts = [f._json for f in self.files]
        files = ", ".join(record for record, _ in parts)
        hunks = ", ".join(h for _, h in parts if h)
        return f"[{files}]", f"[{hunks}]"

    @classmethod
    def from_records(
        cls, files: Sequence[Mapping[str, Any]], hunks: Sequence[Mapping[str, Any]]
    ) -> ParsedDiff:
        """The inverse of to_records: a stored patch read back without parsing its diff again."""
        by_file: dict[str, list[Hunk]] = {}
        for h in hunks:
            by_file.setdefault(h["file"], []).append(
                Hunk(
                    old_start=h["old_start"],
                    old_count=h["old_count"],
                    new_start=h["new_start"],
                    new_count=h["new_count"],
                    section=h["section"],
                    lines=tuple(h["lines"]),
                )
            )
        return cls(
            files=tuple(
                FileDiff(
                    path=f["path"],
                    old_path=f["old_path"],
                    status=f["status"],
                    binary=f["binary"],
                    additions=f["additions"],
                    deletions=f["deletions"],
                    hunks=tuple(by_file.get(f["path"], ())),
                )
                for f in files
            )
        )

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the diff reads or writes (old names of renames and copies included)."""
        seen: dict[str, None] = {}
        for f in self.files:
            if f.old_path is not None:
                seen[f.old_path] = None
            seen[f.path] = None
        return tuple(seen)


def unquote_path(text: str) -> str:
    """Undo git's C-style quoting of a path ("a\\tb", octal-escaped UTF-8); plain text is returned as is."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body = text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif body[i + 1 : i + 4].isdigit() and len(body[i + 1 : i + 4]) == 3:
            out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            out += nxt.encode("utf-8", "surrogateescape")
            i += 2
    return out.decode("utf-8", "surrogateescape")


def _take_token(text: str) -> tuple[str, str]:
    """Split off the first path token (quoted or up to the first space): (token, rest)."""
    if text.startswith('"'):
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                return text[: i + 1], text[i + 1 :].lstrip(" ")
            i += 1
        return text, ""
    head, _, rest = text.partition(" ")
    return head, rest


def _strip_prefix(path: str) -> str:
    """Drop git's a/ or b/ side prefix (the first path component of a prefixed name)."""
    _, sep, rest = path.partition("/")
    return rest if sep else path


def _header_paths(rest: str) -> tuple[str | None, str | None]:
    """The old and new paths of a `diff --git <a> <b>` line, when they can be told apart."""
    if rest.startswith('"'):
        a, tail = _take_token(rest)
        return _strip_prefix(unquote_path(a)), _strip_prefix(unquote_path(tail)) if tail else None
    if rest.endswith('"'):
        idx = rest.rfind(' "')
        if idx != -1:
            return _strip_prefix(rest[:idx]), _strip_prefix(unquote_path(rest[idx + 1 :]))
    # Unquoted names may hold spaces; when both sides name the same file (the case whenever the
    # header is the only source of the name) the line is "a/X b/X" and splits at its middle.
    if len(rest) % 2 == 1:
        half = (len(rest) - 1) // 2
        a, b = rest[:half], rest[half + 1 :]
        if rest[half] == " " and _strip_prefix(a) == _strip_prefix(b):
            return _strip_prefix(a), _strip_prefix(b)
    a, b = _take_token(rest)
    return _strip_prefix(a), _strip_prefix(b) if b else None


def _marker_path(text: str) -> str | None:
    """The path of a `---`/`+++` line's name part; None for /dev/null."""
    if text.startswith('"'):
        token, _ = _take_token(text)
        name = unquote_path(token)
    else:
        # git appends a tab after names containing spaces; other tools put a timestamp there.
        name = text.split("\t", 1)[0]
    if name == "/dev/null":
        return None
    return _strip_prefix(name)


@dataclass
class _FileBuilder:
    header_old: str | None = None
    header_new: str | None = None
    minus: str | None = None
    plus: str | None = None
    saw_minus: bool = False
    saw_plus: bool = False
    rename_from: str | None = None
    rename_to: str | None = None
    copy_from: str | None = None
    copy_to: str | None = None
    new_file: bool = False
    deleted_file: bool = False
    binary: bool = False
    additions: int = 0
    deletions: int = 0

    def __post_init__(self) -> None:
        self.hunks: list[Hunk] = []

    def build(self) -> FileDiff | None:
        old = self.rename_from or self.copy_from
        if self.saw_minus and self.minus is None:
            self.new_file = True
        if self.saw_plus and self.plus is None:
            self.deleted_file = True
        old_name = old or self.minus or self.header_old
        new_name = self.rename_to or self.copy_to or self.plus or self.header_new
        status: FileStatus
        if self.rename_from is not None:
            status = "renamed"
        elif self.copy_from is not None:
            status = "copied"
        elif self.new_file:
            status = "added"
        elif self.deleted_file:
            status = "deleted"
        else:
            status = "modified"
        path = (old_name if status == "deleted" else new_name) or old_name
        if path is None:
            return None
        return FileDiff(
            path=path,
            old_path=old if status in ("renamed", "copied") else None,
            status=status,
            binary=self.binary,
            additions=self.additions,
            deletions=self.deletions,
            hunks=tuple(self.hunks),
        )


def parse_unified_diff(text: str) -> ParsedDiff:
    """Parse git (or plain unified) diff text into files and hunks; lines git does not emit are skipped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: list[FileDiff] = []
    current: _FileBuilder | None = None

    def finish() -> None:
        nonlocal current
        if current is not None:
            built = current.build()
            if built is not None:
                files.append(built)
        current = None

    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("diff --git "):
            finish()
            current = _FileBuilder()
            current.header_old, current.header_new = _header_paths(line[len("diff --git ") :].rstrip("\r"))
            i += 1
            continue
        if line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            if current is None or current.saw_minus or current.hunks:
                # A plain unified diff (no "diff --git" line): each ---/+++ pair starts a file.
                finish()
                current = _FileBuilder()
            current.saw_minus = current.saw_plus = True
            current.minus = _marker_path(line[4:].rstrip("\r"))
            current.plus = _marker_path(lines[i + 1][4:].rstrip("\r"))
            i += 2
            continue
        if current is None:
            i += 1
            continue
        match = _HUNK_RE.match(line)
        if match:
            i = _read_hunk(lines, i, match, current)
            continue
        if line.startswith("GIT binary patch"):
            current.binary = True
            i += 1
            # Base85 lines never contain a space, so the next "diff --git " is the next file.
            while i < n and not lines[i].startswith("diff --git "):
                i += 1
            continue
        _read_extended_header(line, current)
        i += 1
    finish()
    return ParsedDiff(tuple(files))


def _read_extended_header(line: str, current: _FileBuilder) -> None:
    line = line.rstrip("\r")
    if line.startswith("new file mode "):
        current.new_file = True
    elif line.startswith("deleted file mode "):
        current.deleted_file = True
    elif line.startswith("rename from "):
        current.rename_from = unquote_path(line[len("rename from ") :])
    elif line.startswith("rename to "):
        current.rename_to = unquote_path(line[len("rename to ") :])
    elif line.startswith("copy from "):
        current.copy_from = unquote_path(line[len("copy from ") :])
    elif line.startswith("copy to "):
        current.copy_to = unquote_path(line[len("copy to ") :])
    else:
        binary = _BINARY_RE.match(line)
        if binary:
            current.binary = True
            old_name = binary.group(1)
            new_name = binary.group(2)
            if old_name == "/dev/null":
                current.new_file = True
            if new_name == "/dev/null":
                current.deleted_file = True


def _read_hunk(lines: list[str], i: int, match: re.Match[str], current: _FileBuilder) -> int:
    old_start = int(match.group(1))
    old_count = int(match.group(2)) if match.group(2) is not None else 1
    new_start = int(match.group(3))
    new_count = int(match.group(4)) if match.group(4) is not None else 1
    old_left, new_left = old_count, new_count
    additions = deletions = 0
    i += 1
    start = i
    n = len(lines)
    # The hot loop of a large diff: local counters, one slice at the end.
    while i < n and (old_left > 0 or new_left > 0):
        tag = lines[i][:1]
        if tag == "+":
            new_left -= 1
            additions += 1
        elif tag == "-":
            old_left -= 1
            deletions += 1
        elif tag == " " or tag == "":
            # An empty line is a context line from `diff.suppressBlankEmpty`.
            old_left -= 1
            new_left -= 1
        elif tag != "\\":
            break
        i += 1
    while i < n and lines[i].startswith("\\"):
        i += 1
    body = lines[start:i]
    current.additions += additions
    current.deletions += deletions
    current.hunks.append(
        Hunk(old_start, old_count, new_start, new_count, match.group(5).rstrip("\r"), tuple(body))
    )
    return i
