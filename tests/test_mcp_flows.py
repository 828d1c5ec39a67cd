"""The MCP tools and resources end to end: in-process (`Client(server)`) and over stdio against the
installed `boocode-mcp` script, in both protocol eras, on the real engine and the fixture agent."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated

from tests.mcp_support import (
    TERMINAL,
    TOOL_NAMES,
    ResourceUpdates,
    call,
    call_error,
    configure,
    inprocess_server,
    read_json,
    run_turn,
    stdio_params,
    wait_for,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["inprocess", "stdio"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Connect = Callable[..., Client]


@asynccontextmanager
async def connector(repo: Path, transport: str, mode: str) -> AsyncIterator[Connect]:
    """Yields `connect(**client_options)`: a new client connection to the workspace's server.

    In-process, every connection shares one engine; over stdio, each is its own `boocode-mcp`
    process on the same workspace (and database).
    """
    if transport == "inprocess":
        async with inprocess_server(repo) as server:
            yield lambda **options: Client(server, mode=mode, **options)
    else:
        yield lambda **options: Client(stdio_params(repo), mode=mode, **options)


def _out(tool: types.Tool) -> set[str]:
    """The names of a tool's structured output fields."""
    assert tool.output_schema is not None, tool.name
    return set(tool.output_schema["properties"])


def _status_porcelain(repo: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


async def test_list_tools_flat_arguments_and_output_schemas(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description
        props = tool.input_schema["properties"]
        assert props or tool.name in ("list_agents", "list_workflows"), tool.name  # no arguments
        for name, prop in props.items():
            # Flat: every argument is a described top-level property, never a wrapper object.
            assert prop.get("description"), f"{tool.name}.{name} has no description"
            assert prop.get("type") != "object" or name == "env", f"{tool.name}.{name} is nested"
        assert tool.output_schema is not None and tool.output_schema.get("properties"), tool.name
    spawn = tools["spawn_subagent"]
    assert spawn.input_schema["required"] == ["prompt"]
    assert {"prompt", "agent", "chat_id", "model", "mode", "wait_seconds", "session_id"} <= set(
        spawn.input_schema["properties"]
    )
    assert spawn.input_schema["properties"]["wait_seconds"]["maximum"] == 30
    assert {
        "subagent_id", "session_id", "chat_id", "agent", "worktree", "status", "final_message", "patch_id"
    } <= _out(spawn)  # fmt: skip
    status_out = _out(tools["subagent_status"])
    assert {
        "subagent_id", "chat_id", "agent", "status", "activity", "final_message", "stop_reason", "error",
        "usage", "patch_id", "pending_permission", "subagents",
    } <= status_out  # fmt: skip
    assert _out(tools["cancel_subagent"]) == {"subagent_id", "status"}
    assert _out(tools["respond_permission"]) == {"subagent_id", "status"}
    assert _out(tools["search_memory"]) == {"hits"}
    assert {"exit_code", "stdout", "stderr", "truncated", "timed_out", "duration_ms"} <= set(
        _out(tools["run_command"])
    )
    assert _out(tools["list_patches"]) == {"patches"}
    assert {"applied", "conflicts", "dry_run"} <= _out(tools["apply_pending"])
    assert "images" in spawn.input_schema["properties"]
    assert {"parent_subagent_id", "retry_of"} <= _out(spawn) and "retry_of" in _out(tools["retry_subagent"])
    assert {"parent_subagent_id", "children", "retry_of"} <= status_out
    assert _out(tools["list_agents"]) >= {"agents"}
    assert _out(tools["usage_stats"]) >= {"rows"}
    # The agent argument names the agents installed here (the fixture; not "ghost", which is not).
    agent_help = spawn.input_schema["properties"]["agent"]["description"]
    assert "installed here: fixture (the default)" in agent_help and "ghost" not in agent_help
    assert set(tools["list_patches"].input_schema["properties"]) >= {
        "session_id", "chat_id", "status", "limit", "include_hunks"
    }  # fmt: skip
    assert set(tools["apply_pending"].input_schema["properties"]) >= {
        "patch_ids", "chat_id", "dry_run", "commit_message"
    }  # fmt: skip
    assert _out(tools["list_workflows"]) == {"workflows", "warnings"}
    assert tools["run_workflow"].input_schema["required"] == ["name"]
    assert set(tools["run_workflow"].input_schema["properties"]) == {"name", "args", "wait_seconds"}
    assert {"workflow_run_id", "name", "status", "result"} <= _out(tools["run_workflow"])
    assert {
        "workflow_run_id", "name", "status", "steps", "logs", "result", "error", "usage"
    } <= _out(tools["workflow_status"])  # fmt: skip
    assert _out(tools["cancel_workflow"]) == {"workflow_run_id", "status"}


async def test_spawn_wait_review_apply_puts_the_file_in_the_workspace(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        spawned = await call(
            client, "spawn_subagent", prompt="write notes/hello.txt hello from the fixture", wait_seconds=20
        )
        assert set(spawned) >= {"subagent_id", "session_id", "chat_id", "agent", "worktree", "status"}
        assert spawned["agent"] == "fixture"
        done = await wait_for(client, spawned["subagent_id"], TERMINAL)
        assert done["status"] == "completed", done
        assert done["final_message"] == "wrote notes/hello.txt"
        assert done["patch_id"]
        assert "notes/hello.txt" in done["activity"]["files_touched"]
        # Nothing reaches the workspace before apply.
        assert not (git_repo / "notes" / "hello.txt").exists()

        patches = (await call(client, "list_patches"))["patches"]
        assert [p["id"] for p in patches] == [done["patch_id"]]
        patch = patches[0]
        assert patch["status"] == "pending" and patch["chat_id"] == spawned["chat_id"]
        assert [f["path"] for f in patch["files"]] == ["notes/hello.txt"]
        assert patch["additions"] == 1 and patch["hunks"] is None
        with_hunks = (await call(client, "list_patches", include_hunks=True))["patches"][0]
        assert with_hunks["hunks"][0]["file"] == "notes/hello.txt"

        dry = await call(client, "apply_pending", dry_run=True)
        assert dry == {**dry, "applied": [done["patch_id"]], "conflicts": [], "dry_run": True}
        assert not (git_repo / "notes" / "hello.txt").exists()

        applied = await call(client, "apply_pending", patch_ids=[done["patch_id"]])
        assert applied["applied"] == [done["patch_id"]] and applied["conflicts"] == []
        assert (git_repo / "notes" / "hello.txt").read_text() == "hello from the fixture"
        after = (await call(client, "list_patches", status="applied"))["patches"]
        assert [p["id"] for p in after] == [done["patch_id"]]


async def test_follow_up_turn_reuses_the_agent_process_and_patches_only_new_work(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        first = await run_turn(client, "pid")
        chat = first["chat_id"]
        agent_pid = int(first["final_message"])
        wrote = await run_turn(client, "write a.txt one", chat_id=chat)
        assert wrote["status"] == "completed"
        await call(client, "apply_pending", chat_id=chat)
        assert (git_repo / "a.txt").read_text() == "one"

        second = await run_turn(client, "write b.txt two", chat_id=chat)
        assert second["chat_id"] == chat and second["status"] == "completed"
        patch = (await call(client, "list_patches", chat_id=chat, status="pending"))["patches"]
        assert len(patch) == 1 and patch[0]["id"] == second["patch_id"]
        # a.txt was applied, so the chat's base moved: the new patch holds only b.txt.
        assert [f["path"] for f in patch[0]["files"]] == ["b.txt"]

        again = await run_turn(client, "pid", chat_id=chat)
        assert int(again["final_message"]) == agent_pid
        sessions = await read_json(client, f"agent-sessions://{chat}")
        assert [s["pid"] for s in sessions["agent_sessions"]] == [agent_pid]


async def test_cancel_then_the_next_turn_works(git_repo: Path, transport: str, mode: str) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        spawned = await call(client, "spawn_subagent", prompt="slow 2000 20")
        running = await wait_for(client, spawned["subagent_id"], {"running"})
        assert running["status"] == "running"
        cancelled = await call(client, "cancel_subagent", subagent_id=spawned["subagent_id"])
        assert cancelled["subagent_id"] == spawned["subagent_id"]
        final = await wait_for(client, spawned["subagent_id"], TERMINAL)
        assert final["status"] == "cancelled"

        nxt = await run_turn(client, "after the cancel", chat_id=spawned["chat_id"])
        assert nxt["status"] == "completed"
        assert nxt["final_message"] == "echo: after the cancel"


def _allow_once(pending: dict[str, Any]) -> str:
    return str(next(o["option_id"] for o in pending["options"] if o["kind"] == "allow_once"))


async def test_permission_ask_is_answered_over_mcp(git_repo: Path, transport: str, mode: str) -> None:
    configure(git_repo, policy="ask")
    async with connector(git_repo, transport, mode) as connect, connect() as client:
        spawned = await call(client, "spawn_subagent", prompt="permission granted.txt", wait_seconds=20)
        # spawn's wait returns as soon as the run needs an answer.
        assert spawned["status"] == "awaiting_permission"
        waiting = await wait_for(client, spawned["subagent_id"], {"awaiting_permission"})
        pending = waiting["pending_permission"]
        assert pending["request_id"] and pending["title"] and pending["deadline"] > 0
        answered = await call(
            client,
            "respond_permission",
            subagent_id=spawned["subagent_id"],
            request_id=pending["request_id"],
            option_id=_allow_once(pending),
        )
        assert answered["subagent_id"] == spawned["subagent_id"]
        final = await wait_for(client, spawned["subagent_id"], TERMINAL)
        assert final["status"] == "completed"
        assert final["final_message"] == "allowed yes please!"
        assert final["pending_permission"] is None
        patch = (await call(client, "list_patches"))["patches"][0]
        assert [f["path"] for f in patch["files"]] == ["granted.txt"]


async def test_unanswered_permission_fails_closed_at_its_deadline(
    git_repo: Path, transport: str, mode: str
) -> None:
    configure(git_repo, policy="ask", permission_timeout_s=1)
    async with connector(git_repo, transport, mode) as connect, connect() as client:
        spawned = await call(client, "spawn_subagent", prompt="permission", wait_seconds=20)
        assert spawned["status"] == "awaiting_permission"
        final = await wait_for(client, spawned["subagent_id"], TERMINAL, within=20)
        assert final["pending_permission"] is None
        assert (final["final_message"] or "").startswith("denied"), final
        assert not (final["patch_id"] and "permitted.txt" in final["activity"]["files_touched"])
        late = await call_error(
            client,
            "respond_permission",
            subagent_id=spawned["subagent_id"],
            request_id="anything",
            option_id="yes please!",
        )
        assert spawned["subagent_id"] in late or "anything" in late


async def test_two_chats_editing_the_same_lines_are_refused_together(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        one = await run_turn(client, "edit src/app.py 1 2")
        two = await run_turn(client, "edit src/app.py 1 3")
        if one["status"] != "completed" or two["status"] != "completed":
            pytest.fail(f"edits did not complete: {one} {two}")
        before = (git_repo / "src" / "app.py").read_bytes()
        status_before = _status_porcelain(git_repo)
        out = await call(client, "apply_pending", patch_ids=[one["patch_id"], two["patch_id"]])
        assert out["applied"] == []
        assert out["conflicts"] and all(c["file"] == "src/app.py" for c in out["conflicts"])
        assert (git_repo / "src" / "app.py").read_bytes() == before
        assert _status_porcelain(git_repo) == status_before


async def test_resources_read_and_updated_in_each_era(git_repo: Path, transport: str, mode: str) -> None:
    configure(git_repo, policy="ask")
    on_message = ResourceUpdates()

    async with (
        connector(git_repo, transport, mode) as connect,
        connect(message_handler=on_message) as client,
    ):
        spawned = await call(client, "spawn_subagent", prompt="permission", wait_seconds=20)
        sub_uri = f"subagents://{spawned['subagent_id']}"
        waiting = await wait_for(client, spawned["subagent_id"], {"awaiting_permission"})
        answer = {
            "subagent_id": spawned["subagent_id"],
            "request_id": waiting["pending_permission"]["request_id"],
            "option_id": _allow_once(waiting["pending_permission"]),
        }
        # The run cannot move until it is answered, so the update below is caused by the answer.
        if mode == "legacy":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.subscribe_resource(sub_uri)
            await call(client, "respond_permission", **answer)
            with anyio.fail_after(15):
                await on_message.changed.wait()
            assert sub_uri in on_message.uris
        else:
            async with client.listen(resource_subscriptions=[sub_uri]) as stream:
                await call(client, "respond_permission", **answer)
                with anyio.fail_after(15):
                    event = await stream.__anext__()
            assert isinstance(event, ResourceUpdated) and event.uri == sub_uri
        final = await wait_for(client, spawned["subagent_id"], TERMINAL)

        sub = await read_json(client, sub_uri)
        assert sub["subagent_id"] == spawned["subagent_id"] and sub["status"] == final["status"]
        traces = await read_json(client, f"traces://{spawned['session_id']}")
        assert traces["session_id"] == spawned["session_id"]
        assert "spawn_subagent" in {t["tool_name"] for t in traces["traces"]}
        listing = await read_json(client, "agent-sessions://list")
        assert spawned["chat_id"] in {s["chat_id"] for s in listing["agent_sessions"]}
        patch = await read_json(client, f"patches://{spawned['session_id']}/{final['patch_id']}")
        assert patch["id"] == final["patch_id"] and patch["hunks"]
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {
            "traces://{session_id}",
            "agent-sessions://{chat_id}",
            "subagents://{subagent_id}",
            "patches://{session_id}/{patch_id}",
            "workflows://{workflow_run_id}",
        }


async def test_handshake_capabilities_are_truthful(git_repo: Path, transport: str) -> None:
    async with connector(configure(git_repo), transport, "legacy") as connect, connect() as client:
        caps = client.server_capabilities
        assert caps.resources is not None and caps.resources.subscribe is True
        # BooCode's resource list never changes at run time, so it does not claim to announce it.
        assert caps.resources.list_changed is False
        assert caps.logging is not None
        await client.set_logging_level("debug")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource("agent-sessions://list")
            await client.unsubscribe_resource("agent-sessions://list")


async def test_error_texts_are_tool_errors_and_the_server_keeps_serving(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect:
        async with connect() as other:
            theirs = await run_turn(other, "write theirs.txt secret")
            their_session = theirs["session_id"]
        async with connect() as client:
            text = await call_error(client, "subagent_status", subagent_id="no-such-run")
            assert "no-such-run" in text
            text = await call_error(client, "spawn_subagent", prompt="hi", agent="nosuchagent")
            assert "nosuchagent" in text and "fixture" in text
            text = await call_error(client, "run_command", command="no-such-program-boocode")
            assert "no-such-program-boocode" in text
            text = await call_error(client, "run_command", command="ls", cwd="../..")
            assert "outside" in text or "workspace" in text
            text = await call_error(client, "spawn_subagent", prompt="hi", wait_seconds=31)
            assert "wait_seconds" in text

            # Another connection's work is the workspace's: found by id, listed, applied by id alone.
            mine = await call(client, "apply_pending")
            assert mine["applied"] == []
            nothing_here = await client.call_tool("apply_pending", {})
            text = nothing_here.content[0].text  # type: ignore[union-attr]
            assert theirs["patch_id"] in text and their_session in text
            status = await call(client, "subagent_status", subagent_id=theirs["subagent_id"])
            assert status["status"] == "completed" and status["session_id"] == their_session
            listed = (await call(client, "subagent_status"))["subagents"]
            assert [r["subagent_id"] for r in listed] == [theirs["subagent_id"]]
            assert [p["session_id"] for p in (await call(client, "list_patches"))["patches"]] == [
                their_session
            ]
            # A session id narrows listings, and an unknown one is refused.
            text = await call_error(client, "subagent_status", session_id="no-such-session")
            assert "no-such-session" in text
            applied = await call(client, "apply_pending", patch_ids=[theirs["patch_id"]])
            assert applied["applied"] == [theirs["patch_id"]]
            assert (git_repo / "theirs.txt").read_text() == "secret"

            ok = await run_turn(client, "still serving")
            assert ok["status"] == "completed" and ok["session_id"] != their_session
            ran = await call(client, "run_command", command="git", args=["status", "--porcelain"])
            assert ran["exit_code"] == 0 and ran["timed_out"] is False


async def test_missing_agent_program_is_a_readable_error(git_repo: Path, transport: str) -> None:
    async with connector(configure(git_repo), transport, "legacy") as connect, connect() as client:
        r = await client.call_tool("spawn_subagent", {"prompt": "hi", "agent": "ghost"})
        if r.is_error:
            text = r.content[0].text  # type: ignore[union-attr]
        else:
            assert r.structured_content is not None
            final = await wait_for(client, r.structured_content["subagent_id"], TERMINAL)
            assert final["status"] == "failed"
            text = final["error"]
        assert "ghost" in text
        assert (await run_turn(client, "fine"))["status"] == "completed"


async def test_search_memory_finds_a_finished_transcript(git_repo: Path, transport: str) -> None:
    async with connector(configure(git_repo), transport, "legacy") as connect, connect() as client:
        await run_turn(client, "remember the pelican migration")
        hits = (await call(client, "search_memory", query="pelican"))["hits"]
        assert hits and hits[0]["source"] == "subagent"
        notes_only = (await call(client, "search_memory", query="pelican", source="note"))["hits"]
        assert notes_only == []


async def test_a_cancelled_tool_call_leaves_the_run_and_the_server_alive(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        # The host gives up on a waiting spawn (its own timeout): only the call ends, not the run.
        with anyio.move_on_after(1):
            await client.call_tool("spawn_subagent", {"prompt": "slow 2000 20", "wait_seconds": 20})
        runs = (await call(client, "subagent_status"))["subagents"]
        assert len(runs) == 1 and runs[0]["status"] in {"queued", "running"}
        run = runs[0]
        await call(client, "cancel_subagent", subagent_id=run["subagent_id"])
        final = await wait_for(client, run["subagent_id"], TERMINAL)
        assert final["status"] == "cancelled"
        traces = (await read_json(client, f"traces://{run['session_id']}"))["traces"]
        spawn_traces = [t for t in traces if t["tool_name"] == "spawn_subagent"]
        assert [t["outcome"] for t in spawn_traces] == ["cancelled"]


async def test_status_lists_runs_most_recent_first_and_an_unknown_session_is_refused(
    git_repo: Path, transport: str, mode: str
) -> None:
    async with connector(configure(git_repo), transport, mode) as connect, connect() as client:
        first = await run_turn(client, "one")
        second = await run_turn(client, "two", chat_id=first["chat_id"])
        listing = (await call(client, "subagent_status"))["subagents"]
        assert [r["subagent_id"] for r in listing] == [second["subagent_id"], first["subagent_id"]]
        assert all(r["prompt"] in ("one", "two") for r in listing)
        text = await call_error(client, "list_patches", session_id="no-such-session")
        assert "no-such-session" in text


async def test_every_tool_text_carries_the_ids_the_next_step_needs(git_repo: Path) -> None:
    """Some hosts show their model only the text of a result: each text must name what the next
    call needs (subagent, chat, session, patch, permission request ids) and, asked for hunks, the
    diff itself."""
    repo = configure(git_repo, policy="ask")
    async with connector(repo, "inprocess", "legacy") as connect, connect() as client:

        async def text(tool: str, **args: Any) -> str:
            r = await client.call_tool(tool, args)
            assert not r.is_error, r.content
            return "\n".join(c.text for c in r.content if hasattr(c, "text"))

        spawned = await call(client, "spawn_subagent", prompt="permission asked.txt")
        run, chat, session = spawned["subagent_id"], spawned["chat_id"], spawned["session_id"]
        waiting = await wait_for(client, run, {"awaiting_permission"})
        said = await text("subagent_status", subagent_id=run)
        pending = waiting["pending_permission"]
        for ident in (
            run,
            chat,
            session,
            pending["request_id"],
            *(o["option_id"] for o in pending["options"]),
        ):
            assert ident in said, (ident, said)
        allow = next(o["option_id"] for o in pending["options"] if o["kind"] == "allow_once")
        answered = await text(
            "respond_permission", subagent_id=run, request_id=pending["request_id"], option_id=allow
        )
        assert run in answered and session in answered
        done = await wait_for(client, run, TERMINAL)
        status_text = await text("subagent_status", subagent_id=run)
        assert done["patch_id"] in status_text and chat in status_text
        assert run in await text("subagent_status")
        listed = await text("list_patches")
        for ident in (done["patch_id"], run, chat, session):
            assert ident in listed
        assert "+++ b/asked.txt" not in listed
        with_hunks = await text("list_patches", include_hunks=True)
        assert "+++ b/asked.txt" in with_hunks and "+permitted" in with_hunks
        assert done["patch_id"] in await text("apply_pending", patch_ids=[done["patch_id"]], dry_run=True)
        follow = await call(client, "spawn_subagent", prompt="slow 200 20", chat_id=chat)
        cancelled = await text("cancel_subagent", subagent_id=follow["subagent_id"])
        assert follow["subagent_id"] in cancelled and chat in cancelled
        hits = await call(client, "search_memory", query="permission")
        assert hits["hits"][0]["id"] in await text("search_memory", query="permission")
