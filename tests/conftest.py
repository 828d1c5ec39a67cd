"""Shared fixtures: the asyncio backend for anyio tests, real git repositories, and an engine on one
(with the scripted fixture agent), plus the helpers the engine tests share."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp import workspace
from boocode_mcp.agents.events import AgentEvent, TextEvent
from boocode_mcp.config import user_config_dir
from boocode_mcp.engine import Engine
from boocode_mcp.store import Database, chats, open_db, sessions, subagents
from boocode_mcp.trust import trust_workspace
from boocode_mcp.views import SubagentView
from tests.pg_support import Cluster, find_bin_dir, running_cluster

TESTS_DIR = Path(__file__).parent
FIXTURE_AGENT = TESTS_DIR / "fixtures" / "fixture_agent.py"
# Bound on every wait for a run in the engine tests.
TIMEOUT_S = 60


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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the test session (skips where PostgreSQL is missing)."""
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        pytest.skip(why)
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty database of its own for the test, dropped after it."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What `open_db` opens, once per dialect: a sqlite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "boocode.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(store_target: str | Path) -> AsyncIterator[Database]:
    """A migrated store of each dialect (the store-level tests run against both)."""
    async with open_db(store_target) as conn:
        yield conn


def sqlite_only(db: Database, why: str) -> None:
    """Skip the postgres case of a test that checks something only sqlite has."""
    if db.dialect != "sqlite":
        pytest.skip(f"sqlite only: {why}")


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


def write_config(
    repo: Path, *, extra: str = "", policy: str = "auto", timeout_s: float = 300, agent_extra: str = ""
) -> None:
    """The workspace config of the engine tests: the fixture agent as the default (`agent_extra`
    adds lines to its table), a permission policy, `extra` at the top level; trusted as `boocode
    trust` would (in the test session's user config directory)."""
    (repo / ".boocode").mkdir(exist_ok=True)
    (repo / ".boocode" / "config.toml").write_text(
        f'default_agent = "fixture"\n{extra}\n'
        f"[agents.fixture]\ncommand = {str(sys.executable)!r}\nargs = [{str(FIXTURE_AGENT)!r}]\n"
        f"{agent_extra}\n"
        f'[permissions]\npolicy = "{policy}"\ntimeout_s = {timeout_s}\n'
    )
    trust_workspace(repo)


@pytest.fixture
def user_config() -> Path:
    """The test session's user config (none: see user_config_home), where write_config's trust is kept."""
    return user_config_dir() / "config.toml"


@pytest.fixture
async def engine(request: pytest.FixtureRequest, git_repo: Path, user_config: Path) -> AsyncIterator[Engine]:
    """An engine on `git_repo` with the fixture agent; `@pytest.mark.engine_config(...)` passes
    `write_config` arguments (policy, timeout_s, extra)."""
    marker = request.node.get_closest_marker("engine_config")
    write_config(git_repo, **(marker.kwargs if marker is not None else {}))
    async with Engine.open(git_repo, user_config=user_config) as eng:
        yield eng


async def finished(engine: Engine, sid: str, run_id: str) -> SubagentView:
    with anyio.fail_after(TIMEOUT_S):
        return await engine.wait_finished(sid, run_id)


async def run_turn(engine: Engine, sid: str, prompt: str, **spawn_args: Any) -> SubagentView:
    """Spawn a run and wait for it to finish (bounded)."""
    return await finished(engine, sid, (await engine.spawn(sid, prompt, **spawn_args)).subagent_id)


async def seed_run(
    db_path: Path,
    repo: Path,
    *,
    session_id: str,
    chat_id: str,
    run_id: str,
    owner_pid: int,
    status: str,
    prompt: str = "left behind",
    finished_at: float | None = None,
) -> None:
    """A run as another BooCode process would have left it in the store."""
    async with open_db(db_path) as db:
        await sessions.create(db, session_id)
        if await chats.get(db, session_id, chat_id) is None:
            await chats.insert(
                db,
                chat_id=chat_id,
                session_id=session_id,
                agent="fixture",
                worktree=str(workspace.worktree_path(repo, chat_id)),
            )
        assert await subagents.insert_if_chat_idle(
            db,
            subagent_id=run_id,
            session_id=session_id,
            chat_id=chat_id,
            agent="fixture",
            prompt=prompt,
            model=None,
            mode=None,
            owner_pid=owner_pid,
        )
        if finished_at is None:
            await subagents.set_status(db, run_id, status, started_at=time.time())
        else:
            await subagents.set_status(db, run_id, status, started_at=finished_at, finished_at=finished_at)


class Recorder:
    """An EventSink that keeps every event and signals the first text chunk."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self.first_text = anyio.Event()

    def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)
        if isinstance(event, TextEvent):
            self.first_text.set()

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextEvent))

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]
