"""The web page in a real browser: Debian's Chromium, driven by Playwright, against the daemon that
`boocode-mcp` started and `boocode ui` asked to serve the page, with the fixture agent doing the
work. Screenshots of the main pages are kept under test-artifacts/ui/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from mcp import Client
from playwright.async_api import Page, expect

from tests.mcp_support import call, configure, run_turn, stdio_params, wait_for
from tests.ui_support import WAIT_MS, base_of, chromium, screenshot, ui_url
from tests.workflow_support import write_workflow

pytestmark = pytest.mark.anyio


async def open_page(page: Page, url: str, route: str = "") -> None:
    """Log in with the printed URL (the token becomes a cookie) and open a page of the app."""
    response = await page.goto(url)
    assert response is not None and response.ok
    assert "token" not in page.url, "the login redirect keeps the token out of the address bar"
    if route:
        await page.evaluate("route => { location.hash = route }", route)
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)


async def test_a_run_spawned_over_mcp_appears_without_reload_and_shows_its_tool_calls(git_repo: Path) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()
        await open_page(page, url)
        await expect(page.locator("p.empty")).to_contain_text("no runs", timeout=WAIT_MS)
        # A reload would forget this: the run must arrive on the open page by itself.
        await page.evaluate("window.stillTheSamePage = true")
        spawned = await call(client, "spawn_subagent", prompt="steps 3 150")
        row = page.locator(f'tr[data-run="{spawned["subagent_id"]}"]')
        await expect(row).to_be_visible(timeout=WAIT_MS)
        await expect(row).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
        assert await page.evaluate("window.stillTheSamePage") is True
        await screenshot(page, "runs")

        await row.locator("td a").first.click()
        for i in (1, 2, 3):
            bar = page.locator(f'.waterfall [data-tool-call="tc-step-{i}"]')
            await expect(bar).to_contain_text(f"Run step {i}", timeout=WAIT_MS)
            await expect(bar.locator(".wf-bar")).to_have_class("wf-bar t-completed")
        timeline = page.locator(".timeline li")
        await expect(timeline.filter(has_text="Run step 2")).to_have_count(2)  # the call and its update
        await expect(page.locator(".plan li.p-completed")).to_have_count(3)
        await expect(page.locator("pre.message")).to_have_text("ran 3 steps")
        await screenshot(page, "run")
        assert await page.evaluate("window.stillTheSamePage") is True


async def test_apply_from_the_page_lands_the_file_and_a_conflict_applies_nothing(git_repo: Path) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        fresh = await run_turn(client, "write fresh.txt from the first chat")
        ours = await run_turn(client, "write shared.txt ours")
        theirs = await run_turn(client, "write shared.txt theirs")
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()

        await open_page(page, url, f"#/patch/{ours['patch_id']}")
        await expect(page.locator(".diff-file[data-file='shared.txt']")).to_contain_text(
            "ours", timeout=WAIT_MS
        )
        await screenshot(page, "patch")
        await page.get_by_role("button", name="Apply", exact=True).click()
        await expect(page.locator(".apply-result.ok")).to_contain_text("Applied 1 patch", timeout=WAIT_MS)
        assert (git_repo / "shared.txt").read_text() == "ours"
        await expect(page.locator(".badge").first).to_have_text("applied", timeout=WAIT_MS)

        # Two patches at once, one of which no longer applies: neither lands.
        await page.evaluate("location.hash = '#/patches'")
        for patch_id in (fresh["patch_id"], theirs["patch_id"]):
            await page.locator(f'tr[data-patch="{patch_id}"] input[type=checkbox]').check(timeout=WAIT_MS)
        await page.get_by_role("button", name="Apply selected (all or nothing)").click()
        result = page.locator(".apply-result.conflict")
        await expect(result).to_contain_text("Nothing applied: the workspace is unchanged.", timeout=WAIT_MS)
        await expect(result.locator("table.conflicts")).to_contain_text("shared.txt")
        assert not (git_repo / "fresh.txt").exists()
        assert (git_repo / "shared.txt").read_text() == "ours"
        await screenshot(page, "patches")


async def test_a_pending_permission_is_answered_by_a_button(git_repo: Path) -> None:
    configure(git_repo, policy="ask")
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        spawned = await call(client, "spawn_subagent", prompt="permission granted.txt")
        asking = await wait_for(client, spawned["subagent_id"], {"awaiting_permission"})
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()
        await open_page(page, url, f"#/run/{spawned['subagent_id']}")
        card = page.locator("section.permission")
        await expect(card).to_contain_text(asking["pending_permission"]["title"], timeout=WAIT_MS)
        await screenshot(page, "permission")
        await card.locator('button[data-kind="allow_once"]').click()
        await expect(page.locator(".run-head .badge")).to_have_text("completed", timeout=WAIT_MS)
        await expect(card).to_have_count(0)
        final = await wait_for(client, spawned["subagent_id"], {"completed"})
        allow = next(o for o in asking["pending_permission"]["options"] if o["kind"] == "allow_once")
        assert final["final_message"] == f"allowed {allow['option_id']}"


class _Evil(BaseHTTPRequestHandler):
    """Another site on this machine (same host, another port: same-site, so the browser still sends
    the login cookie) whose page tries to apply a patch through the logged-in browser."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def evil_site(ui_base: str, patch_id: str) -> Iterator[str]:
    body = f"""{{"patch_ids": ["{patch_id}"]}}"""
    script = f"""
      const target = "{ui_base}api/apply_pending";
      const attempts = [
        fetch(target, {{method: "POST", mode: "no-cors", credentials: "include",
                        headers: {{"content-type": "text/plain"}}, body: '{body}'}}),
        fetch(target, {{method: "POST", credentials: "include",
                        headers: {{"content-type": "application/json"}}, body: '{body}'}}),
      ];
      Promise.allSettled(attempts).then(() => {{ document.title = "tried"; }});
    """
    handler = type(
        "Evil", (_Evil,), {"page": f"<html><body><script>{script}</script></body></html>".encode()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_without_the_token_the_page_shows_nothing_and_a_cross_origin_post_is_refused(
    git_repo: Path,
) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        done = await run_turn(client, "write secret.txt do not apply me")
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        base = base_of(url)
        page = await browser.new_page()
        for address in (base, f"{base}?token=not-the-token", f"{base}api/list_runs", f"{base}static/app.js"):
            response = await page.goto(address)
            assert response is not None and response.status == 401, address
            shown = await page.content()
            assert done["subagent_id"] not in shown and str(git_repo) not in shown
            assert await page.locator("#view").count() == 0

        # Logged in, then lured to another local site: its requests reach the server with the
        # cookie, and are refused for their origin.
        await open_page(page, url)
        with evil_site(base, done["patch_id"]) as evil:
            await page.goto(evil)
            await expect(page).to_have_title("tried", timeout=WAIT_MS)
        listed = await call(client, "list_patches", status="pending")
        assert [p["id"] for p in listed["patches"]] == [done["patch_id"]]
        assert not (git_repo / "secret.txt").exists()


async def test_traces_and_usage_pages_show_the_workspace(git_repo: Path) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        await run_turn(client, "tools")
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()
        await open_page(page, url, "#/traces")
        traces = page.locator("table.traces")
        await expect(traces.locator(".src-mcp").first).to_be_visible(timeout=WAIT_MS)
        await expect(traces).to_contain_text("spawn_subagent")
        await expect(traces).to_contain_text("Read two files")
        await screenshot(page, "traces")

        await page.evaluate("location.hash = '#/usage?since=all'")
        row = page.locator('table.usage tr[data-key="fixture"]').first
        await expect(row).to_contain_text("1", timeout=WAIT_MS)
        for chart in ("agent-tokens", "agent-runs", "day-tokens", "day-success"):
            await expect(page.locator(f'[data-chart="{chart}"] canvas')).to_have_count(1)
        await expect(page.locator("p.note").first).to_contain_text("no agent has reported cache tokens")

        # A run that reports cache tokens arrives on the open page, and the hit rate is charted:
        # cache reads over all input, 5 / (11 + 5).
        await run_turn(client, "usage")
        await expect(row).to_contain_text("31%", timeout=WAIT_MS)
        for chart in ("agent-cache", "day-cache"):
            await expect(page.locator(f'[data-chart="{chart}"] canvas')).to_have_count(1)
        await expect(page.locator("p.note")).to_have_count(0)
        await screenshot(page, "usage")


async def test_the_inbox_page_lists_what_needs_a_person_and_retries_a_failed_run(git_repo: Path) -> None:
    configure(git_repo, policy="ask")
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        crashed = await call(client, "spawn_subagent", prompt="crash 7")
        await wait_for(client, crashed["subagent_id"], {"failed"})
        asking = await call(client, "spawn_subagent", prompt="permission inbox.txt")
        await wait_for(client, asking["subagent_id"], {"awaiting_permission"})
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()
        await open_page(page, url, "#/inbox")
        failed = page.locator(f'tr[data-kind="failed"][data-item="{crashed["subagent_id"]}"]')
        await expect(failed).to_contain_text("exited with code 7", timeout=WAIT_MS)
        waiting = page.locator(f'tr[data-kind="permission"][data-item="{asking["subagent_id"]}"]')
        await expect(waiting).to_contain_text("inbox.txt")
        await expect(waiting.get_by_role("link", name="Answer on the run's page")).to_be_visible()
        await screenshot(page, "inbox")

        await failed.get_by_role("button", name="Retry").click()
        await expect(page.locator(".action-result")).to_contain_text("retried as", timeout=WAIT_MS)
        # Retried: out of the inbox; its retry (which crashes the same way) comes in live.
        await expect(failed).to_have_count(0, timeout=WAIT_MS)
        retry_id = await page.locator(".action-result a").get_attribute("title")
        assert retry_id is not None and retry_id != crashed["subagent_id"]
        again = await wait_for(client, retry_id, {"failed"})
        assert again["retry_of"] == crashed["subagent_id"]
        await expect(page.locator(f'tr[data-kind="failed"][data-item="{retry_id}"]')).to_be_visible(
            timeout=WAIT_MS
        )


ONE_STEP = """
workflow = {
  name: "once",
  description: "one step, logged",
  async run({prompt}) {
    log("asking the agent");
    const out = await phase("ask", () => agent("ask", {prompt: prompt || "usage"}).run());
    return {said: out.text};
  },
};
"""


async def test_the_workflows_page_shows_runs_live_marks_cached_steps_and_cancels_a_run(
    git_repo: Path,
) -> None:
    configure(git_repo)
    write_workflow(git_repo, "once", ONE_STEP)
    async with Client(stdio_params(git_repo), mode="legacy") as client, chromium() as browser:
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        page = await browser.new_page()
        await open_page(page, url, "#/workflows")
        await expect(page.locator("p.empty")).to_contain_text("no workflow runs", timeout=WAIT_MS)
        await page.evaluate("window.stillTheSamePage = true")

        runs = []
        for _ in range(2):
            started = await call(client, "run_workflow", name="once", wait_seconds=20)
            assert started["status"] == "completed", started
            runs.append(started["workflow_run_id"])
        first, second = (page.locator(f'tr[data-workflow-run="{r}"]') for r in runs)
        # The fixture agent's `usage` turn reports 11 tokens in and 7 out; a cached step spends none.
        await expect(first).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
        await expect(first.locator("td.steps .done")).to_have_text("1/1")
        await expect(first.locator(".cached")).to_have_count(0)
        await expect(first.locator("td.num")).to_have_text("18")
        await expect(second).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
        await expect(second.locator("td.steps .done")).to_have_text("1/1")
        await expect(second.locator("td.steps .cached")).to_have_text("1 cached")
        await expect(second.locator("td.num")).to_have_text("–")
        assert await page.evaluate("window.stillTheSamePage") is True
        await screenshot(page, "workflows")

        await second.locator("td a").first.click()
        step = page.locator('table.workflow-steps tr[data-step="ask"]')
        await expect(step).to_have_attribute("data-cached", "true", timeout=WAIT_MS)
        await expect(step.locator(".cached")).to_have_text("cached")
        await expect(page.locator(".workflow-log")).to_contain_text("asking the agent")
        await expect(page.locator(".workflow-result")).to_contain_text("usage reported")
        await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        await screenshot(page, "workflow")
        # A cached step links the run that made its result: the first run's step.
        original = await call(client, "workflow_status", workflow_run_id=runs[0])
        await step.locator("td a").first.click()
        await expect(page.locator(".run-head .badge")).to_have_text("completed", timeout=WAIT_MS)
        assert original["steps"][0]["subagent_id"] in page.url

        # A live run is cancelled from its page, with its running step.
        slow = await call(client, "run_workflow", name="once", args={"prompt": "slow 400 50"})
        await page.evaluate("route => { location.hash = route }", f"#/workflow/{slow['workflow_run_id']}")
        step = page.locator('table.workflow-steps tr[data-step="ask"]')
        await expect(step).to_have_attribute("data-status", "running", timeout=WAIT_MS)
        await page.get_by_role("button", name="Cancel").click()
        await expect(page.locator(".action-result")).to_contain_text("the run is cancelled", timeout=WAIT_MS)
        await expect(page.locator(".run-head .badge")).to_have_text("cancelled")
        await expect(step).to_have_attribute("data-status", "cancelled", timeout=WAIT_MS)
        await expect(page.locator(".workflow-run-error")).to_contain_text("cancelled by cancel_workflow")
