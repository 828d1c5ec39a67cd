"""Command line: `boocode` and `boocode-mcp`.

`boocode run` and `boocode apply` drive the workspace's running server over MCP when
`.boocode/server.json` names a live one (`run` starts one in the background when none runs), so
agents stay warm between commands; `--no-server` runs the engine in this process instead.
Listings read every session of the workspace's database through an in-process Engine: an MCP
connection only sees its own session, and these commands act on all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import BooCodeError

if TYPE_CHECKING:
    from boocode_mcp.cli_render import Progress
    from boocode_mcp.engine import Engine
    from boocode_mcp.views import SubagentView

SERVER_FILE = "server.json"
TOKEN_ENV = "BOOCODE_TOKEN"
DEFAULT_IDLE_EXIT_S = 600.0
SERVER_START_TIMEOUT_S = 30.0
STATUS_POLL_S = 10.0  # wait_seconds per subagent_status poll; it returns early on any change


class CliError(Exception):
    """A failure the command line reports as one line on stderr with a non-zero exit."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- arguments ------------------------------------------------------------------------------


def _parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _common(p: argparse.ArgumentParser, *, json_flag: bool = True, server: bool = True) -> None:
    p.add_argument(
        "--workspace",
        metavar="DIR",
        type=Path,
        default=None,
        help="the git repository BooCode works on (default: the current directory)",
    )
    p.add_argument(
        "--session",
        metavar="ID",
        default=None,
        help="act on this session only (default: every session in the workspace's database)",
    )
    if json_flag:
        p.add_argument(
            "--json", action="store_true", help="print the result as JSON, with the MCP tool's fields"
        )
    if server:
        p.add_argument(
            "--no-server",
            action="store_true",
            help="run the engine in this process instead of driving the workspace's BooCode server",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boocode",
        description="BooCode: hand coding work to ACP agents as background subagents, "
        "review their patches, apply the good ones.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the MCP server (stdio, or streamable HTTP with --http)")
    p.add_argument(
        "--workspace", metavar="DIR", type=Path, default=None, help="the git repository (default: .)"
    )
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=_parse_hostport,
        default=None,
        help="serve streamable HTTP at /mcp on HOST:PORT (port 0 picks a free one) instead of stdio",
    )
    p.add_argument(
        "--token",
        metavar="T",
        default=None,
        help=f"bearer token every HTTP request must carry (required off loopback; default: ${TOKEN_ENV})",
    )
    p.add_argument(
        "--idle-exit",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --http: exit after SECONDS without MCP calls or live runs (how `boocode run`'s "
        "background server goes away)",
    )

    p = sub.add_parser("acp", help="BooCode as an ACP agent on stdio, for editors (Zed, JetBrains, acpx)")
    p.add_argument(
        "--workspace",
        metavar="DIR",
        type=Path,
        default=None,
        help="the git repository (default: the cwd the editor gives in session/new)",
    )
    p.add_argument(
        "--agent", metavar="A", default=None, help="backend agent for new chats (default: configured)"
    )

    p = sub.add_parser(
        "run",
        help="run a subagent in the foreground: progress on stderr, final message on stdout",
        description="Run a subagent in the foreground: progress on stderr, the final message on "
        'stdout. When the agent asks permission ([permissions] policy = "ask"), the request is '
        "asked on the terminal when stdin and stderr are both one (answer with the option's number; "
        "Enter leaves it to its deadline); otherwise, or with --json or --quiet, one line on stderr "
        "gives the `boocode respond ...` command that answers it from another shell.",
    )
    _common(p)
    p.add_argument("prompt", metavar="PROMPT", help="the task for the agent")
    p.add_argument(
        "--agent", metavar="A", default=None, help="the agent to run (default: configured default)"
    )
    p.add_argument("--chat", metavar="ID", default=None, help="continue this chat (its agent stays warm)")
    p.add_argument("--model", metavar="M", default=None, help="model for the agent, where it supports one")
    p.add_argument("--mode", metavar="M", default=None, help="agent mode, where it supports one")
    p.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (permission requests still show)"
    )

    p = sub.add_parser(
        "respond",
        help="answer a run's pending permission request (the command `boocode run` prints)",
        description="Answer a run's pending permission request (see pending_permission in "
        "`boocode show ID --json`); the run resumes. Answers through the workspace's BooCode "
        "server when one runs; a run started with --no-server is answered from its own terminal.",
    )
    _common(p)
    p.add_argument("subagent_id", metavar="SUBAGENT_ID", help="the run that asks (a unique prefix is enough)")
    p.add_argument(
        "request_id", metavar="REQUEST_ID", help="pending_permission.request_id (a prefix is enough)"
    )
    p.add_argument("option_id", metavar="OPTION_ID", help="one of pending_permission.options[].option_id")

    p = sub.add_parser("ls", help="list subagent runs, most recent first")
    _common(p)
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    p = sub.add_parser("show", help="show one subagent run (status, final message, patch) or one patch")
    _common(p)
    p.add_argument("id", metavar="ID", help="a subagent or patch id (a unique prefix is enough)")
    p.add_argument("--no-diff", action="store_true", help="do not print the patch's diff")

    p = sub.add_parser("patches", help="list patches, newest first")
    _common(p)
    p.add_argument("--diff", action="store_true", help="print each patch's diff")
    p.add_argument("--chat", metavar="ID", default=None, help="only this chat's patches")
    p.add_argument(
        "--status",
        choices=["pending", "applied", "superseded", "discarded", "conflicted"],
        default=None,
        help="only patches with this status",
    )
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    p = sub.add_parser("apply", help="apply patches to the workspace: all of them or none")
    _common(p)
    p.add_argument(
        "ids", metavar="ID", nargs="+", help="patch ids (unique prefixes are enough), applied in order"
    )
    p.add_argument("--dry-run", action="store_true", help="only check that they apply")
    p.add_argument(
        "--message", metavar="MSG", default=None, help="commit the applied files with this message"
    )

    p = sub.add_parser("agents", help="which agents are installed, their versions, how to install the rest")
    _common(p, server=False)

    p = sub.add_parser(
        "trust",
        help="trust the workspace's own .boocode/config.toml (until then its agents are ignored)",
        description="Record the SHA-256 of <workspace>/.boocode/config.toml as trusted, in the user "
        "config directory. A repository's config can name any command as an agent, so its agent "
        "entries are ignored until you have read the file and trusted it; any change to the file "
        "needs trusting again. A BooCode server already running uses it from its next agent on.",
    )
    p.add_argument(
        "--workspace", metavar="DIR", type=Path, default=None, help="the git repository (default: .)"
    )
    p.add_argument("--json", action="store_true", help="print the workspace config's trust state as JSON")

    p = sub.add_parser("traces", help="recorded MCP tool calls and agent tool calls")
    _common(p)

    p = sub.add_parser("memory", help="search notes and finished subagent transcripts")
    msub = p.add_subparsers(dest="memory_command", required=True, metavar="SUBCOMMAND")
    q = msub.add_parser("search", help="full-text search (bm25)")
    _common(q)
    q.add_argument("query", metavar="Q", help="what to search for")
    q.add_argument("--limit", type=int, default=10, help="at most this many hits (default 10)")
    q.add_argument("--source", choices=["note", "subagent"], default=None, help="only this kind of entry")
    return parser


def _workspace(arg: Path | None) -> Path:
    return (arg if arg is not None else Path.cwd()).resolve()


# -- entry points ---------------------------------------------------------------------------


def mcp_main(argv: Sequence[str] | None = None) -> None:
    """`boocode-mcp`: the MCP server on stdio (what MCP hosts launch); same as `boocode serve`."""
    p = argparse.ArgumentParser(prog="boocode-mcp", description="BooCode's MCP server on stdio.")
    p.add_argument(
        "--workspace", metavar="DIR", type=Path, default=None, help="the git repository (default: .)"
    )
    args = p.parse_args(argv)
    from boocode_mcp.mcp_server import main_stdio

    main_stdio(_workspace(args.workspace))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            _serve(args)
        elif args.command == "trust":
            sys.exit(cmd_trust(args))
        elif args.command == "acp":
            from boocode_mcp.acp_server import main_acp

            main_acp(args.workspace.resolve() if args.workspace else None, args.agent)
        else:
            import anyio

            code = anyio.run(_dispatch, args, backend="asyncio")
            sys.exit(code)
    except BaseException as e:
        failure = _user_failure(e)
        if failure is None:
            raise
        if isinstance(failure, KeyboardInterrupt):
            sys.exit(130)
        _fail(str(failure), getattr(failure, "code", 1))


def _user_failure(exc: BaseException) -> BaseException | None:
    """The error meant for the user inside `exc`, which task groups wrap in ExceptionGroups."""
    if isinstance(exc, CliError | BooCodeError | KeyboardInterrupt):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _user_failure(inner)
            if found is not None:
                return found
    return None


def _fail(message: str, code: int = 1) -> NoReturn:
    # One line: scripts read the reason from stderr.
    sys.stderr.write("boocode: " + " ".join(message.split()) + "\n")
    sys.exit(code)


# -- serve ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> None:
    workspace = _workspace(args.workspace)
    if args.http is None:
        if args.idle_exit is not None:
            raise CliError("--idle-exit needs --http: a stdio server lives as long as its host")
        from boocode_mcp.mcp_server import main_stdio

        main_stdio(workspace)
        return
    from boocode_mcp.mcp_server import main_http

    host, port = args.http
    if args.idle_exit is not None:
        IdleWatchdog(workspace, args.idle_exit).start()
    main_http(workspace, host, port, args.token or os.environ.get(TOKEN_ENV) or None)


class IdleWatchdog(threading.Thread):
    """Ends a background server (SIGTERM to itself) once it has been idle for `idle_s`.

    Idle means no MCP tool call (every one is traced) and no run queued or live. It reads the
    workspace's database, which the server keeps current, so it needs no hook into the server.
    """

    def __init__(self, workspace: Path, idle_s: float) -> None:
        super().__init__(name="boocode-idle-exit", daemon=True)
        self.db_path = workspace / BOOCODE_DIR / "boocode.db"
        self.idle_s = idle_s
        self.started_at = time.time()

    def last_activity(self) -> float:
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
            ) as db:
                live = db.execute(
                    "SELECT COUNT(*) FROM subagents"
                    " WHERE status IN ('queued', 'running', 'awaiting_permission') AND owner_pid = ?",
                    (os.getpid(),),
                ).fetchone()[0]
                if live:
                    return time.time()
                row = db.execute(
                    "SELECT MAX(COALESCE(finished_at, started_at)) FROM traces WHERE source = 'mcp'"
                ).fetchone()
                finished = db.execute(
                    "SELECT MAX(finished_at) FROM subagents WHERE owner_pid = ?", (os.getpid(),)
                ).fetchone()
        except sqlite3.Error:
            return time.time()  # database not there yet or busy: not a reason to exit
        return max(self.started_at, row[0] or 0.0, finished[0] or 0.0)

    def serving(self) -> bool:
        """Whether this process's server is up: it writes server.json once it listens."""
        try:
            return int(json.loads((self.db_path.parent / SERVER_FILE).read_text())["pid"]) == os.getpid()
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def run(self) -> None:
        step = max(0.2, min(self.idle_s / 4, 5.0))
        # Idle time counts from when the server is up; opening the engine can take a while.
        while not self.serving():
            time.sleep(step)
        self.started_at = time.time()
        while time.time() - self.last_activity() < self.idle_s:
            time.sleep(step)
        # Repeated while the process lives: a SIGTERM that lands before the HTTP server has
        # installed its own handler is ignored by the placeholder one main_http sets.
        while True:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(max(step, 2.0))


# -- the background server ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfo:
    url: str
    token: str | None
    pid: int


def read_server(workspace: Path) -> ServerInfo | None:
    """The workspace's live HTTP server from `.boocode/server.json`, or None."""
    from boocode_mcp.procs import pid_alive

    path = workspace / BOOCODE_DIR / SERVER_FILE
    try:
        data = json.loads(path.read_text())
        info = ServerInfo(url=str(data["url"]), token=data.get("token"), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def start_server(workspace: Path, idle_exit_s: float = DEFAULT_IDLE_EXIT_S) -> ServerInfo:
    """Start `boocode serve --http 127.0.0.1:0` detached in its own session and wait for its
    server.json; a lock file keeps two concurrent `boocode run`s from starting two servers."""
    boo = workspace / BOOCODE_DIR
    (boo / "logs").mkdir(parents=True, exist_ok=True)
    with (boo / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = read_server(workspace)
        if existing is not None:
            return existing
        log_path = boo / "logs" / "server.log"
        argv = [
            sys.executable,
            "-m",
            "boocode_mcp.cli",
            "serve",
            "--workspace",
            str(workspace),
            "--http",
            "127.0.0.1:0",
            "--idle-exit",
            str(idle_exit_s),
        ]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=workspace,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                # Through the environment, not argv: other users can read a process's arguments.
                env={**os.environ, TOKEN_ENV: secrets.token_urlsafe(24)},
                close_fds=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = read_server(workspace)
            if info is not None and info.pid == proc.pid:
                return info
            if proc.poll() is not None:
                raise CliError(
                    f"the background BooCode server exited with code {proc.returncode}; see {log_path} "
                    "(or use --no-server)"
                )
            time.sleep(0.05)
        proc.terminate()
        raise CliError(
            f"the background BooCode server did not start within {SERVER_START_TIMEOUT_S:.0f}s; "
            f"see {log_path}"
        )


@contextlib.asynccontextmanager
async def mcp_client(info: ServerInfo) -> AsyncIterator[Any]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {info.token}"} if info.token else None
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        try:
            client = await stack.enter_async_context(
                Client(streamable_http_client(info.url, http_client=http), mode="legacy")
            )
        except Exception as e:
            raise CliError(
                f"the BooCode server at {info.url} (pid {info.pid}) does not answer ({_leaf(e)}); "
                "stop it, or use --no-server"
            ) from e
        yield client


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside exception groups (what actually went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def call_tool(client: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tool's structured result; a tool error becomes a CliError with the server's reason."""
    args = {k: v for k, v in arguments.items() if v is not None}
    result = await client.call_tool(name, args)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content).strip()
        raise CliError(text or f"{name} failed")
    data: dict[str, Any] = result.structured_content or {}
    return data


# -- commands -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_engine(workspace: Path) -> AsyncIterator[Engine]:
    from boocode_mcp.engine import Engine

    async with Engine.open(workspace) as engine:
        yield engine


def status_json(view: SubagentView) -> dict[str, Any]:
    """subagent_status's object for one subagent, as the MCP tool returns it (its list field null)."""
    return {**view.model_dump(mode="json"), "subagents": None}


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


async def _dispatch(args: argparse.Namespace) -> int:
    workspace = _workspace(args.workspace)
    if args.command == "agents":
        return await cmd_agents(workspace, args)
    from boocode_mcp.workspace import ensure_repo

    # The repository's top level, wherever inside it the command runs: server.json lives there.
    workspace = await ensure_repo(workspace)
    if args.command == "run":
        return await cmd_run(workspace, args)
    if args.command in ("apply", "respond") and not args.no_server:
        info = read_server(workspace)
        if info is not None:
            via_server = cmd_apply_server if args.command == "apply" else cmd_respond_server
            return await via_server(workspace, info, args)
    handler: dict[str, Callable[[Engine, argparse.Namespace], Awaitable[int]]] = {
        "ls": cmd_ls,
        "show": cmd_show,
        "patches": cmd_patches,
        "apply": cmd_apply,
        "respond": cmd_respond,
        "traces": cmd_traces,
        "memory": cmd_memory,
    }
    async with open_engine(workspace) as engine:
        return await handler[args.command](engine, args)


async def cmd_agents(workspace: Path, args: argparse.Namespace) -> int:
    from boocode_mcp import trust
    from boocode_mcp.agents.registry import AgentRegistry
    from boocode_mcp.cli_render import Renderer

    registry = AgentRegistry(trust.ConfigSource(trust.workspace_root(workspace)))
    agents = await registry.describe()
    ws = registry.workspace_config()
    assert ws is not None
    if args.json:
        _print_json(
            {"agents": [a.model_dump(mode="json") for a in agents], "workspace_config": ws.model_dump()}
        )
    else:
        Renderer().agents(agents)
        Renderer().line(trust.describe(ws))
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    """`boocode trust`: see boocode_mcp.trust."""
    from boocode_mcp import trust

    ws = trust.trust_workspace(_workspace(args.workspace))
    if args.json:
        _print_json(ws.model_dump())
    else:
        sys.stdout.write(trust.describe(ws) + "\n")
    return 0


async def cmd_ls(engine: Engine, args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    runs = await engine.list_subagents(args.session, limit=args.limit)
    if args.json:
        _print_json({"subagents": [r.model_dump(mode="json") for r in runs]})
    else:
        Renderer().subagents(runs)
    return 0


async def cmd_show(engine: Engine, args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    out = Renderer()
    try:
        run_id, session_id = lookup(engine.workspace, "subagents", args.id, args.session)
    except NotFound:
        try:
            patch_id, session_id = lookup(engine.workspace, "patches", args.id, args.session)
        except NotFound:
            where = f"session {args.session}" if args.session else "this workspace"
            raise CliError(
                f"no subagent or patch {args.id} in {where}; see `boocode ls` and `boocode patches`"
            ) from None
        patch = await engine.get_patch(session_id, patch_id, include_diff=not args.no_diff)
        if args.json:
            _print_json(patch.model_dump(mode="json"))
            return 0
        out.patch_header(patch)
        if patch.diff:
            out.diff(patch.diff)
        return 0
    run = await engine.status(session_id, run_id)
    if run.status == "awaiting_permission" and run.pending_permission is None and not args.no_server:
        run = await _server_status(engine.workspace, session_id, run)
    if args.json:
        _print_json(status_json(run))
        return 0
    out.subagent(run)
    if run.patch_id is not None:
        patch = await engine.get_patch(session_id, run.patch_id, include_diff=not args.no_diff)
        out.line("")
        out.patch_header(patch)
        if patch.diff:
            out.diff(patch.diff)
    return 0


async def _server_status(workspace: Path, session_id: str, run: SubagentView) -> SubagentView:
    """The run's status as the workspace's server sees it: a pending permission request lives
    in the memory of the process that drives the run, not in the database."""
    from boocode_mcp.views import SubagentView

    info = read_server(workspace)
    if info is None:
        return run
    async with mcp_client(info) as client:
        data = await call_tool(
            client, "subagent_status", {"subagent_id": run.subagent_id, "session_id": session_id}
        )
    return SubagentView.model_validate({k: v for k, v in data.items() if k != "subagents"})


async def cmd_patches(engine: Engine, args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    chat = args.chat
    if chat is not None:
        chat, _ = lookup(engine.workspace, "chats", chat, args.session)
    patches = await engine.list_patches(args.session, chat_id=chat, status=args.status, limit=args.limit)
    if args.diff:
        patches = [await engine.get_patch(p.session_id, p.id, include_diff=True) for p in patches]
    if args.json:
        _print_json({"patches": [p.model_dump(mode="json") for p in patches]})
        return 0
    out = Renderer()
    if not args.diff:
        out.patches(patches)
        return 0
    for p in patches:
        out.patch_header(p)
        out.diff(p.diff or "")
    if not patches:
        out.line("no patches")
    return 0


def _apply_outcome(result: dict[str, Any], as_json: bool) -> int:
    from boocode_mcp.cli_render import Renderer
    from boocode_mcp.views import ApplyResult

    parsed = ApplyResult.model_validate(result)
    if as_json:
        _print_json(parsed.model_dump(mode="json"))
    else:
        Renderer().apply_result(parsed)
    if parsed.conflicts:
        first = parsed.conflicts[0]
        more = f" (and {len(parsed.conflicts) - 1} more)" if len(parsed.conflicts) > 1 else ""
        raise CliError(f"apply refused, workspace untouched: {first.file}: {first.reason}{more}")
    return 0


async def cmd_apply(engine: Engine, args: argparse.Namespace) -> int:
    resolved = [lookup(engine.workspace, "patches", i, args.session) for i in args.ids]
    sessions = {s for _, s in resolved}
    # All or nothing is one engine call; patches of several sessions are looked up without one.
    session = args.session or (sessions.pop() if len(sessions) == 1 else None)
    result = await engine.apply_pending(
        session, patch_ids=[p for p, _ in resolved], dry_run=args.dry_run, commit_message=args.message
    )
    return _apply_outcome(result.model_dump(mode="json"), args.json)


async def cmd_apply_server(workspace: Path, info: ServerInfo, args: argparse.Namespace) -> int:
    resolved = [lookup(workspace, "patches", i, args.session) for i in args.ids]
    sessions = {s for _, s in resolved}
    if len(sessions) > 1:
        # One MCP call sees one session; all or nothing across sessions is an engine call here.
        async with open_engine(workspace) as engine:
            return await cmd_apply(engine, args)
    async with mcp_client(info) as client:
        result = await call_tool(
            client,
            "apply_pending",
            {
                "patch_ids": [p for p, _ in resolved],
                "session_id": sessions.pop(),
                "dry_run": args.dry_run,
                "commit_message": args.message,
            },
        )
    return _apply_outcome(result, args.json)


def _request_id(view: dict[str, Any], given: str) -> str:
    """The pending request's full id when `given` is a prefix of it (the engine checks the rest)."""
    pending = view.get("pending_permission") or {}
    full = str(pending.get("request_id") or "")
    return full if given and full.startswith(given) else given


def _respond_outcome(result: dict[str, Any], as_json: bool) -> int:
    answer = {"subagent_id": result["subagent_id"], "status": result["status"]}
    if as_json:
        _print_json(answer)
    else:
        sys.stdout.write(f"subagent {answer['subagent_id'][:8]}: {answer['status']}\n")
    return 0


async def cmd_respond(engine: Engine, args: argparse.Namespace) -> int:
    run_id, session_id = lookup(engine.workspace, "subagents", args.subagent_id, args.session)
    # Only the process driving a run can answer it, and this one drives none: the engine's
    # error says which process does.
    view = await engine.respond_permission(session_id, run_id, args.request_id, args.option_id)
    return _respond_outcome(view.model_dump(mode="json"), args.json)


async def cmd_respond_server(workspace: Path, info: ServerInfo, args: argparse.Namespace) -> int:
    run_id, session_id = lookup(workspace, "subagents", args.subagent_id, args.session)
    ids = {"subagent_id": run_id, "session_id": session_id}
    async with mcp_client(info) as client:
        request = _request_id(await call_tool(client, "subagent_status", ids), args.request_id)
        result = await call_tool(
            client, "respond_permission", {**ids, "request_id": request, "option_id": args.option_id}
        )
    return _respond_outcome(result, args.json)


class NotFound(CliError):
    """No row has this id or id prefix."""


_NOUNS = {"subagents": "subagent", "patches": "patch", "chats": "chat"}


def lookup(workspace: Path, table: str, ident: str, session: str | None) -> tuple[str, str]:
    """(id, session_id) of a subagent, patch or chat by its id or a unique prefix of it.

    The engine and the MCP tools look ids up within one session; the CLI acts on every session,
    so it finds the row's session first, with a read-only query of the shared database.
    """
    noun = _NOUNS[table]  # also keeps `table` to fixed names in the SQL below
    db_path = workspace / BOOCODE_DIR / "boocode.db"
    prefix = ident.replace("\\", "").replace("%", "").replace("_", "")
    sql = f"SELECT id, session_id FROM {table} WHERE (id = ? OR id LIKE ?)"
    params = [ident, prefix + "%"]
    if session is not None:
        sql += " AND session_id = ?"
        params.append(session)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute(sql, params).fetchall() if prefix else []
    except sqlite3.Error as e:
        raise CliError(f"cannot read {db_path}: {e}") from e
    rows = [r for r in rows if r[0] == ident] or rows
    if not rows:
        where = f"session {session}" if session else "this workspace"
        raise NotFound(f"no {noun} {ident} in {where}; see `boocode ls` and `boocode patches`")
    if len(rows) > 1:
        raise CliError(f"{ident} is ambiguous: it starts {len(rows)} {noun} ids; give more of it")
    return str(rows[0][0]), str(rows[0][1])


async def cmd_traces(engine: Engine, args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    if args.session is not None:
        sessions = [args.session]
    else:
        found: dict[str, None] = {}
        for r in await engine.list_subagents(None, limit=100_000):
            found.setdefault(r.session_id)
        for c in await engine.chats(None):
            found.setdefault(c.session_id)
        sessions = list(found)
    traces = [t for s in sessions for t in await engine.traces(s)]
    traces.sort(key=lambda t: t.started_at)
    if args.json:
        _print_json({"session_id": args.session, "traces": [t.model_dump(mode="json") for t in traces]})
    else:
        Renderer().traces(traces)
    return 0


async def cmd_memory(engine: Engine, args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    hits = await engine.search_memory(args.query, limit=args.limit, source=args.source)
    if args.json:
        _print_json({"hits": [h.model_dump(mode="json") for h in hits]})
    else:
        Renderer().hits(hits)
    return 0


# -- run ------------------------------------------------------------------------------------


def _finish_run(view: dict[str, Any], as_json: bool) -> int:
    if as_json:
        _print_json(view)
    elif view.get("final_message"):
        sys.stdout.write(view["final_message"].rstrip("\n") + "\n")
    status = view.get("status")
    if status == "completed":
        return 0
    reason = view.get("error") or view.get("stop_reason") or "no reason given"
    sys.stderr.write(
        f"boocode: run {view.get('subagent_id', '')[:8]} {status}: {' '.join(str(reason).split())}\n"
    )
    return 1


async def cmd_run(workspace: Path, args: argparse.Namespace) -> int:
    if args.no_server:
        return await _run_in_process(workspace, args)
    info = read_server(workspace)
    if info is None:
        import anyio

        info = await anyio.to_thread.run_sync(start_server, workspace)
    return await _run_via_server(workspace, info, args)


class PermissionAsker:
    """What `boocode run` does when its run asks permission (policy "ask"): asks on the
    terminal when stdin and stderr are both one, else prints the `boocode respond` command
    that answers it from another shell. Each request is handled once."""

    def __init__(
        self,
        workspace: Path,
        subagent_id: str,
        progress: Progress | None,
        respond: Callable[[str, str], Awaitable[object]],
        *,
        in_process: bool,
    ) -> None:
        from boocode_mcp.cli_render import is_tty

        self.workspace = workspace
        self.subagent_id = subagent_id
        self.respond = respond
        self.in_process = in_process
        # --quiet and --json give no Progress to ask with: they are for scripts.
        self.progress = progress if is_tty(sys.stdin) and is_tty(sys.stderr) else None
        self._handled: set[str] = set()

    async def handle(self, pending: dict[str, Any] | None) -> None:
        if not pending or pending["request_id"] in self._handled:
            return
        self._handled.add(pending["request_id"])
        if self.progress is not None:
            await self._ask(self.progress, pending)
        else:
            sys.stderr.write(self.hint(pending) + "\n")
            sys.stderr.flush()

    def hint(self, pending: dict[str, Any]) -> str:
        """One line: the request and how to answer it."""
        import shlex

        title = " ".join(str(pending["title"]).split())
        head = f"boocode: subagent {self.subagent_id[:8]} asks permission: {title};"
        options = ", ".join(f"{shlex.quote(o['option_id'])} ({o['kind']})" for o in pending["options"])
        if self.in_process:
            return (
                f"{head} it runs in this process (--no-server), so only a terminal running it can "
                f"answer; it fails closed at its deadline (options: {options})"
            )
        args = [self.subagent_id, pending["request_id"], "OPTION_ID", "--workspace", str(self.workspace)]
        command = shlex.join(["boocode", "respond", *args])
        return f"{head} answer with `{command}`, OPTION_ID one of: {options}"

    async def _ask(self, progress: Progress, pending: dict[str, Any]) -> None:
        import anyio

        options = pending["options"]
        progress.permission(pending)
        # Past its deadline the request has failed closed and the run moved on: stop asking.
        with anyio.move_on_after(max(0.0, float(pending["deadline"]) - time.time())) as waited:
            while True:
                progress.ask(f"answer 1-{len(options)} (Enter leaves it to its deadline): ")
                # A terminal hands over whole lines: once readable, readline does not block.
                await anyio.wait_readable(sys.stdin.fileno())
                choice = sys.stdin.readline().strip()
                if not choice:  # empty line or EOF
                    progress.status("left unanswered: it fails closed at its deadline")
                    return
                if choice.isdigit() and 1 <= int(choice) <= len(options):
                    break
                progress.status(f"{choice!r} is not a number from 1 to {len(options)}")
        if waited.cancelled_caught:
            progress.status("not answered in time: the request failed closed")
            return
        option = options[int(choice) - 1]
        try:
            await self.respond(pending["request_id"], option["option_id"])
        except (CliError, BooCodeError) as e:
            progress.status(f"not answered: {' '.join(str(e).split())}")
        else:
            progress.status(f"answered: {option['name']}")


def _run_summary(view: dict[str, Any], started: float) -> str:
    act = view.get("activity") or {}
    n_tools = len(act.get("tool_calls") or [])
    files = len(act.get("files_touched") or [])
    return f"{view.get('status')} · {n_tools} tool calls · {files} files · {time.monotonic() - started:.0f}s"


async def _run_via_server(workspace: Path, info: ServerInfo, args: argparse.Namespace) -> int:
    import anyio

    from boocode_mcp.cli_render import Progress

    progress = None if args.quiet else Progress()
    session = args.session
    chat = args.chat
    if chat is not None:
        chat, session = lookup(workspace, "chats", chat, session)
    started = time.monotonic()
    async with mcp_client(info) as client:
        spawned = await call_tool(
            client,
            "spawn_subagent",
            {
                "prompt": args.prompt,
                "agent": args.agent,
                "chat_id": chat,
                "model": args.model,
                "mode": args.mode,
                "session_id": session,
            },
        )
        ids = {"subagent_id": spawned["subagent_id"], "session_id": spawned["session_id"]}
        if progress is not None:
            progress.status(
                f"subagent {ids['subagent_id'][:8]} on {spawned['agent']} (chat {spawned['chat_id'][:8]})"
            )
        view: dict[str, Any] = spawned

        async def respond(request_id: str, option_id: str) -> object:
            answer = {"request_id": request_id, "option_id": option_id}
            return await call_tool(client, "respond_permission", {**ids, **answer})

        asker = PermissionAsker(
            workspace,
            ids["subagent_id"],
            None if args.json else progress,
            respond,
            in_process=False,
        )
        last_status = None
        try:
            while True:
                view = await call_tool(client, "subagent_status", {**ids, "wait_seconds": STATUS_POLL_S})
                if progress is not None:
                    progress.activity(view)
                    if view.get("status") != last_status:
                        progress.status(_run_summary(view, started))
                await asker.handle(view.get("pending_permission"))
                last_status = view.get("status")
                if view.get("status") in ("completed", "failed", "cancelled", "interrupted"):
                    break
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await call_tool(client, "cancel_subagent", ids)
            raise
    if progress is not None:
        progress.done()
    return _finish_run(view, args.json)


async def _run_in_process(workspace: Path, args: argparse.Namespace) -> int:
    import anyio

    from boocode_mcp.agents.events import AgentEvent, TextEvent, ToolCallEvent, ToolUpdateEvent
    from boocode_mcp.cli_render import Progress
    from boocode_mcp.views import TERMINAL_STATUSES

    progress = None if args.quiet else Progress()

    def on_event(event: AgentEvent) -> None:
        # Synchronous and non-blocking (EventSink): writing to stderr is both.
        if progress is None:
            return
        if isinstance(event, TextEvent):
            progress.text(event.text)
        elif isinstance(event, ToolCallEvent | ToolUpdateEvent):
            progress.tool(event.tool_call_id, event.title, event.status)

    started = time.monotonic()
    async with open_engine(workspace) as engine:
        session = args.session
        chat = args.chat
        if chat is not None:
            chat, session = lookup(engine.workspace, "chats", chat, session)
        session = await engine.ensure_session(session, create=session is None)
        view = await engine.spawn(
            session,
            args.prompt,
            agent=args.agent,
            chat_id=chat,
            model=args.model,
            mode=args.mode,
            on_event=on_event,
        )
        if progress is not None:
            progress.status(f"subagent {view.subagent_id[:8]} on {view.agent} (chat {view.chat_id[:8]})")
        run_id = view.subagent_id

        async def respond(request_id: str, option_id: str) -> object:
            return await engine.respond_permission(session, run_id, request_id, option_id)

        asker = PermissionAsker(workspace, run_id, None if args.json else progress, respond, in_process=True)
        try:
            while view.status not in TERMINAL_STATUSES:
                view = await engine.wait(session, run_id, STATUS_POLL_S)
                pending = view.pending_permission
                await asker.handle(None if pending is None else pending.model_dump(mode="json"))
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), contextlib.suppress(BooCodeError):
                await engine.cancel(session, view.subagent_id)
            raise
    if progress is not None:
        progress.status(_run_summary(status_json(view), started))
        progress.done()
    return _finish_run(status_json(view), args.json)


__all__ = [
    "CliError",
    "IdleWatchdog",
    "ServerInfo",
    "build_parser",
    "main",
    "mcp_main",
    "read_server",
    "start_server",
]

if __name__ == "__main__":
    main()
