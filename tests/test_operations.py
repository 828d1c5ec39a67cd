"""The operations around runs (README, "Tools" and "Command line"): retry, the inbox, images in
prompts, recorded usage and usage_stats checked against the runs, list_agents against what is
installed.

One engine on one real git repository serves the module; the fixture agent is the real ACP agent
process behind every run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client

from boocode_mcp.agents.registry import find_program
from boocode_mcp.daemon.api import connection_caller, dispatch
from boocode_mcp.engine import Engine
from boocode_mcp.errors import BooCodeError, InvalidRequestError, NotFoundError
from boocode_mcp.mcp_server import build_server
from boocode_mcp.store import subagents as runs_store
from boocode_mcp.views import SubagentView
from tests.conftest import FIXTURE_AGENT, TIMEOUT_S, git, write_config

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"png pixels" * 10
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg pixels" * 10
FIXTURE = f"command = {sys.executable!r}\nargs = [{str(FIXTURE_AGENT)!r}]\n"
CONFIG = (
    "[images]\nmax_bytes = 4096\nmax_count = 3\n"
    f'[agents.fixture-noimg]\n{FIXTURE}env = {{ FIXTURE_NO_IMAGES = "1" }}\n'
    '[agents.ghost]\ncommand = "/nonexistent/ghost-acp-agent"\ninstall = "pip install ghost"\n'
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    repo = tmp_path_factory.mktemp("operations") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    (repo / "shot.png").write_bytes(PNG)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    # "ask": a permission request waits for an answer (the inbox lists it).
    write_config(repo, extra=CONFIG, policy="ask")
    async with Engine.open(repo) as eng:
        yield eng


async def finished(engine: Engine, view: SubagentView) -> SubagentView:
    with anyio.fail_after(TIMEOUT_S):
        return await engine.wait_finished(None, view.subagent_id)


async def turn(engine: Engine, prompt: str, **spawn: Any) -> SubagentView:
    sid = None if spawn.get("chat_id") else await engine.ensure_session()
    return await finished(engine, await engine.spawn(sid, prompt, **spawn))


async def until(engine: Engine, subagent_id: str, status: str) -> SubagentView:
    with anyio.fail_after(TIMEOUT_S):
        view = await engine.status(None, subagent_id)
        while view.status != status:
            view = await engine.wait(None, subagent_id, 5)
        return view


async def test_retry_runs_the_prompt_again_on_its_chat_and_names_what_it_retried(engine: Engine) -> None:
    failed = await turn(engine, "crash 7")
    assert failed.status == "failed"
    retry = await finished(engine, await engine.retry(None, failed.subagent_id))
    assert (retry.retry_of, retry.chat_id, retry.prompt) == (failed.subagent_id, failed.chat_id, "crash 7")
    assert retry.subagent_id != failed.subagent_id and retry.status == "failed"
    with pytest.raises(InvalidRequestError, match=f"already retried as '{retry.subagent_id}'"):
        await engine.retry(None, failed.subagent_id)
    done = await turn(engine, "hello")
    with pytest.raises(InvalidRequestError, match="only a failed, cancelled or interrupted run"):
        await engine.retry(None, done.subagent_id)

    caller = connection_caller(engine, None)
    body = await dispatch(caller, "retry_subagent", {"subagent_id": retry.subagent_id, "wait_seconds": 20})
    assert body["result"]["retry_of"] == retry.subagent_id, body
    assert "retry of " + retry.subagent_id in body["text"]


async def test_the_inbox_lists_failures_not_retried_permission_requests_and_conflicts(engine: Engine) -> None:
    caller = connection_caller(engine, None)
    failed = await turn(engine, "crash 4")
    retried = await turn(engine, "crash 5")
    await finished(engine, await engine.retry(None, retried.subagent_id))
    sid = await engine.ensure_session()
    asking = await engine.spawn(sid, "permission asked.txt")
    await until(engine, asking.subagent_id, "awaiting_permission")
    # A run whose BooCode process died: start-up recovery (or the next spawn) reads it interrupted.
    lost = await engine.spawn(sid, "echo lost")
    await finished(engine, lost)
    await runs_store.set_status(engine.db, lost.subagent_id, "interrupted", error="BooCode was killed")
    wrote = await turn(engine, "write README.md from the agent")
    (engine.workspace / "README.md").write_text("# changed in the workspace meanwhile\n")
    applied = await engine.apply_pending(None, patch_ids=[wrote.patch_id or ""])
    assert applied.conflicts and not applied.applied

    items = (await dispatch(caller, "inbox", {}))["result"]["items"]
    by = {(i["kind"], i["subagent_id"]): i for i in items}
    assert by[("failed", failed.subagent_id)]["reason"].startswith("agent 'fixture'")
    assert ("failed", retried.subagent_id) not in by, "retried: out of the inbox"
    assert by[("interrupted", lost.subagent_id)]["reason"] == "BooCode was killed"
    permission = by[("permission", asking.subagent_id)]
    assert permission["status"] == "awaiting_permission" and "Write asked.txt" in permission["reason"]
    conflict = by[("conflict", wrote.subagent_id)]
    assert conflict["patch_id"] == wrote.patch_id and "README.md" in conflict["reason"]
    assert [i["created_at"] for i in items] == sorted((i["created_at"] for i in items), reverse=True)

    async with Client(build_server(engine)) as client:
        resource = json.loads((await client.read_resource("inbox://")).contents[0].text)  # type: ignore[union-attr]
    assert {(i["kind"], i["subagent_id"]) for i in resource["items"]} == set(by)

    pending = (await engine.status(None, asking.subagent_id)).pending_permission
    assert pending is not None
    await engine.respond_permission(None, asking.subagent_id, pending.request_id, "0")
    await finished(engine, asking)
    later = {(i.kind, i.subagent_id) for i in await engine.inbox()}
    assert ("permission", asking.subagent_id) not in later and ("failed", failed.subagent_id) in later


async def test_images_reach_the_agent_as_image_blocks(engine: Engine) -> None:
    data_uri = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    absolute = str(engine.workspace / "shot.png")
    run = await turn(engine, "images", images=["shot.png", absolute, data_uri])
    png, jpeg = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(JPEG).hexdigest()
    assert run.final_message == f"images: 3 image/png {png} image/png {png} image/jpeg {jpeg}"
    assert run.images == 3
    stored = {p.name for p in (engine.workspace / ".boocode" / "attachments").iterdir()}
    assert stored == {f"{png}.png", f"{jpeg}.jpg"}, "content-addressed: one file per image"


@pytest.mark.parametrize(
    ("image", "error", "what"),
    [
        ("/etc/hostname", InvalidRequestError, "outside the workspace"),
        ("missing.png", NotFoundError, "does not exist"),
        ("README.md", InvalidRequestError, "not a PNG, JPEG, GIF or WebP image"),
        (
            "data:image/png;base64," + base64.b64encode(PNG * 100).decode(),
            InvalidRequestError,
            "at most 4.0 KiB",
        ),
        ("data:text/plain;base64,aGk=", InvalidRequestError, "not a base64 image data URI"),
    ],
)
async def test_a_bad_image_is_refused_saying_what_to_do(
    engine: Engine, image: str, error: type[BooCodeError], what: str
) -> None:
    sid = await engine.ensure_session()
    with pytest.raises(error, match=what):
        await engine.spawn(sid, "images", images=[image])


async def test_too_many_images_are_refused(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match=r"at most 3 \(\[images\] max_count\)"):
        await engine.spawn(await engine.ensure_session(), "images", images=["shot.png"] * 4)


async def test_an_agent_that_takes_no_images_fails_the_run_then_is_refused_at_spawn(engine: Engine) -> None:
    first = await turn(engine, "images", agent="fixture-noimg", images=["shot.png"])
    assert first.status == "failed" and "does not take images" in (first.error or "")
    # Its capabilities are known now: the next spawn is refused before anything runs.
    with pytest.raises(InvalidRequestError, match="'fixture-noimg' does not take images"):
        await engine.spawn(
            await engine.ensure_session(), "images", agent="fixture-noimg", images=["shot.png"]
        )


async def test_usage_is_recorded_as_agents_report_it_and_stats_sum_the_runs(engine: Engine) -> None:
    reported = await turn(engine, "usage")
    assert reported.usage is not None
    assert reported.usage.model_dump() == {
        "input_tokens": 11, "output_tokens": 7, "cost": 0.25, "total_tokens": 18, "thought_tokens": 2,
        "cache_read_tokens": 5, "cache_write_tokens": 3, "context_used": 1234, "context_size": 200000,
    }  # fmt: skip
    meta = await turn(engine, "meta-usage")  # qwen-code's way: _meta.usage on its message chunks
    assert meta.usage is not None
    assert (meta.usage.input_tokens, meta.usage.output_tokens, meta.usage.cache_read_tokens) == (30, 11, 8)
    assert meta.usage.total_tokens == 41 and meta.usage.cost is None

    caller = connection_caller(engine, None)
    rows = {
        r["key"]: r for r in (await dispatch(caller, "usage_stats", {"group_by": "agent"}))["result"]["rows"]
    }
    runs = await engine.list_subagents(None, limit=1000)
    for agent in {r.agent for r in runs}:
        mine = [r for r in runs if r.agent == agent]
        row = rows[agent]
        assert (row["runs"], row["completed"], row["failed"]) == (
            len(mine),
            sum(r.status == "completed" for r in mine),
            sum(r.status == "failed" for r in mine),
        )
        for figure in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            values = [
                getattr(r.usage, figure) for r in mine if r.usage and getattr(r.usage, figure) is not None
            ]
            assert row[figure] == (sum(values) if values else None), (agent, figure)


async def test_list_agents_says_what_is_installed_and_what_takes_images(engine: Engine) -> None:
    await turn(engine, "hello")  # the fixture has started here: its capabilities are known
    caller = connection_caller(engine, None)
    body = await dispatch(caller, "list_agents", {})
    agents = {a["name"]: a for a in body["result"]["agents"]}
    for name, info in agents.items():
        spec = engine.registry.spec(name)
        assert info["installed"] == (find_program(spec.command) is not None), name
        assert info["protocol"] == spec.protocol and info["install"] == spec.install
        if spec.protocol == "cli":
            assert info["images"] is False, name  # a command line carries text only
    assert agents["opencode-cli"]["protocol"] == "cli"
    assert agents["fixture"]["images"] is True and agents["fixture"]["version"]
    assert agents["ghost"]["installed"] is False and agents["ghost"]["images"] is None
    assert "ghost: not installed; install: pip install ghost" in body["text"]
    assert agents["opencode"]["installed"] == (shutil.which("opencode") is not None)
    async with Client(build_server(engine)) as client:
        listed = json.loads((await client.read_resource("agents://list")).contents[0].text)  # type: ignore[union-attr]
    assert {a["name"]: a["installed"] for a in listed["agents"]} == {
        n: a["installed"] for n, a in agents.items()
    }
