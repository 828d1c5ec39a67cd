"""best-of-n with real agents: opencode and qwen-code (against the scripted model server) each take
the task in a worktree of their own through the real `boocode-mcp` server; opencode, the first,
judges their patches; the recommended patch applies."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.model_server import ModelServer
from tests.real_agents import (  # noqa: F401 - pytest fixtures
    _installed_or_skip,
    boocode_mcp,
    model_server_fixture,
    setup_for,
    write_workspace_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.real_agents]

# Three turns of real agents (two at once, then the judge), each with a cold start.
TEST_S = 300


async def test_best_of_n_with_opencode_and_qwen_recommends_a_patch_that_applies(
    model_server: ModelServer, git_repo: Path
) -> None:
    scratch = git_repo.parent / "scratch"
    setups = [
        setup_for(name, _installed_or_skip(name), model_server.base_url, scratch / name)
        for name in ("opencode", "qwen")
    ]
    write_workspace_config(git_repo, setups)
    target = git_repo / "notes" / "best.txt"
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(git_repo, scratch, scratch / "logs" / "boocode.log") as bc:
            started = await bc.call(
                "run_workflow",
                name="best-of-n",
                args={"task": "write file notes/best.txt with best-content", "agents": ["opencode", "qwen"]},
            )
            view = started
            while view["status"] in ("queued", "running"):
                view = await bc.call(
                    "workflow_status", workflow_run_id=started["workflow_run_id"], wait_seconds=10
                )
            assert view["status"] == "completed", view
            result = view["result"]
            by_agent = {p["agent"]: p["patch_id"] for p in result["patches"]}
            steps = {s["step_id"]: s for s in view["steps"]}
            runs = {
                step_id: await bc.call("subagent_status", subagent_id=s["subagent_id"])
                for step_id, s in steps.items()
            }
            applied = await bc.call("apply_pending", patch_ids=[result["recommended_patch_id"]])

    assert set(steps) == {"attempt-1-opencode", "attempt-2-qwen", "judge"}
    assert [runs[s]["agent"] for s in ("attempt-1-opencode", "attempt-2-qwen", "judge")] == [
        "opencode", "qwen", "opencode",
    ]  # fmt: skip
    # Each attempt in a worktree of its own, each with a patch of its own.
    assert runs["attempt-1-opencode"]["worktree"] != runs["attempt-2-qwen"]["worktree"]
    assert by_agent["opencode"] and by_agent["qwen"] and by_agent["opencode"] != by_agent["qwen"]
    assert by_agent["qwen"] == steps["attempt-2-qwen"]["patch_id"]
    # The judge (the stub model recommends the last candidate listed) picked qwen's, and said why.
    assert result["recommended_patch_id"] == by_agent["qwen"]
    assert result["reason"] == "the stub judge takes the last candidate"
    assert applied["applied"] == [by_agent["qwen"]]
    assert target.read_text().strip() == "best-content"
