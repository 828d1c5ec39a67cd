"""Workflow runs end to end: real scripts in a real workspace, each step a run of the fixture agent
(a real ACP process) in a worktree of its own, the step cache and budgets in the real store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from boocode_mcp.daemon.api import connection_caller, dispatch
from boocode_mcp.engine import Engine
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from tests.conftest import FIXTURE_AGENT, write_config
from tests.workflow_support import ended, run_to_end, until, write_workflow

pytestmark = pytest.mark.anyio

SECOND_FIXTURE = f"[agents.fixture2]\ncommand = {sys.executable!r}\nargs = [{str(FIXTURE_AGENT)!r}]\n"


async def test_fan_out_pipeline_phases_and_logs(engine: Engine, git_repo: Path) -> None:
    write_workflow(
        git_repo,
        "fan",
        """
        workflow = {
          name: "fan",
          description: "three steps at once, then two in turn",
          args: {type: "object", properties: {topic: {type: "string"}}, required: ["topic"]},
          async run({topic}) {
            log("fanning out on " + topic);
            const fan = await phase("fan", () => parallel([
              agent("one", {prompt: "first " + topic}),
              agent("two", {prompt: "second " + topic}),
              async () => { throw new Error("not a step") },
              agent("three", {prompt: "write three.txt from the third step"}),
            ]));
            log({fanned: fan.length});
            const chain = await phase("chain", () => pipeline([
              agent("draft", {prompt: "draft"}),
              async (text) => text.toUpperCase(),
              agent("polish", {prompt: "polish"}),
            ]));
            return {fan, chain: chain.text, cached: chain.cached};
          },
        };
        """,
    )
    view = await run_to_end(engine, "fan", {"topic": "maps"})
    assert view.status == "completed", view.error
    fan = view.result["fan"]
    assert [r["ok"] for r in fan] == [True, True, False, True]
    # Results in the order given, whichever step ended first.
    assert fan[0]["value"]["text"] == "echo: first maps"
    assert fan[1]["value"]["text"] == "echo: second maps"
    assert fan[2]["error"] == "Error: not a step"
    assert fan[3]["value"]["files"] == ["three.txt"] and fan[3]["value"]["patch_id"]
    assert "+from the third step" in fan[3]["value"]["diff"]
    # Each step of the pipeline got the previous one's output after a blank line.
    assert view.result["chain"] == "echo: polish\n\nECHO: DRAFT"
    assert view.result["cached"] is False

    steps = {s.step_id: s for s in view.steps}
    assert [s.step_id for s in view.steps[:3]] == ["one", "two", "three"]
    assert {steps[i].phase for i in ("one", "two", "three")} == {"fan"}
    assert {steps[i].phase for i in ("draft", "polish")} == {"chain"}
    assert all(s.status == "completed" and not s.cached for s in view.steps)
    assert steps["three"].patch_id == fan[3]["value"]["patch_id"]
    assert [m.message for m in view.logs] == ["fanning out on maps", '{"fanned":4}']

    # Every step is an ordinary subagent run: a chat and worktree of its own, in the run's session.
    runs = [await engine.status(None, s.subagent_id or "") for s in view.steps]
    assert len({r.chat_id for r in runs}) == 5
    assert {r.session_id for r in runs} == {view.session_id}
    assert all(r.worktree and Path(r.worktree).parent == git_repo / ".boocode" / "worktrees" for r in runs)
    patch = await engine.get_patch(None, steps["three"].patch_id or "")
    assert patch.status == "pending" and [f.path for f in patch.files] == ["three.txt"]


async def test_a_rerun_takes_every_step_from_the_cache_and_a_changed_input_reruns_what_it_feeds(
    engine: Engine, git_repo: Path
) -> None:
    write_workflow(
        git_repo,
        "diamond",
        """
        workflow = {
          name: "diamond",
          description: "a feeds c; b stands alone",
          async run({x}) {
            const [a, b] = await parallel([agent("a", {prompt: "alpha " + x}), agent("b", {prompt: "beta"})]);
            const c = await agent("c", {prompt: "gamma"}).run(a.value.text);
            const cached = [a.value.cached, b.value.cached, c.cached];
            return {a: a.value.text, b: b.value.text, c: c.text, cached};
          },
        };
        """,
    )
    first = await run_to_end(engine, "diamond", {"x": "1"})
    assert first.status == "completed", first.error
    assert first.result["cached"] == [False, False, False]
    runs_before = len(await engine.list_subagents(None))

    again = await run_to_end(engine, "diamond", {"x": "1"})
    assert again.status == "completed", again.error
    assert again.result == {**first.result, "cached": [True, True, True]}
    assert [s.cached for s in again.steps] == [True, True, True]
    # The stored results name the original runs; nothing was dispatched.
    assert [s.subagent_id for s in again.steps] == [s.subagent_id for s in first.steps]
    assert len(await engine.list_subagents(None)) == runs_before
    assert again.usage is None

    changed = await run_to_end(engine, "diamond", {"x": "2"})
    assert changed.status == "completed", changed.error
    assert changed.result["a"] == "echo: alpha 2"
    assert changed.result["c"] == "echo: gamma\n\necho: alpha 2"
    # a changed, and c is fed by a: both ran again; b came from the cache.
    assert changed.result["cached"] == [False, True, False]
    assert len(await engine.list_subagents(None)) == runs_before + 2

    # list_workflow_runs (the web page's list): newest first, steps counted, cached ones apart.
    listed = await ask(engine, "list_workflow_runs", limit=2)
    assert listed["total"] == 3
    assert [r["workflow_run_id"] for r in listed["runs"]] == [changed.workflow_run_id, again.workflow_run_id]
    assert [(r["steps_done"], r["steps_total"], r["steps_cached"]) for r in listed["runs"]] == [
        (3, 3, 1),
        (3, 3, 3),
    ]
    assert listed["runs"][1]["usage"] is None


@pytest.mark.engine_config(extra="[workflows]\ndefault_budget_tokens = 30\n")
async def test_exhausting_a_budget_fails_the_run_naming_the_budget(engine: Engine, git_repo: Path) -> None:
    # The fixture agent's "usage" command reports 11 input and 7 output tokens.
    write_workflow(
        git_repo,
        "budgets",
        """
        workflow = {
          name: "budgets",
          description: "spends tokens and steps",
          async run({kind}) {
            if (kind === "steps") budget({steps: 1});
            if (kind === "group") {
              const both = [agent("g1", {prompt: "usage g1"}), agent("g2", {prompt: "usage g2"})];
              return parallel(both, {budget: {steps: 1}});
            }
            if (kind === "step") return agent("big", {prompt: "usage big", budget: 10}).run();
            for (let i = 0; i < 3; i++) await agent("spend-" + i, {prompt: "usage " + kind + i}).run();
            return "spent";
          },
        };
        """,
    )
    tokens = await run_to_end(engine, "budgets", {"kind": "tokens"})
    assert tokens.status == "failed"
    assert tokens.error is not None and "token budget" in tokens.error
    assert "36 tokens used, over its 30" in tokens.error and "default_budget_tokens = 30" in tokens.error
    assert [s.step_id for s in tokens.steps] == ["spend-0", "spend-1"]
    assert tokens.usage is not None and tokens.usage.input_tokens == 22

    steps = await run_to_end(engine, "budgets", {"kind": "steps"})
    assert steps.status == "failed"
    assert steps.error is not None and "1 of 1 steps dispatched" in steps.error and "budget(" in steps.error
    assert [s.status for s in steps.steps] == ["completed", "failed"]

    group = await run_to_end(engine, "budgets", {"kind": "group"})
    assert group.status == "failed"
    assert group.error is not None and "parallel group" in group.error

    step = await run_to_end(engine, "budgets", {"kind": "step"})
    assert step.status == "failed"
    assert step.error is not None and "step 'big'" in step.error and "over its 10" in step.error


async def ask(engine: Engine, method: str, **params: Any) -> dict[str, Any]:
    """An operation by name, as the daemon's API (and the web page) calls it."""
    body = await dispatch(connection_caller(engine, None), method, params)
    assert "result" in body, body
    result: dict[str, Any] = body["result"]
    return result


async def test_a_live_run_lists_what_its_steps_spent_so_far_and_a_bad_limit_is_refused(
    engine: Engine, git_repo: Path
) -> None:
    write_workflow(
        git_repo,
        "pair",
        """
        workflow = {
          name: "pair",
          description: "a step that reports usage, then a slow one",
          async run() {
            await agent("counted", {prompt: "usage"}).run();
            return (await agent("slow", {prompt: "slow 400 50"}).run()).text;
          },
        };
        """,
    )
    started = await engine.workflows.start("pair", {})
    run_id = started.workflow_run_id
    await until(engine, run_id, lambda v: len(v.steps) == 2 and v.steps[1].status == "running")
    (live,) = (await ask(engine, "list_workflow_runs"))["runs"]
    assert (live["status"], live["steps_done"], live["steps_total"], live["steps_cached"]) == (
        "running",
        1,
        2,
        0,
    )
    # The fixture agent's `usage` turn: 11 tokens in, 7 out; the run itself records them only at its end.
    assert (live["usage"]["input_tokens"], live["usage"]["output_tokens"]) == (11, 7)

    await engine.workflows.cancel(run_id)
    (ended_run,) = (await ask(engine, "list_workflow_runs"))["runs"]
    assert (ended_run["status"], ended_run["steps_done"]) == ("cancelled", 1)
    assert (ended_run["usage"]["input_tokens"], ended_run["usage"]["output_tokens"]) == (11, 7)

    body = await dispatch(connection_caller(engine, None), "list_workflow_runs", {"limit": 0})
    assert "limit must be between 1 and 200" in body["error"]["message"]


@pytest.mark.engine_config(extra="[workflows]\nmax_concurrent = 1\n")
async def test_cancel_mid_step_cancels_the_step_and_frees_the_place_of_a_queued_run(
    engine: Engine, git_repo: Path
) -> None:
    write_workflow(
        git_repo,
        "slow",
        """
        workflow = {
          name: "slow",
          description: "one slow step",
          async run({n}) { return (await agent("slow", {prompt: "slow " + n + " 50"}).run()).text; },
        };
        """,
    )
    first = await engine.workflows.start("slow", {"n": 400})
    running = await until(engine, first.workflow_run_id, lambda v: v.steps and v.steps[0].status == "running")
    # [workflows] max_concurrent = 1: the second run waits for the first.
    second = await engine.workflows.start("slow", {"n": 2})
    assert (await engine.workflows.status(second.workflow_run_id)).status == "queued"

    cancelled = await engine.workflows.cancel(first.workflow_run_id)
    assert cancelled.status == "cancelled"
    assert cancelled.error == "cancelled by cancel_workflow"
    step_run = await engine.status(None, running.steps[0].subagent_id or "")
    assert step_run.status == "cancelled"
    assert cancelled.steps[0].status == "cancelled"

    done = await ended(engine, second.workflow_run_id)
    assert done.status == "completed", done.error
    assert done.result == "chunk 0 chunk 1 "


@pytest.mark.engine_config(extra="[workflows]\ncpu_limit_s = 1\nmemory_limit_mb = 16\n")
async def test_scripts_over_their_limits_fail_and_the_engine_goes_on(engine: Engine, git_repo: Path) -> None:
    write_workflow(git_repo, "loop", 'workflow = {name: "loop", description: "d", run() { for (;;) {} }};')
    write_workflow(
        git_repo,
        "bomb",
        'workflow = {name: "bomb", description: "d",\n'
        "  run() { const a = []; for (;;) a.push(new Array(1e5).fill(a.length)); }};",
    )
    write_workflow(
        git_repo,
        "fine",
        'workflow = {name: "fine", description: "d",\n'
        '  async run() { return (await agent("ok", {prompt: "still here"}).run()).text; }};',
    )
    loop = await run_to_end(engine, "loop")
    assert loop.status == "failed"
    assert loop.error == "the workflow script used more than 1 s of CPU time ([workflows] cpu_limit_s = 1)"
    bomb = await run_to_end(engine, "bomb")
    assert bomb.status == "failed"
    assert (
        bomb.error == "the workflow script used more than 16 MB of memory ([workflows] memory_limit_mb = 16)"
    )
    fine = await run_to_end(engine, "fine")
    assert fine.status == "completed" and fine.result == "echo: still here"


async def test_failing_steps_reject_and_bad_args_are_refused(engine: Engine, git_repo: Path) -> None:
    write_workflow(
        git_repo,
        "failing",
        """
        function describe(r) { return r.ok ? r.value.text : r.error; }
        workflow = {
          name: "failing",
          description: "steps that cannot complete",
          args: {
            type: "object", properties: {n: {type: "integer", minimum: 1}}, required: ["n"],
            additionalProperties: false,
          },
          async run() {
            const rs = await parallel([
              agent("ghost", {prompt: "hi", agent: "nobody"}),
              agent("crash", {prompt: "crash 3"}),
            ]);
            return rs.map(describe);
          },
        };
        """,
    )
    view = await run_to_end(engine, "failing", {"n": 1})
    assert view.status == "completed", view.error
    ghost, crash = view.result
    assert ghost.startswith("Error: step 'ghost' could not start:") and "nobody" in ghost
    assert crash.startswith("Error: step 'crash' (subagent ") and " failed: " in crash
    assert [s.status for s in view.steps] == ["failed", "failed"]

    with pytest.raises(InvalidRequestError, match=r"args\.n: 0 is less than the minimum of 1"):
        await engine.workflows.start("failing", {"n": 0})
    with pytest.raises(InvalidRequestError, match=r"'extra' was unexpected"):
        await engine.workflows.start("failing", {"n": 1, "extra": True})
    with pytest.raises(NotFoundError, match="no workflow named 'nope'; known: best-of-n"):
        await engine.workflows.start("nope")


@pytest.mark.engine_config(extra=SECOND_FIXTURE)
async def test_best_of_n_runs_each_agent_in_its_own_worktree_and_recommends_a_patch(engine: Engine) -> None:
    view = await run_to_end(
        engine, "best-of-n", {"task": "write answer.txt forty-two", "agents": ["fixture", "fixture2"]}
    )
    assert view.status == "completed", view.error
    result = view.result
    assert [p["agent"] for p in result["patches"]] == ["fixture", "fixture2"]
    patch_ids = [p["patch_id"] for p in result["patches"]]
    assert all(patch_ids) and len(set(patch_ids)) == 2
    assert result["recommended_patch_id"] in patch_ids
    # The fixture agent echoes the judge's question instead of answering it.
    assert result["reason"].startswith("the judge named no candidate")
    attempts = [s for s in view.steps if s.phase == "attempt"]
    assert [s.agent for s in attempts] == ["fixture", "fixture2"]
    chats = {(await engine.status(None, s.subagent_id or "")).chat_id for s in attempts}
    assert len(chats) == 2
    [judge] = [s for s in view.steps if s.phase == "judge"]
    assert judge.step_id == "judge" and judge.agent == "fixture"
    judged = await engine.status(None, judge.subagent_id or "")
    # The judge saw both patches.
    assert all(p in (judged.prompt or "") for p in patch_ids)


async def test_a_workflow_and_its_cached_rerun_on_a_postgres_store(
    git_repo: Path, user_config: Path, pg_url: str
) -> None:
    write_config(git_repo)
    write_workflow(
        git_repo,
        "two",
        """
        workflow = {name: "two", description: "d", async run({x}) {
          const a = await agent("a", {prompt: "write a.txt " + x}).run();
          return [a.patch_id, (await agent("b", {prompt: "echo"}).run(a.text)).text];
        }};
        """,
    )
    async with Engine.open(git_repo, user_config=user_config, db_url=pg_url) as engine:
        first = await run_to_end(engine, "two", {"x": "pg"})
        again = await run_to_end(engine, "two", {"x": "pg"})
    assert first.status == "completed", first.error
    assert first.result[1] == "echo: echo\n\nwrote a.txt"
    assert [s.cached for s in first.steps] == [False, False]
    assert again.result == first.result and [s.cached for s in again.steps] == [True, True]
    assert [s.subagent_id for s in again.steps] == [s.subagent_id for s in first.steps]
