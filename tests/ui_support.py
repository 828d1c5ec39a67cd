"""Helpers shared by the web page's tests (this module holds no tests of its own).

The page is served by the workspace's real daemon (started by a real `boocode-mcp` or `boocode ui`
process) and driven by the system's Chromium through Playwright, which is told where the browser
is and never downloads one.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Error, Page, async_playwright

from tests.mcp_support import BOOCODE, server_env

CHROMIUM = Path("/usr/bin/chromium")
# Kept for a person to look at after a test run (the directory is git-ignored).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
# This machine has no network beyond loopback: nothing in the browser may try to reach out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


def ui_url(repo: Path) -> str:
    """`boocode ui --workspace REPO` as a user runs it: the login URL it prints."""
    done = subprocess.run(
        [str(BOOCODE), "ui", "--workspace", str(repo)],
        env=server_env(repo),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}", url), url
    return url


def base_of(url: str) -> str:
    """The page's address without its login token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


@asynccontextmanager
async def chromium() -> AsyncIterator[BrowserContext]:
    """The system's Chromium, headless, with a fresh profile; the test is skipped, saying why, only
    when the browser cannot start at all."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240  # one stat, before starting a browser
        pytest.skip(f"{CHROMIUM} is not installed (Debian package `chromium`; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="boocode-chromium-") as profile:
        async with async_playwright() as pw:
            try:
                context = await pw.chromium.launch_persistent_context(
                    profile,
                    executable_path=str(CHROMIUM),
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1280, "height": 900},
                )
            except Error as e:
                pytest.skip(f"chromium cannot start here: {e.message.splitlines()[0]}")
            try:
                yield context
            finally:
                await context.close()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
