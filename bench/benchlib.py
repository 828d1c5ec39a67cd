"""What the benchmarks share: a scratch workspace on the fixture agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_AGENT = ROOT / "tests" / "fixtures" / "fixture_agent.py"
BIN = Path(sys.executable).parent
BOOCODE = BIN / "boocode"
BOOCODE_MCP = BIN / "boocode-mcp"


def make_workspace(base: Path, *, extra_config: str = "") -> Path:
    """A git repository at `base/repo` with one commit, configured for the fixture agent and
    trusted in the user config directory of this process's environment (benchmarks point
    XDG_CONFIG_HOME at a scratch directory first, so the user's own is never touched)."""
    from boocode_mcp.trust import trust_workspace

    repo = base / "repo"
    repo.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    (repo / "README.md").write_text("# bench\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    (repo / ".boocode").mkdir()
    (repo / ".boocode" / "config.toml").write_text(
        f'default_agent = "fixture"\n[agents.fixture]\ncommand = {json.dumps(sys.executable)}\n'
        f"args = [{json.dumps(str(FIXTURE_AGENT))}]\n{extra_config}"
    )
    trust_workspace(repo)
    return repo


def stop_daemon(repo: Path) -> None:
    """End the workspace's daemon (and its agents), if one runs."""
    subprocess.run(
        [str(BOOCODE), "daemon", "stop", "--workspace", str(repo)], capture_output=True, timeout=120
    )
