"""Benchmark: BooCode's worktree diff + parse against plain `git diff` of the same change.

Builds a repository, makes a 1,000-file (~10 MB) change in a chat worktree (half modified tracked
files, half new untracked files), then times, in the same run:

- boocode: `diff_worktree` (temporary index, untracked files included) + `parse_unified_diff`
- git diff: `git diff --cached --binary -M HEAD` in a copy where the same change is already staged
- git add+diff: `git add -A` into a fresh temporary index + that diff (what any untracked-aware
  diff has to do)

then what a chat's later turns cost on the diff index the runner keeps (`DiffIndex`), with that
change in place: a turn that changed nothing (one `git add` that finds nothing to rehash, and the
last diff reused: no `git diff`), and a turn that changed three files (rehashing three files, one
`git diff`) — against a fresh `diff_worktree` of the same state.

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
        await _later_turns(wt, reps)


async def _later_turns(wt: Worktree, reps: int) -> None:
    indexes = DiffIndexes()
    try:
        kept = indexes.get(wt.git)
        await kept.prepare(wt.base_sha)
        await kept.diff(wt.base_sha)
        unchanged: list[float] = []
        three: list[float] = []
        fresh: list[float] = []
        for rep in range(reps):
            t0 = time.perf_counter()
            await kept.diff(wt.base_sha)
            unchanged.append(time.perf_counter() - t0)
            for n in range(3):
                (wt.path / f"pkg{n}" / f"turn{n}.py").write_text(f"turn = {rep}\n")
            t0 = time.perf_counter()
            text = await kept.diff(wt.base_sha)
            three.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert await diff_worktree(wt.git, wt.base_sha) == text
            fresh.append(time.perf_counter() - t0)
    finally:
        indexes.close()
    n, t, f = _median_s(unchanged), _median_s(three), _median_s(fresh)
    print("later turns on the kept diff index, the change above in place:")
    print(f"  nothing changed (no git diff)  : {n * 1000:8.1f} ms   ratio to a fresh diff = {n / f:.2f}x")
    print(f"  three files changed            : {t * 1000:8.1f} ms   ratio to a fresh diff = {t / f:.2f}x")
    print(f"  fresh diff_worktree            : {f * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measurement (default 7)")
    args = parser.parse_args()
    anyio.run(_main, args.reps)


if __name__ == "__main__":
    main()
