"""Benchmark: the web page (`boocode ui`), served by the workspace's real daemon.

1. The runs page with 10,000 runs in the store (each with events, as real runs have): the daemon's
   time for `list_runs` (a page of 50; its Server-Timing header) — the first page, each filter, a
   page deep in the history — against the budget of 100 ms, and against the same requests,
   interleaved, to a second daemon on a copy of the store without the indexes migration 006_run_listing adds.
2. An agent event reaching the open page: the fixture agent streams chunks that carry the time
   they were sent; a real Chromium (Playwright, the system's /usr/bin/chromium) has the run's page
   open and notes when each is drawn. p50/p95/max of sent → drawn, against the budget of 250 ms,
   for a fast stream (an event every 25 ms) and a sparse one (every 300 ms), and against the same
   events reaching the CLI's way to follow a run (the `watch` long-poll over the daemon socket),
   measured at the same time.

Run: .venv/bin/python bench/bench_ui.py [--runs N] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
from benchlib import BOOCODE, ROOT, make_workspace, stop_daemon
from playwright.async_api import async_playwright

sys.path.insert(0, str(ROOT))

from boocode_mcp.daemon.client import SocketApi
from boocode_mcp.store import connect
from tests.ui_support import CHROMIUM, CHROMIUM_ARGS

PAGE = 50
EVENTS_PER_RUN = 12
AGENTS = ("opencode", "qwen", "claude", "codex", "gemini")
STATUSES = ("completed",) * 8 + ("failed", "cancelled")
STAMP = re.compile(r"stamp (\d+(?:\.\d+)?)")


async def fill(db_path: Path, runs: int) -> str:
    """`runs` finished runs over 200 sessions and the last 30 days, each with a few events; returns
    a session id to filter by."""
    db = await connect(db_path)
    rng = random.Random(7)
    now = time.time()
    sessions = [str(uuid.uuid4()) for _ in range(200)]
    await db.executemany(
        "INSERT INTO sessions (id, created_at) VALUES (?, ?)", [(s, now - 30 * 86400) for s in sessions]
    )
    chat_rows, run_rows, event_rows = [], [], []
    for i in range(runs):
        chat, run = str(uuid.uuid4()), str(uuid.uuid4())
        session, agent = rng.choice(sessions), rng.choice(AGENTS)
        created = now - 30 * 86400 + i * (30 * 86400 / runs)
        turn = rng.uniform(5, 120)
        usage = json.dumps({"input_tokens": rng.randint(500, 50000), "output_tokens": rng.randint(50, 5000)})
        chat_rows.append((chat, session, agent, f"/tmp/wt/{chat}", created, created))
        run_rows.append(
            (run, session, chat, agent, f"task {i}: " + "fix the thing " * 20, rng.choice(STATUSES),
             created, created + 1, created + 1 + turn, "end_turn", f"done {i}", usage)
        )  # fmt: skip
        for seq in range(1, EVENTS_PER_RUN + 1):
            event_rows.append((run, seq, "text", json.dumps({"text": f"chunk {seq} "}), created + 1 + seq))
    await db.executemany(
        "INSERT INTO chats (id, session_id, agent, worktree, created_at, updated_at) VALUES (?,?,?,?,?,?)",
        chat_rows,
    )
    await db.executemany(
        "INSERT INTO subagents (id, session_id, chat_id, agent, prompt, status, created_at, started_at,"
        " finished_at, stop_reason, final_message, usage_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        run_rows,
    )
    await db.executemany(
        "INSERT INTO events (subagent_id, seq, kind, payload, created_at) VALUES (?,?,?,?,?)", event_rows
    )
    await db.close()
    return sessions[0]


def scratch_config(base: Path) -> None:
    """Workspace trust and user config of this run (and of the daemons it starts) under `base`, so
    the user's own are never touched."""
    os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")


def boocode_ui(repo: Path) -> str:
    done = subprocess.run(
        [str(BOOCODE), "ui", "--workspace", str(repo)], capture_output=True, text=True, timeout=180
    )
    if done.returncode != 0:
        raise SystemExit(f"boocode ui failed: {done.stderr}")
    return done.stdout.strip()


def login_headers(url: str) -> dict[str, str]:
    port = url.split(":")[2].split("/")[0]
    return {"cookie": f"boocode_ui_{port}={url.split('token=')[1]}"}


def base_of(url: str) -> str:
    return url.split("?")[0]


def server_ms(http: httpx2.Client, url: str, op: str, params: dict[str, Any], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        r = http.get(f"{base_of(url)}api/{op}", params=params, headers=login_headers(url))
        r.raise_for_status()
        samples.append(float(r.headers["server-timing"].split("dur=")[1]))
    return samples


def listing_cases(url: str, runs: int, session: str) -> dict[str, dict[str, Any]]:
    with httpx2.Client(timeout=120) as http:
        deep: dict[str, Any] = {"next_before": None}
        for _ in range(runs // PAGE // 2):  # walk halfway back through the history
            deep = http.get(
                f"{base_of(url)}api/list_runs",
                params={k: v for k, v in {"limit": PAGE, "before": deep["next_before"]}.items() if v},
                headers=login_headers(url),
            ).json()["result"]
    return {
        "first page": {"limit": PAGE},
        "status=failed": {"limit": PAGE, "status": "failed"},
        "agent=qwen": {"limit": PAGE, "agent": "qwen"},
        "one session": {"limit": PAGE, "session_id": session},
        f"page {runs // PAGE // 2 + 1} (cursor)": {"limit": PAGE, "before": deep["next_before"]},
    }


def measure_listing(urls: list[str], cases: dict[str, dict[str, Any]], rounds: int) -> list[dict[str, float]]:
    """Median server time per case on each daemon, their requests interleaved so that load on the
    machine falls on every daemon alike."""
    samples: list[dict[str, list[float]]] = [{name: [] for name in cases} for _ in urls]
    with httpx2.Client(timeout=120) as http:
        for url in urls:
            for params in cases.values():  # warm the page cache, as a page in use is
                server_ms(http, url, "list_runs", params, 3)
        for _ in range(rounds):
            for name, params in cases.items():
                for url, mine in zip(urls, samples, strict=True):
                    mine[name] += server_ms(http, url, "list_runs", params, 1)
    return [{name: statistics.median(v) for name, v in mine.items()} for mine in samples]


def bench_listing(runs: int, rounds: int) -> None:
    """The daemon's server time for list_runs, against a second daemon on a copy of the same store
    without the indexes this change adds (the store as it was)."""
    with tempfile.TemporaryDirectory(prefix="boocode-bench-ui-") as tmp:
        scratch_config(Path(tmp))
        repo = make_workspace(Path(tmp) / "indexed")
        plain_repo = make_workspace(Path(tmp) / "plain")
        db = repo / ".boocode" / "boocode.db"
        session = asyncio.run(fill(db, runs))
        shutil.copyfile(db, plain_repo / ".boocode" / "boocode.db")
        with closing(sqlite3.connect(plain_repo / ".boocode" / "boocode.db")) as plain, plain:
            plain.executescript(
                "DROP INDEX subagents_created; DROP INDEX subagents_status_created;"
                " DROP INDEX subagents_agent_created; CREATE INDEX subagents_status ON subagents(status);"
            )
        try:
            url, plain_url = boocode_ui(repo), boocode_ui(plain_repo)
            cases = listing_cases(url, runs, session)
            indexed, unindexed = measure_listing([url, plain_url], cases, rounds)
        finally:
            stop_daemon(repo)
            stop_daemon(plain_repo)
    print(f"1. runs page, {runs:,} runs with {EVENTS_PER_RUN} events each: the daemon's time for list_runs")
    print(
        f"   (a page of {PAGE}, median of {rounds}, its Server-Timing)    vs 100 ms   without the new indexes"
    )
    for name, ms in indexed.items():
        print(
            f"   {name:<22} {ms:7.2f} ms  {ms / 100:6.1%} of the budget  "
            f"{unindexed[name]:7.2f} ms = {unindexed[name] / ms:4.1f}x"
        )


class WatchFollower:
    """Follows the run the way `boocode run`/`attach` do (the daemon API's `watch` long-poll) in a
    thread, noting when each event arrives."""

    def __init__(self, repo: Path, run_id: str) -> None:
        self.arrived: list[tuple[float, str]] = []
        self._api = SocketApi(repo)
        self._run = run_id
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        seq = 0
        while True:
            batch = self._api.call("watch", subagent_id=self._run, after_seq=seq, wait_seconds=10)
            now = time.time() * 1000
            seq = batch["next_seq"]
            self.arrived += [(now, e["payload"].get("text", "")) for e in batch["events"]]
            if (
                batch["status"]["status"] in ("completed", "failed", "cancelled", "interrupted")
                and not batch["events"]
            ):
                return

    def join(self) -> None:
        self._thread.join(timeout=120)
        self._api.close()


def latencies(arrivals: list[tuple[float, str]]) -> list[float]:
    out = []
    for at, text in arrivals:
        out += [at - float(m.group(1)) for m in STAMP.finditer(text)]
    return out


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def summary(samples: list[float]) -> str:
    return (
        f"p50 {statistics.median(samples):6.1f} ms  p95 {p95(samples):6.1f} ms  max {max(samples):6.1f} ms"
        f"  (n={len(samples)})"
    )


async def page_latency(url: str, repo: Path, events: int, every_ms: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="boocode-bench-chromium-") as profile:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = await browser.new_page()
            await page.add_init_script(
                "window.drawn = []; window.addEventListener('boocode:run-events', e => "
                "window.drawn.push([Date.now(), e.detail.events.map(ev => ev.payload.text || '').join('')]));"
            )
            await page.goto(url)
            await page.wait_for_selector("#live[data-state=live]")
            api = SocketApi(repo)
            try:
                spawned = api.call("spawn_subagent", prompt=f"stamps {events} {every_ms} 2500")
            finally:
                api.close()
            run_id = spawned["subagent_id"]
            follower = WatchFollower(repo, run_id)
            await page.evaluate("id => { location.hash = '#/run/' + id }", run_id)
            await page.wait_for_selector(".run-head .badge:text('completed')", timeout=120_000)
            drawn = await page.evaluate("window.drawn")
            await browser.close()
    follower.join()
    return latencies([(at, text) for at, text in drawn]), latencies(follower.arrived)


def bench_latency(events: int) -> None:
    with tempfile.TemporaryDirectory(prefix="boocode-bench-ui-") as tmp:
        scratch_config(Path(tmp))
        repo = make_workspace(Path(tmp))
        try:
            url = boocode_ui(repo)
            results = {every: asyncio.run(page_latency(url, repo, events, every)) for every in (25, 300)}
        finally:
            stop_daemon(repo)
    print("2. agent event sent → drawn on the open run page (real Chromium), vs the 250 ms budget at p95")
    for every, (page, watch) in results.items():
        print(f"   an event every {every:>3} ms: page  {summary(page)}  {p95(page) / 250:6.1%} of the budget")
        print(
            f"   {'':21}watch {summary(watch)}  page/watch p95 {p95(page) / p95(watch):4.2f}x"
            " (watch: the CLI's long-poll, the same events)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the store (default 10,000)")
    parser.add_argument("--rounds", type=int, default=30, help="requests per listing (default 30)")
    parser.add_argument("--events", type=int, default=120, help="stamped events per stream (default 120)")
    args = parser.parse_args()
    bench_listing(args.runs, args.rounds)
    bench_latency(args.events)


if __name__ == "__main__":
    main()
