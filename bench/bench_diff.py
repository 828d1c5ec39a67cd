"""Benchmark: BooCode's worktree diff + parse against plain `git diff` of the same change.

Builds a repository, makes a 1,000-file (~10 MB) change in a chat worktree (half modified tracked
files, half new untracked files), then times, in the same run:

- boocode: `diff_worktree` (a fresh private index staged by libgit2 in this process, untracked
  files included, then one `git diff --cached`) + `parse_unified_diff`
- git diff: `git diff --cached --binary -M HEAD` in a copy where the same change is already staged
- git add+diff: `git add -A` into a fresh temporary index + that diff (what any untracked-aware
  diff has to do)

then what a chat's later turns cost on the diff index the runner keeps (`DiffIndex`), with that
change in place: a turn that changed nothing (a walk of the worktree's stat data; the last diff is
the answer, no git process) and a turn that changed three files (those three hashed and staged, one
`git diff` of those three paths; the other 1,000 sections reused), each against what the same turn
cost before (the git CLI: `git add` into a copy of a prepared index of the base, rehashing every
file that differs from the base, then `git diff --cached` of the whole change) and against a fresh
`diff_worktree` of the same state, alternately.

Run: .venv/bin/python bench/bench_diff.py [--reps N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from boocode_mcp.workspace import DiffIndexes, Worktree, create_worktree, diff_worktree, parse_unified_diff
from boocode_mcp.workspace.git import run_git
from boocode_mcp.workspace.worktrees import in_memory_root

BASE_FILES = 1_000
MODIFIED = 500
NEW = 500
LINES_PER_FILE = 200  # ~10 KB per file with the line lengths below


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    full_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        **(env or {}),
    }
    return subprocess.run(["git", *args], cwd=cwd, env=full_env, check=True, capture_output=True).stdout


def _text(rng: random.Random, lines: int) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    return "".join(" ".join(rng.choices(words, k=8)) + f" {rng.randrange(10**6)}\n" for _ in range(lines))


def _make_change(root: Path, rng: random.Random) -> int:
    """Modify MODIFIED tracked files and add NEW untracked ones under root; returns bytes written."""
    written = 0
    for i in range(MODIFIED):
        path = root / f"pkg{i % 20}" / f"mod{i}.py"
        lines = path.read_text().splitlines(keepends=True)
        for j in range(0, len(lines), 10):  # one changed line in ten
            lines[j] = f"changed {rng.randrange(10**9)}\n"
        data = "".join(lines)
        path.write_text(data)
        written += len(data)
    for i in range(NEW):
        path = root / "new" / f"dir{i % 25}" / f"file{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _text(rng, LINES_PER_FILE)
        path.write_text(data)
        written += len(data)
    return written


def _median_s(samples: list[float]) -> float:
    return statistics.median(samples)


async def _main(reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="boocode-bench-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        rng = random.Random(7)
        for i in range(BASE_FILES):
            path = repo / f"pkg{i % 20}" / f"mod{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_text(rng, LINES_PER_FILE))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")

        wt = await create_worktree(repo, "bench")
        size = _make_change(wt.path, random.Random(11))
        copy = Path(tmp) / "copy"
        _git(repo, "clone", "-q", str(repo), str(copy))
        _make_change(copy, random.Random(11))
        _git(copy, "add", "-A")

        # The three measurements take turns within each repetition, so load on the machine
        # weighs on all of them alike.
        boocode: list[float] = []
        parse_only: list[float] = []
        plain: list[float] = []
        add_diff: list[float] = []
        parsed = None
        text = ""
        plain_out = b""
        for _ in range(reps):
            t0 = time.perf_counter()
            text = await diff_worktree(wt.git, wt.base_sha)
            t1 = time.perf_counter()
            parsed = parse_unified_diff(text)
            boocode.append(time.perf_counter() - t0)
            parse_only.append(time.perf_counter() - t1)

            t0 = time.perf_counter()
            plain_out = _git(copy, "diff", "--cached", "--binary", "-M", "HEAD")
            plain.append(time.perf_counter() - t0)

            index = Path(tmp) / "bench-index"
            shutil.copyfile(copy / ".git" / "index", index)
            env = {"GIT_INDEX_FILE": str(index)}
            t0 = time.perf_counter()
            _git(copy, "read-tree", "-m", "HEAD", env=env)
            _git(copy, "add", "-A", env=env)
            _git(copy, "diff", "--cached", "--binary", "-M", "HEAD", env=env)
            add_diff.append(time.perf_counter() - t0)
        assert parsed is not None

        b, p, a = _median_s(boocode), _median_s(plain), _median_s(add_diff)
        print(
            f"change: {parsed.file_count} files, {size / 1e6:.1f} MB written, diff {len(text) / 1e6:.1f} MB"
        )
        print(
            f"        {parsed.hunk_count} hunks, +{parsed.additions} -{parsed.deletions} "
            f"(plain diff {len(plain_out) / 1e6:.1f} MB)"
        )
        print(f"reps: {reps} (medians)")
        parse_ms = _median_s(parse_only) * 1000
        print(f"boocode diff_worktree + parse : {b * 1000:8.1f} ms   (parse alone {parse_ms:.1f} ms)")
        print(f"git diff --cached (staged)    : {p * 1000:8.1f} ms   ratio boocode/git = {b / p:.2f}x")
        print(f"git add -A + git diff         : {a * 1000:8.1f} ms   ratio boocode/add+diff = {b / a:.2f}x")
        await _later_turns(wt, reps, Path(tmp))


async def _before(wt: Worktree, prepared: Path, work: Path) -> str:
    """The diff as a turn made it before: a copy of an index of the base (prepared ahead, with the
    checkout's stat data), `git add -A` into it, `git diff --cached` of everything."""
    shutil.copy2(prepared, work)
    env = {"GIT_INDEX_FILE": str(work)}
    await run_git(wt.git, "add", "-A", "--", ".", env=env)
    args = ("diff", "--cached", "--binary", "-M", "--no-ext-diff", "--no-textconv", wt.base_sha, "--")
    return (await run_git(wt.git, *args, env=env)).out


async def _later_turns(wt: Worktree, reps: int, scratch: Path) -> None:
    indexes = DiffIndexes(in_memory_root(scratch))
    prepared, work = scratch / "prepared-index", scratch / "work-index"
    shutil.copy2(wt.git.index_file, prepared)
    await run_git(wt.git, "read-tree", "-m", wt.base_sha, env={"GIT_INDEX_FILE": str(prepared)})
    try:
        kept = indexes.get(wt.git)
        await kept.prepare(wt.base_sha)
        await kept.diff(wt.base_sha)
        unchanged: list[float] = []
        unchanged_before: list[float] = []
        three: list[float] = []
        three_before: list[float] = []
        fresh: list[float] = []
        for rep in range(reps):
            t0 = time.perf_counter()
            await kept.diff(wt.base_sha)
            unchanged.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await _before(wt, prepared, work)
            unchanged_before.append(time.perf_counter() - t0)
            for n in range(3):
                (wt.path / f"pkg{n}" / f"turn{n}.py").write_text(f"turn = {rep}\n")
            t0 = time.perf_counter()
            text = await kept.diff(wt.base_sha)
            three.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await _before(wt, prepared, work)
            three_before.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert await diff_worktree(wt.git, wt.base_sha) == text
            fresh.append(time.perf_counter() - t0)
    finally:
        indexes.close()
    n, nb, t, tb, f = (_median_s(x) for x in (unchanged, unchanged_before, three, three_before, fresh))
    print("later turns on the kept diff index, the change above in place (before: git add + git diff):")
    print(f"  nothing changed   : {n * 1000:8.1f} ms   before {nb * 1000:8.1f} ms   {nb / n:6.1f}x less")
    print(f"  three files changed: {t * 1000:7.1f} ms   before {tb * 1000:8.1f} ms   {tb / t:6.1f}x less")
    print(f"  fresh diff_worktree: {f * 1000:7.1f} ms   (nothing kept: every changed file hashed and diffed)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measurement (default 7)")
    args = parser.parse_args()
    anyio.run(_main, args.reps)


if __name__ == "__main__":
    main()
