"""Shared fixtures: the asyncio backend for anyio tests and real git repositories."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
FIXTURE_AGENT = TESTS_DIR / "fixtures" / "fixture_agent.py"


@pytest.fixture(scope="session", autouse=True)
def user_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A user config directory (XDG_CONFIG_HOME) of the test session's own, inherited by every
    process a test starts: the developer's ~/.config/boocode never leaks into a test, and the trust
    records tests make (boocode_mcp.trust) stay out of it. Session-wide, as hypothesis tests refuse
    function-scoped fixtures; trust records are per workspace path, so tests do not meet."""
    home = tmp_path_factory.mktemp("xdg-config")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(home))
        yield home / "boocode"


@pytest.fixture
def anyio_backend() -> str:
    # The ACP SDK is asyncio-only.
    return "asyncio"


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit holding README.md and src/app.py."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.com")
    (repo / "README.md").write_text("# demo\n")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("def main():\n    return 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture(autouse=True)
def _stop_daemons(tmp_path: Path) -> Iterator[None]:
    """Stop every workspace daemon a test started (front ends start them detached, so nothing
    else would): a daemon left running would hold its agents past the test."""
    yield
    from boocode_mcp.daemon.wire import DaemonError, stop_daemon

    for info in tmp_path.rglob(".boocode/run/daemon.json"):
        with contextlib.suppress(DaemonError, OSError):
            stop_daemon(info.parent.parent.parent)
