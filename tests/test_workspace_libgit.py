"""The diff after each turn (staged in-process by libgit2, diffed by git) turn after turn: always
exactly what `git add -A` into an index of the base and `git diff --cached --binary -M` give,
paying only for what changed, never following the worktree's `.git`."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from boocode_mcp.workspace import DiffIndex, Worktree, create_worktree, diff_worktree, parse_unified_diff
from boocode_mcp.workspace.libgit import StagingArea
from boocode_mcp.workspace.worktrees import in_memory_root
from tests.conftest import git

pytestmark = pytest.mark.anyio


def _git_bytes(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        check=True,
        capture_output=True,
    ).stdout


def _staged_by_git(wt: Worktree, base: str, scratch: Path) -> dict[str, str]:
    """`git add -A` into an index of `base` that starts with the stat data of the worktree's own
    index (what BooCode's diff is defined as); the environment naming that index."""
    index = scratch / "oracle-index"
    index.unlink(missing_ok=True)
    shutil.copy2(wt.git.index_file, index)
    env = {"GIT_INDEX_FILE": str(index)}
    _git_bytes(wt.path, "read-tree", "-m", base, env=env)
    _git_bytes(wt.path, "add", "-A", env=env)
    return env


def staged_by_git(wt: Worktree, base: str, scratch: Path) -> str:
    """The tree `git add -A` stages (the oracle of what a patch must make)."""
    return _git_bytes(wt.path, "write-tree", env=_staged_by_git(wt, base, scratch)).decode().strip()


# git's defaults, which BooCode's diffs keep to whatever the user's config says.
_DIFF_DEFAULTS = (
    "diff.algorithm=myers",
    "diff.context=3",
    "diff.interHunkContext=0",
    "diff.indentHeuristic=true",
    "diff.suppressBlankEmpty=false",
    "diff.orderFile=/dev/null",
)


def diff_by_git(wt: Worktree, base: str, scratch: Path) -> bytes:
    """`git add -A && git diff --cached --binary -M --full-index` with git's default diff settings
    (the oracle of a patch's text)."""
    env = _staged_by_git(wt, base, scratch)
    args = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
    config = [arg for setting in _DIFF_DEFAULTS for arg in ("-c", setting)]
    diff = ("diff", "--cached", "--binary", "-M", "--full-index")
    return _git_bytes(wt.path, *config, *diff, *args, base, "--", env=env)


def assert_same_as_git(patch: str, wt: Worktree, base: str, scratch: Path) -> None:
    """`patch` is git's diff section for section; a section of text that is not UTF-8 is a binary
    patch of the same file instead; and the patch applied to the base is the tree git stages."""
    ours = [s for s in re.split(r"(?m)^(?=diff --git )", patch) if s]
    theirs = [s for s in re.split(rb"(?m)^(?=diff --git )", diff_by_git(wt, base, scratch)) if s]
    assert len(ours) == len(theirs), (patch, theirs)
    for mine, git_section in zip(ours, theirs, strict=True):
        try:
            assert mine == git_section.decode("utf-8")
        except UnicodeDecodeError:
            assert mine.split("\n", 1)[0] == git_section.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
            assert "\nGIT binary patch\n" in mine
    assert applied_to_base(wt, base, patch, scratch) == staged_by_git(wt, base, scratch)


def applied_to_base(wt: Worktree, base: str, patch: str, scratch: Path) -> str:
    """The tree `git apply --cached --binary` of `patch` makes from `base`."""
    index = scratch / "apply-index"
    index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index)}
    _git_bytes(wt.path, "read-tree", base, env=env)
    if patch:
        stdin = patch.encode("utf-8", "surrogateescape")
        _git_bytes(wt.path, "apply", "--cached", "--binary", "--whitespace=nowarn", env=env, stdin=stdin)
    return _git_bytes(wt.path, "write-tree", env=env).decode().strip()


# --- random turns against git ---------------------------------------------------------------

# Lines a hunk header may quote (git's default funcname: a line starting with a letter, `_` or
# `$`), some longer than the 80 bytes it keeps (cut where a character ends).
_WORDS = [
    *("alpha", "beta", "gamma", "x" * 30, "\t", "é", "ü", " lead", "tail ", "\r"),
    *("def run(self):", "é" * 45, "xé" * 30),
]


def _text(rng: random.Random, lines: int) -> str:
    return "".join(" ".join(rng.choices(_WORDS, k=rng.randrange(1, 6))) + "\n" for _ in range(lines))


def _edit_lines(rng: random.Random, p: Path, most: int) -> None:
    """Up to `most` lines of `p` deleted or inserted here and there; sometimes its last newline too."""
    lines = p.read_bytes().splitlines(keepends=True)
    for _ in range(rng.randrange(1, most + 1)):
        at = rng.randrange(len(lines) + 1)
        if lines and at < len(lines) and rng.random() < 0.5:
            del lines[at]
        else:
            lines[at:at] = [_text(rng, rng.randrange(1, 4)).encode()]
    p.write_bytes(b"".join(lines).rstrip(b"\n") if rng.random() < 0.2 else b"".join(lines))


def _files(root: Path) -> list[Path]:
    found = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", "nested")]
        found += [Path(top) / n for n in names if not (n == ".git" and Path(top) == root)]
    return sorted(found)


def _change(rng: random.Random, wt: Path) -> None:
    """One change of the kind agents make (and some they rarely do)."""
    files = [p for p in _files(wt) if not p.is_symlink()]
    op = rng.choice(
        ["edit", "edit", "edit-lines", "edit-lines", "edit-lines", "spaced", "add", "add", "delete", "rename",
         "chmod", "binary", "symlink", "rewrite-same",
         "same-size", "ignore", "ignore-self", "latin-1", "crlf", "attributes", "empty", "dir-file",
         "typechange", "odd-name", "nested"]
    )  # fmt: skip
    if op == "edit" and files:
        p = rng.choice(files)
        p.write_bytes(p.read_bytes() + _text(rng, 2).encode())
    elif op == "edit-lines" and files:
        _edit_lines(rng, rng.choice(files), 3)
    elif op == "spaced":
        p = wt / "a" / "with space.txt"
        if all(not q.exists() or q.is_dir() for q in p.parents):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_text(rng, rng.randrange(1, 30)))
    elif op == "add":
        p = wt / rng.choice(["a", "b", "c/d"]) / f"n{rng.randrange(60)}.txt"
        if all(not q.exists() or q.is_dir() for q in p.parents):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_text(rng, rng.randrange(0, 20)))
    elif op == "delete" and files:
        rng.choice(files).unlink()
    elif op == "rename" and files:
        p = rng.choice(files)
        data = p.read_bytes()
        p.unlink()
        p.with_name(p.name + ".mv").write_bytes(data + (b"more\n" if rng.random() < 0.5 else b""))
    elif op == "chmod" and files:
        p = rng.choice(files)
        p.chmod(p.stat().st_mode ^ 0o111)
    elif op == "binary":
        (wt / f"bin{rng.randrange(4)}.dat").write_bytes(rng.randbytes(rng.randrange(1, 300)) + b"\0")
    elif op == "symlink":
        p = wt / f"link{rng.randrange(3)}"
        if p.is_symlink():
            p.unlink()
        if not p.exists():
            p.symlink_to(rng.choice(["README.md", "nowhere", "c/d"]))
    elif op == "rewrite-same" and files:
        p = rng.choice(files)
        p.write_bytes(p.read_bytes())
    elif op == "same-size" and files:
        p = rng.choice(files)
        data = bytearray(p.read_bytes())
        if data:
            st = p.stat()
            data[rng.randrange(len(data))] = ord(rng.choice("qwxyz"))
            p.write_bytes(bytes(data))
            if rng.random() < 0.5:  # mtime put back: only the ctime tells
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif op == "ignore":
        d = wt / rng.choice(["", "a", "c"])
        if d.is_dir() or not d.exists():
            d.mkdir(exist_ok=True)
            (d / ".gitignore").write_text(rng.choice(["*.log\n", "n1*.txt\n", "", "d/\n"]))
            (d / f"x{rng.randrange(3)}.log").write_text("log\n")
    elif op == "ignore-self":
        d = wt / "a"
        if d.is_dir() or not d.exists():
            d.mkdir(exist_ok=True)
            g = d / ".gitignore"
            g.unlink() if g.exists() else g.write_text("*\n")
    elif op == "latin-1":
        (wt / f"latin{rng.randrange(3)}.txt").write_bytes("café\n".encode("latin-1") * rng.randrange(1, 4))
    elif op == "crlf":
        (wt / f"crlf{rng.randrange(3)}.txt").write_bytes(
            rng.choice([b"a\r\nb\r\n", b"a\r\nb\nc\r\n", b"lone\rcr\n"])
        )
    elif op == "attributes":
        (wt / ".gitattributes").write_text(
            rng.choice(["*.txt text=auto\n", "*.txt text eol=crlf\n", "*.dat binary\n", "*.c ident\n", ""])
        )
        (wt / "id.c").write_text(rng.choice(["/* $Id$ */\n", "/* $Id: deadbeef $ */\n"]))
    elif op == "empty":
        (wt / f"empty{rng.randrange(3)}").write_bytes(b"")
    elif op == "dir-file":
        d = wt / "c"
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)
            d.write_text("now a file\n")
        elif d.exists() or d.is_symlink():
            d.unlink()
            (d / "d").mkdir(parents=True)
            (d / "d" / "z.txt").write_text("z\n")
    elif op == "typechange":
        p = wt / "README.md"
        if p.is_symlink():
            p.unlink()
            p.write_text("# demo\n")
        elif p.exists():
            p.unlink()
            p.symlink_to("src/app.py")
    elif op == "odd-name":
        with open(os.fsencode(wt) + b"/n\xe9" + bytes([rng.randrange(0x61, 0x64)]), "wb") as f:
            f.write(b"weird\n")
    elif op == "nested":
        sub = wt / "nested"
        if not sub.exists():
            sub.mkdir()
            git(sub, "init", "-q")
        (sub / "n.txt").write_text(_text(rng, 1))
        git(sub, "add", "-A")
        git(sub, "commit", "-qm", "n")


@pytest.mark.parametrize("seed", range(6))
async def test_every_turn_stages_exactly_what_git_stages(git_repo: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    if seed % 3:
        git(git_repo, "config", "core.autocrlf", "true" if seed % 3 == 1 else "input")
    if seed % 2:
        # A user's taste in diffs changes nothing in a patch's text.
        for key, value in (("diff.algorithm", "histogram"), ("diff.context", "1"), ("core.abbrev", "12"),
                           ("diff.interHunkContext", "4"), ("diff.suppressBlankEmpty", "true")):  # fmt: skip
            git(git_repo, "config", key, value)
    (git_repo / "c").mkdir()
    (git_repo / "c" / "keep.log").write_text("tracked although ignored\n")
    (git_repo / ".gitignore").write_text("*.log\n")
    git(git_repo, "add", "-A")
    git(git_repo, "add", "-f", "c/keep.log")
    git(git_repo, "commit", "-qm", "more")
    wt = await create_worktree(git_repo, "random")
    kept = DiffIndex(wt.git, tmp_path / "kept")
    for turn in range(30):
        for _ in range(rng.randrange(0, 4)):
            _change(rng, wt.path)
        patch = await kept.diff(wt.base_sha)
        try:
            assert_same_as_git(patch, wt, wt.base_sha, tmp_path)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, turn {turn}") from e
        if turn % 5 == 4:
            assert await diff_worktree(wt.git, wt.base_sha) == patch


def _edit_text(rng: random.Random, wt: Path) -> None:
    """A change of the kind most agent turns make: text files edited, added, emptied or made
    executable, none deleted (so no rename can pair, and the sections are written in-process)."""
    names = [
        "src/app.py",
        "README.md",
        "a/with space.txt",
        "b/new.txt",
        "b/empty",
        f"c/n{rng.randrange(4)}.md",
    ]
    p = wt / rng.choice(names)
    p.parent.mkdir(parents=True, exist_ok=True)
    op = rng.random()
    if op < 0.6 and p.exists():
        _edit_lines(rng, p, 4)
    elif op < 0.7 and p.exists():
        p.chmod(p.stat().st_mode ^ 0o111)
    elif op < 0.8:
        p.write_bytes(b"")
    else:
        p.write_text(_text(rng, rng.randrange(1, 80)))


@pytest.mark.parametrize("seed", range(4))
async def test_text_edits_are_written_in_process_exactly_as_git_writes_them(
    git_repo: Path, tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="boocode_mcp.workspace.worktrees")
    rng = random.Random(seed)
    if seed % 2:
        for key, value in (("diff.algorithm", "patience"), ("diff.context", "5"), ("core.abbrev", "9"),
                           ("diff.indentHeuristic", "false")):  # fmt: skip
            git(git_repo, "config", key, value)
    wt = await create_worktree(git_repo, "text")
    kept = DiffIndex(wt.git, tmp_path / "kept")
    written = 0
    for turn in range(40):
        for _ in range(rng.randrange(1, 4)):
            _edit_text(rng, wt.path)
        caplog.clear()
        patch = await kept.diff(wt.base_sha)
        written += any(getattr(r, "sections_written", False) for r in caplog.records)
        try:
            assert_same_as_git(patch, wt, wt.base_sha, tmp_path)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, turn {turn}") from e
    # Every turn after the first (the whole diff, made by git), bar a turn that changed nothing.
    assert written >= 35, written


# --- what libgit2 must do as git does ----------------------------------------------------------


async def test_a_racily_clean_entry_is_checked_again(git_repo: Path, tmp_path: Path) -> None:
    # Same size, same mtime, and ctime not trusted: only git's racy-entry rule (an entry as new as
    # its index file is checked by content) can see the change. The private index is stamped as if
    # written in the same clock tick as the file, which a coarse-clock filesystem does for real.
    git(git_repo, "config", "core.trustctime", "false")
    wt = await create_worktree(git_repo, "racy")
    kept = DiffIndex(wt.git, tmp_path / "area")
    app = wt.path / "src" / "app.py"
    app.write_text(app.read_text().replace("return 1", "return 7"))
    st = app.stat()
    assert "+    return 7" in await kept.diff(wt.base_sha)
    os.utime(tmp_path / "area" / "index", ns=(st.st_atime_ns, st.st_mtime_ns))
    app.write_text(app.read_text().replace("return 7", "return 8"))
    os.utime(app, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert app.stat().st_size == st.st_size and app.stat().st_ino == st.st_ino
    patch = await kept.diff(wt.base_sha)
    assert "+    return 8" in patch
    assert_same_as_git(patch, wt, wt.base_sha, tmp_path)


async def test_ignore_rules_rewritten_with_their_mtime_put_back_are_read_again(
    git_repo: Path, tmp_path: Path
) -> None:
    # libgit2 caches a parsed .gitignore by mtime, size and inode; BooCode empties that cache at
    # each diff, so a same-size rewrite with its mtime put back is still seen.
    wt = await create_worktree(git_repo, "ignores")
    kept = DiffIndex(wt.git, tmp_path / "area")
    (wt.path / ".gitignore").write_text("a.log\n")
    (wt.path / "a.log").write_text("a\n")
    (wt.path / "b.log").write_text("b\n")
    assert (await kept.changes(wt.base_sha)).parsed.paths == (".gitignore", "b.log")
    st = (wt.path / ".gitignore").stat()
    (wt.path / ".gitignore").write_text("b.log\n")
    os.utime(wt.path / ".gitignore", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (await kept.changes(wt.base_sha)).parsed.paths == (".gitignore", "a.log")


async def test_attributes_rewritten_with_their_mtime_put_back_are_read_again_by_a_kept_repository(
    git_repo: Path, tmp_path: Path
) -> None:
    # The repository a DiffIndex stages with stays open between diffs, its cache of parsed
    # attribute files emptied at each: a .gitattributes libgit2 read for a file it
    # only rehashed (no path of its directory staged, so none of BooCode's stamps covers it), then
    # rewritten with the same size and its mtime put back, still decides how the next file there
    # is staged.
    (git_repo / "d").mkdir()
    (git_repo / "d" / ".gitattributes").write_text("*.txt  text\n")
    (git_repo / "d" / "a.txt").write_text("x\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "attributes")
    wt = await create_worktree(git_repo, "attrs")
    kept = DiffIndex(wt.git, tmp_path / "area")
    assert await kept.diff(wt.base_sha) == ""
    a = wt.path / "d" / "a.txt"
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 5_000_000_000))
    assert await kept.diff(wt.base_sha) == ""  # rehashed with the attributes of d/: unchanged
    assert libgit_repository_kept(kept)
    attributes = wt.path / "d" / ".gitattributes"
    st = attributes.stat()
    attributes.write_text("*.txt -text\n")
    os.utime(attributes, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert attributes.stat().st_size == st.st_size and attributes.stat().st_ino == st.st_ino
    (wt.path / "d" / "b.txt").write_bytes(b"y\r\nz\r\n")
    patch = await kept.diff(wt.base_sha)
    assert "\r" in patch  # -text: staged as it is
    assert_same_as_git(patch, wt, wt.base_sha, tmp_path)


def libgit_repository_kept(index: DiffIndex) -> bool:
    # Whether the repository stays open here (else each diff opens it, and the test is moot).
    return index._area._repo is not None


async def test_the_patch_keeps_its_prefixes_whatever_the_config_says(git_repo: Path) -> None:
    for key, value in (("diff.noprefix", "true"), ("diff.mnemonicPrefix", "true"), ("core.abbrev", "12")):
        git(git_repo, "config", key, value)
    wt = await create_worktree(git_repo, "prefixes")
    (wt.path / "src" / "app.py").write_text("def main():\n    return 2\n")
    patch = await diff_worktree(wt.git, wt.base_sha)
    assert "--- a/src/app.py\n+++ b/src/app.py\n" in patch
    assert parse_unified_diff(patch).paths == ("src/app.py",)


async def test_text_that_is_not_utf8_goes_as_a_binary_patch(git_repo: Path, tmp_path: Path) -> None:
    wt = await create_worktree(git_repo, "latin")
    (wt.path / "latin.txt").write_bytes("café crème\n".encode("latin-1"))
    (wt.path / "README.md").write_bytes("# démo\n".encode("latin-1"))
    patch = await diff_worktree(wt.git, wt.base_sha)
    parsed = parse_unified_diff(patch)
    assert {(f.path, f.binary) for f in parsed.files} == {("latin.txt", True), ("README.md", True)}
    assert applied_to_base(wt, wt.base_sha, patch, tmp_path) == staged_by_git(wt, wt.base_sha, tmp_path)


async def test_a_nested_repository_is_a_gitlink_as_git_adds_it(git_repo: Path, tmp_path: Path) -> None:
    wt = await create_worktree(git_repo, "nested")
    sub = wt.path / "sub"
    sub.mkdir()
    git(sub, "init", "-q")
    (sub / "x.txt").write_text("x\n")
    with pytest.raises(Exception, match="no commit checked out"):
        await diff_worktree(wt.git, wt.base_sha)
    git(sub, "add", "-A")
    git(sub, "commit", "-qm", "x")
    patch = await diff_worktree(wt.git, wt.base_sha)
    assert "new file mode 160000" in patch and "+Subproject commit " in patch
    assert applied_to_base(wt, wt.base_sha, patch, tmp_path) == staged_by_git(wt, wt.base_sha, tmp_path)


async def test_working_tree_encoding_is_left_to_git(
    git_repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="boocode_mcp.workspace.worktrees")
    # git re-encodes such a file to UTF-8 when staging it; libgit2 cannot, so the git CLI diffs.
    (git_repo / ".gitattributes").write_text("*.utf16 working-tree-encoding=UTF-16LE text\n")
    (git_repo / "w.utf16").write_bytes("one\ntwo\n".encode("utf-16-le"))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "utf-16")
    wt = await create_worktree(git_repo, "encoding")
    (wt.path / "w.utf16").write_bytes("one\n2\n".encode("utf-16-le"))
    kept = DiffIndex(wt.git, tmp_path / "kept")
    patch = await kept.diff(wt.base_sha)
    assert "-two\n+2\n" in patch
    assert "working-tree-encoding" in caplog.text
    assert applied_to_base(wt, wt.base_sha, patch, tmp_path) == staged_by_git(wt, wt.base_sha, tmp_path)
    # Every later diff of that worktree stays with git.
    (wt.path / "w.utf16").write_bytes("one\n3\n".encode("utf-16-le"))
    assert "+3\n" in await kept.diff(wt.base_sha)


async def test_the_worktrees_dot_git_is_never_read(git_repo: Path, tmp_path: Path) -> None:
    # The private git directory names the repository and the worktree itself: a .git pointing
    # elsewhere changes nothing (DiffIndex refuses such a worktree before diffing anyway).
    wt = await create_worktree(git_repo, "dotgit")
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (wt.path / "new.txt").write_text("new\n")
    (wt.path / ".git").write_text(f"gitdir: {other / '.git'}\n")
    assert StagingArea(wt.git, tmp_path / "area").stage(wt.base_sha).touched == {b"new.txt"}


# --- what a turn costs -------------------------------------------------------------------------


async def test_a_turn_diffs_only_what_it_touched(
    git_repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="boocode_mcp.workspace.worktrees")
    wt = await create_worktree(git_repo, "costs")
    kept = DiffIndex(wt.git, tmp_path / "area")
    (wt.path / "many").mkdir()
    for i in range(60):
        (wt.path / "many" / f"f{i}.txt").write_text(f"file {i}\n")
    first = await kept.changes(wt.base_sha)
    assert len(first.parsed.files) == 60
    # Nothing changed: the last answer, as it was, and no git process.
    assert await kept.changes(wt.base_sha) is first
    # Three text files changed: their sections are written while staging, no git process; the
    # other files are the very objects of the last diff.
    for i in (3, 30, 59):
        (wt.path / "many" / f"f{i}.txt").write_text(f"file {i} changed\n")
    caplog.clear()
    third = await kept.changes(wt.base_sha)
    made_again = {b.path for a, b in zip(first.parsed.files, third.parsed.files, strict=True) if a is not b}
    assert made_again == {"many/f3.txt", "many/f30.txt", "many/f59.txt"}
    assert third.text == await diff_worktree(wt.git, wt.base_sha)
    assert_same_as_git(third.text, wt, wt.base_sha, tmp_path)
    record = next(r for r in caplog.records if hasattr(r, "diffed_paths"))
    assert getattr(record, "diffed_paths") == 3 and getattr(record, "sections_written")  # noqa: B009
    assert set(getattr(record, "timings")) == {"stage"}  # noqa: B009
    # One of three is binary now: one git process, `git diff` of the three paths.
    (wt.path / "many" / "f3.txt").write_bytes(b"\0binary\n")
    for i in (30, 59):
        (wt.path / "many" / f"f{i}.txt").write_text(f"file {i} changed again\n")
    caplog.clear()
    fourth = await kept.changes(wt.base_sha)
    assert "GIT binary patch" in fourth.text
    assert_same_as_git(fourth.text, wt, wt.base_sha, tmp_path)
    record = next(r for r in caplog.records if hasattr(r, "diffed_paths"))
    assert getattr(record, "diffed_paths") == 3 and not getattr(record, "sections_written")  # noqa: B009
    assert set(getattr(record, "timings")) == {"stage", "git diff"}  # noqa: B009


async def test_sections_made_again_take_their_place_beside_a_rename(git_repo: Path, tmp_path: Path) -> None:
    wt = await create_worktree(git_repo, "splice")
    kept = DiffIndex(wt.git, tmp_path / "area")
    (wt.path / "src" / "app.py").rename(wt.path / "zz.py")
    (wt.path / "README.md").write_text("# demo\nmore\n")
    first = await kept.changes(wt.base_sha)
    assert [f.status for f in first.parsed.files] == ["modified", "renamed"]
    # Only README.md changes: its section is made again, the rename kept where git puts it.
    (wt.path / "README.md").write_text("# demo\nmore still\n")
    second = await kept.changes(wt.base_sha)
    assert second.parsed.files[1] is first.parsed.files[1]
    assert_same_as_git(second.text, wt, wt.base_sha, tmp_path)


def test_private_indexes_live_in_memory_in_a_directory_of_this_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    root = tmp_path / "repo" / ".boocode" / "indexes"
    chosen = in_memory_root(root)
    assert chosen.parent == runtime / f"boocode-{os.getuid()}"
    assert chosen.parent.stat().st_mode & 0o777 == 0o700
    assert in_memory_root(tmp_path / "elsewhere") != chosen
    # A directory others can write to (or a symlink) is not used.
    chosen.parent.chmod(0o777)
    assert in_memory_root(root).parent != chosen.parent
