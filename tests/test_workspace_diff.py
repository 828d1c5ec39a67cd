"""parse_unified_diff against what real git emits, and a property test round-tripping through git."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boocode_mcp.workspace import FileDiff, ParsedDiff, diff_worktree, open_repo, parse_unified_diff
from boocode_mcp.workspace.diff import unquote_path
from tests.conftest import git


def _staged_diff(repo: Path) -> str:
    """What BooCode's diff of the repo's current files against HEAD is, via the public API."""

    async def diff() -> str:
        return await diff_worktree(await open_repo(repo), "HEAD")

    return anyio.run(diff)


def _only(parsed: ParsedDiff) -> FileDiff:
    assert parsed.file_count == 1, parsed
    return parsed.files[0]


def test_modified_file_counts_and_hunk(git_repo: Path) -> None:
    (git_repo / "src" / "app.py").write_text("def main():\n    return 2\n\n\nprint(main())\n")
    parsed = parse_unified_diff(_staged_diff(git_repo))
    f = _only(parsed)
    assert (f.path, f.old_path, f.status, f.binary) == ("src/app.py", None, "modified", False)
    assert (f.additions, f.deletions) == (4, 1)
    (hunk,) = f.hunks
    assert (hunk.old_start, hunk.old_count, hunk.new_start, hunk.new_count) == (1, 2, 1, 5)
    assert hunk.lines == (
        " def main():",
        "-    return 1",
        "+    return 2",
        "+",
        "+",
        "+print(main())",
    )
    assert (parsed.file_count, parsed.hunk_count, parsed.additions, parsed.deletions) == (1, 1, 4, 1)


def test_section_header_is_kept(git_repo: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(20))
    (git_repo / "src" / "app.py").write_text(f"def main():\n{body}    return 1\n")
    git(git_repo, "commit", "-qam", "long")
    (git_repo / "src" / "app.py").write_text(f"def main():\n{body}    return 2\n")
    (hunk,) = _only(parse_unified_diff(_staged_diff(git_repo))).hunks
    assert hunk.section == "def main():"


def test_new_untracked_and_deleted_files(git_repo: Path) -> None:
    (git_repo / "new.txt").write_text("one\ntwo\n")
    (git_repo / "README.md").unlink()
    parsed = parse_unified_diff(_staged_diff(git_repo))
    by_path = {f.path: f for f in parsed.files}
    assert by_path["new.txt"].status == "added"
    assert (by_path["new.txt"].additions, by_path["new.txt"].deletions) == (2, 0)
    assert by_path["README.md"].status == "deleted"
    assert (by_path["README.md"].additions, by_path["README.md"].deletions) == (0, 1)


def test_empty_new_file_has_no_hunks(git_repo: Path) -> None:
    (git_repo / "empty file").write_text("")
    f = _only(parse_unified_diff(_staged_diff(git_repo)))
    assert (f.path, f.status, f.hunks) == ("empty file", "added", ())


def test_rename_with_similarity(git_repo: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(30))
    (git_repo / "old name.txt").write_text(text)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "add")
    (git_repo / "old name.txt").unlink()
    (git_repo / "sub").mkdir()
    (git_repo / "sub" / "new name.txt").write_text(text.replace("line 3\n", "line three\n"))
    f = _only(parse_unified_diff(_staged_diff(git_repo)))
    assert (f.path, f.old_path, f.status) == ("sub/new name.txt", "old name.txt", "renamed")
    assert (f.additions, f.deletions) == (1, 1)


def test_pure_rename_has_no_hunks(git_repo: Path) -> None:
    git(git_repo, "mv", "README.md", "READ ME.md")
    f = _only(parse_unified_diff(git(git_repo, "diff", "--cached", "-M", "HEAD")))
    assert (f.path, f.old_path, f.status, f.hunks) == ("READ ME.md", "README.md", "renamed", ())


def test_copy_and_mode_change() -> None:
    text = (
        "diff --git a/a.sh b/a.sh\n"
        "old mode 100644\n"
        "new mode 100755\n"
        "diff --git a/src.c b/dst.c\n"
        "similarity index 100%\n"
        "copy from src.c\n"
        "copy to dst.c\n"
    )
    mode, copy = parse_unified_diff(text).files
    assert (mode.path, mode.status, mode.hunks) == ("a.sh", "modified", ())
    assert (copy.path, copy.old_path, copy.status) == ("dst.c", "src.c", "copied")


def test_binary_files_counted_not_hunked(git_repo: Path) -> None:
    (git_repo / "logo.bin").write_bytes(bytes(range(256)) * 8)
    (git_repo / "README.md").write_text("# demo\nmore\n")
    parsed = parse_unified_diff(_staged_diff(git_repo))
    by_path = {f.path: f for f in parsed.files}
    logo = by_path["logo.bin"]
    assert (logo.binary, logo.status, logo.hunks, logo.additions, logo.deletions) == (
        True,
        "added",
        (),
        0,
        0,
    )
    assert parsed.file_count == 2
    assert parsed.hunk_count == 1


def test_stored_records_read_back_equal_to_the_parse(git_repo: Path) -> None:
    """A patch is stored as to_records() and read back with from_records(), never re-parsed: the
    two must agree for every kind of change."""
    text = "".join(f"line {i}\n" for i in range(60))
    (git_repo / "long.txt").write_text(text)
    (git_repo / "gone.txt").write_text("bye\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "more")
    (git_repo / "long.txt").write_text(text.replace("line 2\n", "two\n").replace("line 50\n", "fifty\n"))
    (git_repo / "gone.txt").unlink()
    (git_repo / "src" / "app.py").rename(git_repo / "src" / "main.py")
    (git_repo / "logo.bin").write_bytes(bytes(range(256)) * 8)
    (git_repo / "new.txt").write_text("fresh\n")
    parsed = parse_unified_diff(_staged_diff(git_repo))
    statuses = {f.status for f in parsed.files}
    assert {"modified", "deleted", "renamed", "added"} <= statuses
    assert any(f.binary for f in parsed.files)
    assert max(len(f.hunks) for f in parsed.files) == 2
    files, hunks = parsed.to_records()
    assert ParsedDiff.from_records(files, hunks) == parsed
    # What is stored: the records' JSON, encoded from what each file keeps (in any order of use).
    expected = (json.dumps(files), json.dumps(hunks))
    assert parsed.to_json() == expected
    backwards = ParsedDiff(tuple(reversed(parsed.files)))
    assert backwards.to_json() == tuple(json.dumps(r) for r in backwards.to_records())
    assert parsed.to_json() == expected
    assert ParsedDiff(()).to_json() == ("[]", "[]")


def test_binary_files_differ_line() -> None:
    text = "diff --git a/x.png b/x.png\nindex 1..2 100644\nBinary files a/x.png and b/x.png differ\n"
    f = _only(parse_unified_diff(text))
    assert (f.path, f.binary, f.status) == ("x.png", True, "modified")


def test_no_newline_at_end_of_file(git_repo: Path) -> None:
    (git_repo / "README.md").write_text("# demo\nno newline")
    f = _only(parse_unified_diff(_staged_diff(git_repo)))
    (hunk,) = f.hunks
    assert hunk.lines == (" # demo", "+no newline", "\\ No newline at end of file")
    assert (f.additions, f.deletions) == (1, 0)


def test_crlf_lines_keep_their_carriage_return(git_repo: Path) -> None:
    (git_repo / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "crlf")
    (git_repo / "win.txt").write_bytes(b"one\r\nTWO\r\nthree\r\n")
    (hunk,) = _only(parse_unified_diff(_staged_diff(git_repo))).hunks
    assert hunk.lines == (" one\r", "-two\r", "+TWO\r", "+three\r")


def test_unicode_and_special_paths(git_repo: Path) -> None:
    names = ["héllo wörld.txt", "日本語.md", 'quo"te.txt', "tab\there.txt", "back\\slash.txt"]
    for name in names:
        (git_repo / name).write_text("x\n")
    text = _staged_diff(git_repo)
    assert '"b/h\\303\\251llo w\\303\\266rld.txt"' in text  # git quoted it; we must unquote
    assert sorted(f.path for f in parse_unified_diff(text).files) == sorted(names)


def test_deleted_line_that_looks_like_a_header(git_repo: Path) -> None:
    (git_repo / "README.md").write_text("-- x\n++ y\n")
    git(git_repo, "commit", "-qam", "tricky")
    (git_repo / "README.md").write_text("changed\n")
    f = _only(parse_unified_diff(_staged_diff(git_repo)))
    assert (f.additions, f.deletions) == (1, 2)
    assert f.hunks[0].lines == ("--- x", "-++ y", "+changed")


def test_plain_unified_diff_without_git_headers() -> None:
    text = (
        "--- old/a.txt\t2024-01-01 00:00:00\n"
        "+++ new/a.txt\t2024-01-01 00:00:01\n"
        "@@ -1 +1 @@\n"
        "-a\n"
        "+b\n"
        "--- old/b.txt\n"
        "+++ new/b.txt\n"
        "@@ -1,0 +2 @@\n"
        "+c\n"
    )
    a, b = parse_unified_diff(text).files
    assert (a.path, a.additions, a.deletions) == ("a.txt", 1, 1)
    assert (b.path, b.hunks[0].old_count, b.hunks[0].new_count) == ("b.txt", 0, 1)


def test_empty_diff() -> None:
    parsed = parse_unified_diff("")
    assert (parsed.file_count, parsed.hunk_count, parsed.additions, parsed.deletions) == (0, 0, 0, 0)


def test_unquote_path_octal_and_escapes() -> None:
    assert unquote_path('"a\\tb\\"c\\\\d\\303\\251"') == 'a\tb"c\\dé'
    assert unquote_path("plain name") == "plain name"


# --- property test: random edits in a real repo, diffed, parsed and re-applied ---------------------

_NAMES = ["a.txt", "b c.txt", "dir/d.py", "dir/sub/é.md", 'q"uote.txt', "t\tab.txt", "z.bin"]
_LINES = st.sampled_from(["", "x", "y", "hello world", "--- a", "+++ b", "@@ -1 +1 @@", " lead", "tail \r"])


@st.composite
def _content(draw: st.DrawFn, name: str) -> bytes:
    if name.endswith(".bin") and draw(st.booleans()):
        return draw(st.binary(min_size=1, max_size=200)) + b"\0"
    lines = draw(st.lists(_LINES, max_size=25))
    eol = "\r\n" if draw(st.integers(0, 4)) == 0 else "\n"
    text = eol.join(lines)
    terminated: bool = draw(st.booleans())
    if lines and terminated:
        text += eol
    return text.encode()


@st.composite
def _edit(draw: st.DrawFn, old: bytes) -> bytes:
    lines = old.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        pos = draw(st.integers(0, len(lines)))
        new = draw(_LINES).encode()
        if op == "insert":
            lines.insert(pos, new)
        elif lines and pos < len(lines):
            if op == "delete":
                del lines[pos]
            else:
                lines[pos] = new
    return b"\n".join(lines)


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[dict[str, bytes], dict[str, bytes | None], dict[str, str]]:
    """(initial files, final contents with None = deleted, renames old → new)."""
    initial = {n: draw(_content(n)) for n in draw(st.sets(st.sampled_from(_NAMES), max_size=5))}
    final: dict[str, bytes | None] = {}
    renames: dict[str, str] = {}
    free = [n for n in _NAMES if n not in initial]
    for name, old in initial.items():
        action = draw(st.sampled_from(["keep", "edit", "delete", "rename"]))
        if action == "edit":
            final[name] = draw(_edit(old))
        elif action == "delete":
            final[name] = None
        elif action == "rename" and free:
            target = "moved/" + free.pop(draw(st.integers(0, len(free) - 1)))
            renames[name] = target
            final[name] = None
            final[target] = old if draw(st.booleans()) else draw(_edit(old))
    for name in draw(st.sets(st.sampled_from(free), max_size=3)) if free else ():
        final[name] = draw(_content(name))
    return initial, final, renames


def _numstat(repo: Path) -> dict[str, tuple[int, int] | None]:
    out = subprocess.run(
        ["git", "-c", "core.quotepath=off", "diff", "--cached", "-M", "--numstat", "-z", "HEAD"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    fields = out.split("\0")
    stats: dict[str, tuple[int, int] | None] = {}
    i = 0
    while i < len(fields) and fields[i]:
        add, delete, path = fields[i].split("\t", 2)
        if path == "":  # rename: old and new follow as their own fields
            path = fields[i + 2]
            i += 3
        else:
            i += 1
        stats[path] = None if add == "-" else (int(add), int(delete))
    return stats


def _replay(old: bytes, f: FileDiff) -> bytes:
    """Apply the parsed hunks to `old` ourselves: the parse must carry every line exactly."""
    old_lines = re.findall(rb"[^\n]*\n|[^\n]+$", old)
    out: list[bytes] = []
    cursor = 0
    for hunk in f.hunks:
        start = hunk.old_start - 1 if hunk.old_count else hunk.old_start
        out.extend(old_lines[cursor:start])
        cursor = start
        tagged: list[tuple[str, bytes]] = []
        for line in hunk.lines:
            if line.startswith("\\"):
                # "\ No newline at end of file": the line before it has no terminator.
                tag, body = tagged[-1]
                tagged[-1] = (tag, body[:-1])
                continue
            tagged.append((line[:1] or " ", line[1:].encode() + b"\n"))
        for tag, body in tagged:
            if tag in (" ", "-"):
                assert old_lines[cursor] == body
                cursor += 1
            if tag in (" ", "+"):
                out.append(body)
    out.extend(old_lines[cursor:])
    return b"".join(out)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_scenario())
def test_parse_round_trips_through_git(
    scenario: tuple[dict[str, bytes], dict[str, bytes | None], dict[str, str]],
) -> None:
    initial, final, _renames = scenario
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for name, data in initial.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes(data)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", "base")
        git(repo, "clone", "-q", str(repo), str(Path(tmp) / "clone"))
        for name, content in final.items():
            path = repo / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)

        text = _staged_diff(repo)
        parsed = parse_unified_diff(text)

        git(repo, "add", "-A")
        stats = _numstat(repo)
        assert {f.path for f in parsed.files} == set(stats)
        for f in parsed.files:
            expected = stats[f.path]
            # A 100% rename of a binary file carries no content, so the diff cannot say "binary".
            pure_rename = f.status == "renamed" and not f.hunks
            assert f.binary == (expected is None) or (pure_rename and not f.binary)
            assert (f.additions, f.deletions) == (expected or (0, 0))
            for hunk in f.hunks:
                body = [ln[:1] or " " for ln in hunk.lines if not ln.startswith("\\")]
                assert sum(t in " -" for t in body) == hunk.old_count
                assert sum(t in " +" for t in body) == hunk.new_count
            if not f.binary and f.status in ("modified", "added", "renamed"):
                old = initial.get(f.old_path or f.path, b"") if f.status != "added" else b""
                assert _replay(old, f) == (repo / f.path).read_bytes()

        clone = Path(tmp) / "clone"
        if text:
            _quiet(["git", "apply", "--check", "--whitespace=nowarn"], clone, text)
            _quiet(["git", "apply", "--whitespace=nowarn"], clone, text)
        shutil.rmtree(clone / ".git")
        shutil.rmtree(repo / ".git")
        assert _tree(clone) == _tree(repo)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _quiet(argv: list[str], cwd: Path, text: str) -> None:
    result = subprocess.run(argv, cwd=cwd, input=text.encode(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
