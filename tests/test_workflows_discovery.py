"""Finding workflows: the workspace's over the user's over the built-in catalog, by name; a file that
cannot be used is skipped and reported with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from boocode_mcp.engine import Engine
from tests.workflow_support import write_workflow

pytestmark = pytest.mark.anyio


def _define(name: str, description: str) -> str:
    return f'workflow = {{name: "{name}", description: "{description}", async run(args) {{ return args; }}}};'


async def test_layers_override_by_name_and_unusable_files_are_reported(
    git_repo: Path, tmp_path: Path
) -> None:
    user_config = tmp_path / "user" / "config.toml"
    user_config.parent.mkdir()
    user_config.write_text("[workflows]\ncpu_limit_s = 0.5\n")
    user_workflows = user_config.parent / "workflows"
    user_workflows.mkdir()
    (user_workflows / "mine.js").write_text(_define("best-of-n", "the user's own best-of-n"))
    (user_workflows / "shared.js").write_text(_define("shared", "from the user"))
    write_workflow(git_repo, "shared", _define("shared", "from the workspace"))
    write_workflow(git_repo, "shared2", _define("shared", "a second one in the workspace"))
    write_workflow(git_repo, "broken", "workflow = {name: 'broken',")
    write_workflow(git_repo, "nameless", "workflow = {description: 'd', run() {}};")
    write_workflow(git_repo, "spin", "for (;;) {}")
    write_workflow(
        git_repo, "schema", "workflow = {name: 's', description: 'd', args: {type: 12}, run() {}};"
    )
    write_workflow(git_repo, "modular", "export const workflow = {};")

    async with Engine.open(git_repo, user_config=user_config) as engine:
        listing = await engine.workflows.list()
        again = await engine.workflows.list()

    found = {w.name: w for w in listing.workflows}
    assert sorted(found) == ["best-of-n", "deep-research", "multi-review", "plan-verify", "shared"]
    assert (found["shared"].source, found["shared"].description) == ("workspace", "from the workspace")
    assert (found["best-of-n"].source, found["best-of-n"].path) == ("user", str(user_workflows / "mine.js"))
    assert found["deep-research"].source == "builtin"
    schema = found["deep-research"].args_schema
    assert schema is not None and schema["required"] == ["question"]

    reasons = {Path(w.file).name: w.reason for w in listing.warnings}
    assert sorted(reasons) == ["broken.js", "modular.js", "nameless.js", "schema.js", "shared2.js", "spin.js"]
    assert reasons["broken.js"].startswith("SyntaxError:") and "broken.js:1:" in reasons["broken.js"]
    assert reasons["nameless.js"].startswith("workflow.name must be")
    assert reasons["spin.js"].startswith("its top level used more than 0.5 s of CPU time")
    assert reasons["schema.js"].startswith("workflow.args is not a valid JSON Schema")
    assert reasons["modular.js"].startswith("line 1: `export` statements are not available")
    # Two workspace files define "shared": the first by name is used, the other reported.
    first = git_repo / ".boocode" / "workflows" / "shared.js"
    assert reasons["shared2.js"] == f"{first} already defines workflow 'shared'; rename one"
    assert again == listing
