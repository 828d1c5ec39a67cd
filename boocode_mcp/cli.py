"""Command line: `boocode` and `boocode-mcp`.

Every command is a front end of the workspace's daemon (`boocode_mcp.daemon`): `boocode-mcp`,
`boocode serve` and `boocode acp` relay their stdio to it, and the other commands ask its API
(`daemon/api.py`), the same operations the MCP tools run. `--no-daemon` runs the engine in this
process instead, through the same code. Importing this module costs no more than the standard
library: a front end that only passes bytes along must start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from boocode_mcp import agent_bridge
from boocode_mcp.daemon.client import Api, ApiFailure, open_api
from boocode_mcp.daemon.wire import DaemonError, NotRunning, control, find_workspace, stop_daemon

if TYPE_CHECKING:
    from boocode_mcp.cli_render import Progress

TOKEN_ENV = "BOOCODE_TOKEN"
WATCH_WAIT_S = 10.0  # seconds per `watch` long-poll; it returns at once on any event
TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})


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


def _workspace_arg(p: argparse.ArgumentParser, default_help: str = "the current directory") -> None:
    p.add_argument(
        "--workspace",
        metavar="DIR",
        type=Path,
        default=None,
        help=f"the git repository BooCode works on (default: {default_help})",
    )


def _no_daemon_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-daemon",
        action="store_true",
        help="run the engine in this process instead of the workspace's daemon (it ends with the command)",
    )


def _common(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    _workspace_arg(p)
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
    _no_daemon_arg(p)


def _workflow_common(p: argparse.ArgumentParser) -> None:
    # No --session: a workflow run keeps its steps in a session of its own.
    _workspace_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON, with the MCP tool's fields")
    _no_daemon_arg(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boocode",
        description="BooCode: hand coding work to ACP agents as background subagents, "
        "review their patches, apply the good ones. Every command talks to the workspace's "
        "daemon, which it starts when none runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="the MCP server: stdio (what hosts launch), or streamable HTTP")
    _workspace_arg(p)
    p.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=_parse_hostport,
        default=None,
        help="serve streamable HTTP at /mcp on HOST:PORT (port 0 picks a free one) until this "
        "command ends, instead of stdio",
    )
    p.add_argument(
        "--token",
        metavar="T",
        default=None,
        help=f"bearer token every HTTP request must carry (required off loopback; default: ${TOKEN_ENV})",
    )
    _no_daemon_arg(p)

    p = sub.add_parser("acp", help="BooCode as an ACP agent on stdio, for editors (Zed, JetBrains, acpx)")
    _workspace_arg(p, "the cwd the editor gives in session/new")
    p.add_argument(
        "--agent", metavar="A", default=None, help="backend agent for new chats (default: configured)"
    )
    _no_daemon_arg(p)

    p = sub.add_parser(
        "ui",
        help="the web page: the daemon serves it on loopback; prints its address with a login token",
        description="Make the workspace's daemon serve its web page (runs live, timelines, patches to "
        "review and apply, traces, usage) on 127.0.0.1 and print the address, with a login token the "
        "first visit exchanges for a cookie. The page lives as long as the daemon; an open page "
        "keeps the daemon from idling out.",
    )
    _workspace_arg(p)
    p.add_argument("--open", action="store_true", help="also open the page in a web browser")

    p = sub.add_parser("daemon", help="the workspace's daemon: status or stop (never starts one)")
    p.add_argument("action", choices=["status", "stop"], help="status: is it running; stop: end it")
    _workspace_arg(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")

    p = sub.add_parser(
        "run",
        help="run a subagent in the foreground: progress on stderr, final message on stdout",
        description="Run a subagent in the foreground: progress on stderr, the final message on "
        'stdout. When the agent asks permission ([permissions] policy = "ask"), the request is '
        "asked on the terminal when stdin and stderr are both one (answer with the option's number; "
        "Enter leaves it to its deadline); otherwise, or with --json or --quiet, one line on stderr "
        "gives the `boocode respond ...` command that answers it from another shell. Ctrl-C cancels "
        "the run.",
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
        "--image",
        metavar="PATH",
        action="append",
        default=None,
        help="an image file the prompt carries (PNG, JPEG, GIF or WebP; repeat for more); for agents "
        "that take images (see `boocode agents`)",
    )
    _quiet_arg(p)

    p = sub.add_parser(
        "send",
        help="a follow-up on a run's chat, in the foreground like `run`",
        description="Send MSG as the next prompt of RUN's chat (its warm agent, its worktree) and follow "
        "the new run like `boocode run`: progress on stderr, the final message on stdout.",
    )
    _common(p)
    p.add_argument("run", metavar="RUN", help="a run of the chat (a unique prefix is enough)")
    p.add_argument("message", metavar="MSG", help="the follow-up prompt")
    _quiet_arg(p)

    p = sub.add_parser(
        "retry",
        help="run a failed, cancelled or interrupted run's prompt again, in the foreground",
        description="Run RUN's prompt (and images) again on its chat, as a new run naming it in "
        "retry_of, and follow it like `boocode run`. `boocode inbox` lists the runs that may need it.",
    )
    _common(p)
    p.add_argument("run", metavar="RUN", help="the run to retry (a unique prefix is enough)")
    _quiet_arg(p)

    p = sub.add_parser(
        "attach",
        help="follow a run live from any shell: its text on stdout, progress on stderr",
        description="Follow RUN as it goes, from any process: the agent's text on stdout as it "
        "arrives (from the start of the run), tool calls and status on stderr. Exits when the run "
        "ends: 0 if it completed, 1 otherwise. Ctrl-C stops following; the run goes on.",
    )
    _common(p, json_flag=False)
    p.add_argument("run", metavar="RUN", help="the run to follow (a unique prefix is enough)")

    p = sub.add_parser(
        "inbox",
        help="what needs you: failed or interrupted runs, permission requests, conflicted patches",
    )
    _common(p)
    p.add_argument("--limit", type=int, default=100, help="at most this many items (default 100)")

    p = sub.add_parser(
        "stats",
        help="runs, success rate, turn times, tokens (cache reads and writes too) and cost",
        description="How the workspace's runs went and what they cost, one row per agent (default), "
        "day, chat or session. Token and cost figures are what the agents reported; a blank one "
        "was never reported.",
    )
    _common(p)
    p.add_argument(
        "--by", choices=["agent", "day", "chat", "session"], default="agent", help="group by (default agent)"
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        default=None,
        help="only runs created since: a duration back from now (30m, 12h, 7d, 2w), an ISO date or "
        "date-time, or unix seconds",
    )
    p.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")

    p = sub.add_parser(
        "respond",
        help="answer a run's pending permission request (the command `boocode run` prints)",
        description="Answer a run's pending permission request (see pending_permission in "
        "`boocode show ID --json`); the run resumes.",
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
    _common(p)

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

    p = sub.add_parser(
        "worker",
        help="run queued runs of a PostgreSQL store from a clone of the repository (one host of several)",
        description="Register as a worker of the PostgreSQL store at URL and run its queued runs, each "
        "in a worktree of DIR (a clone of the repository) at the run's base commit, fetched from "
        "--remote (the requester pushes it). Agents come from DIR's config and your user config. "
        "Runs until SIGTERM or Ctrl-C.",
    )
    p.add_argument("--db", metavar="URL", required=True, help="the store: a postgresql:// URL")
    p.add_argument(
        "--repo", metavar="DIR", type=Path, required=True, help="this host's clone of the repository"
    )
    p.add_argument(
        "--remote",
        metavar="NAME",
        default="origin",
        help="where to fetch runs' base commits (default origin)",
    )

    p = sub.add_parser(
        "workflow",
        help="workflows: list them, run one with live progress, show or cancel a run",
        description="Workflows are JavaScript files (.boocode/workflows/*.js, ~/.config/boocode/"
        "workflows/*.js, and the built-in catalog) whose steps are subagent runs, cached by what "
        "they were asked: running one again with the same args redoes only what is left.",
    )
    wsub = p.add_subparsers(dest="workflow_command", required=True, metavar="SUBCOMMAND")
    q = wsub.add_parser("ls", help="the workflows this workspace can run, and files that were skipped")
    _workflow_common(q)
    q = wsub.add_parser(
        "run",
        help="run a workflow in the foreground: progress on stderr, its result (JSON) on stdout",
        description="Run a workflow in the foreground: a line per step and each log line on stderr, "
        "the result as JSON on stdout (--json: the final workflow_status object). Exits 0 when the run "
        "completes. Ctrl-C cancels the run and its running steps.",
    )
    _workflow_common(q)
    q.add_argument("name", metavar="NAME", help="the workflow (see `boocode workflow ls`)")
    q.add_argument("--args", metavar="JSON", default=None, help="its arguments, a JSON object (default {})")
    q.add_argument("--quiet", action="store_true", help="no progress on stderr")
    q = wsub.add_parser("status", help="a workflow run: its steps, logs, result")
    _workflow_common(q)
    q.add_argument("id", metavar="ID", help="the workflow run (a unique prefix is enough)")
    q = wsub.add_parser("cancel", help="cancel a workflow run and its running steps")
    _workflow_common(q)
    q.add_argument("id", metavar="ID", help="the workflow run (a unique prefix is enough)")

    p = sub.add_parser("memory", help="search notes and finished subagent transcripts")
    msub = p.add_subparsers(dest="memory_command", required=True, metavar="SUBCOMMAND")
    q = msub.add_parser("search", help="full-text search (bm25)")
    _common(q)
    q.add_argument("query", metavar="Q", help="what to search for")
    q.add_argument("--limit", type=int, default=10, help="at most this many hits (default 10)")
    q.add_argument("--source", choices=["note", "subagent"], default=None, help="only this kind of entry")
    return parser


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (permission requests still show)"
    )


def _workspace(arg: Path | None) -> Path:
    return (arg if arg is not None else Path.cwd()).absolute()


# -- entry points ---------------------------------------------------------------------------


def mcp_main(argv: Sequence[str] | None = None) -> None:
    """`boocode-mcp`: the MCP server on stdio (what MCP hosts launch); same as `boocode serve`."""
    p = argparse.ArgumentParser(
        prog="boocode-mcp",
        description="BooCode's MCP server on stdio, served by the workspace's daemon (started when "
        "none runs).",
    )
    _workspace_arg(p)
    _no_daemon_arg(p)
    args = p.parse_args(argv)
    if os.environ.get(agent_bridge.ENV_TOKEN):
        # Started by an agent BooCode runs, as its session's stdio MCP server.
        _exit(agent_bridge.main())
    _exit(_guarded(lambda: _serve_stdio(_workspace(args.workspace), args.no_daemon)))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _exit(_guarded(lambda: COMMANDS[args.command](args)))


def _guarded(command: Callable[[], int]) -> int:
    """Run a command; a refusal becomes one line on stderr and a non-zero exit."""
    try:
        return command()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output has gone (a pipe into `head`, a host that quit).
        return 0
    except CliError as e:
        _say(str(e))
        return e.code
    except (DaemonError, ApiFailure) as e:
        _say(str(e))
        return 1
    except BaseException as e:
        failure = _user_failure(e)
        if failure is None:
            raise
        _say(str(failure))
        return 1


def _user_failure(exc: BaseException) -> BaseException | None:
    """The error meant for the user inside `exc` (task groups wrap errors of --no-daemon engines)."""
    from boocode_mcp.errors import BooCodeError

    if isinstance(exc, BooCodeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _user_failure(inner)
            if found is not None:
                return found
    return None


def _say(message: str) -> None:
    # One line: scripts read the reason from stderr.
    sys.stderr.write("boocode: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()


def _exit(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.exit(code)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# -- front ends -----------------------------------------------------------------------------


def _serve_stdio(workspace: Path, no_daemon: bool) -> int:
    if no_daemon:
        from boocode_mcp.mcp_server import main_stdio

        main_stdio(find_workspace(workspace))
        return 0
    from boocode_mcp.daemon.relay import relay_mcp

    return relay_mcp(workspace)


def cmd_serve(args: argparse.Namespace) -> int:
    workspace = _workspace(args.workspace)
    if args.http is None:
        if args.token is not None:
            raise CliError("--token needs --http: stdio is reachable only by the host that started it")
        return _serve_stdio(workspace, args.no_daemon)
    host, port = args.http
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.no_daemon:
        from boocode_mcp.mcp_server import main_http

        main_http(find_workspace(workspace), host, port, token)
        return 0
    return _serve_http_via_daemon(workspace, host, port, token)


def _serve_http_via_daemon(workspace: Path, host: str, port: int, token: str | None) -> int:
    """Ask the daemon to serve MCP over HTTP for as long as this command runs."""
    from boocode_mcp.daemon.wire import connect

    conn = connect(workspace, "control")
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.append(signum)
        # Closing the connection is the whole shutdown: the daemon ends the listener with it.
        conn.sock.shutdown(2)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        conn.send_line(
            {"id": 1, "method": "http_listen", "params": {"host": host, "port": port, "token": token}}
        )
        line = conn.read_line()
        if line is None:
            raise CliError(f"the daemon closed the connection; see {conn.paths.log}")
        answer = json.loads(line)
        if "error" in answer:
            raise CliError(str(answer["error"]["message"]), code=2)
        url = answer["result"]["url"]
        sys.stderr.write(
            f"boocode: MCP serving {conn.paths.workspace} at {url} (daemon pid {conn.daemon_pid})\n"
        )
        sys.stderr.flush()
        while not stop and conn.read_line() is not None:
            pass
    except OSError:
        if not stop:
            raise
    finally:
        conn.close()
    return 0


def cmd_acp(args: argparse.Namespace) -> int:
    workspace = args.workspace.absolute() if args.workspace else None
    if args.no_daemon:
        from boocode_mcp.acp_server import main_acp

        main_acp(workspace, args.agent)
        return 0
    from boocode_mcp.daemon.relay import relay_acp

    return relay_acp(workspace, args.agent)


def cmd_daemon(args: argparse.Namespace) -> int:
    workspace = _workspace(args.workspace)
    if args.action == "stop":
        stopped = stop_daemon(workspace)
        if args.json:
            _print_json({"stopped": stopped is not None, "pid": stopped.get("pid") if stopped else None})
        elif stopped is None:
            sys.stdout.write("no BooCode daemon was running\n")
        else:
            sys.stdout.write(f"stopped the BooCode daemon (pid {stopped['pid']})\n")
        return 0
    try:
        status = control(workspace, "status")
    except NotRunning:
        status = {"running": False, "pid": None, "version": None, "started_at": None, "socket": None,
                  "front_ends": 0, "runs_live": 0, "agents_warm": 0}  # fmt: skip
    if args.json:
        _print_json(status)
    elif status["running"]:
        from boocode_mcp.cli_render import _when

        sys.stdout.write(
            f"BooCode daemon {status['version']} running (pid {status['pid']}) since "
            f"{_when(status['started_at'])}\n  socket {status['socket']}\n"
            f"  front ends {status['front_ends']}, "
            f"live runs {status['runs_live']}, warm agents {status['agents_warm']}\n"
        )
    else:
        sys.stdout.write("no BooCode daemon is running for this workspace\n")
    return 0 if status["running"] else 1


def cmd_ui(args: argparse.Namespace) -> int:
    workspace = _workspace(args.workspace)
    url = str(control(workspace, "ui", start=True)["url"])
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    if args.open:
        import webbrowser

        if not webbrowser.open(url):
            _say("found no web browser to open; open the address above yourself")
    return 0


# -- commands on the API --------------------------------------------------------------------


class _Session:
    """An API connection for one command, closed when it ends."""

    def __init__(self, args: argparse.Namespace, *, own_session: str | None = None) -> None:
        self.api: Api = open_api(_workspace(args.workspace), no_daemon=args.no_daemon, session=own_session)

    def __enter__(self) -> Api:
        return self.api

    def __exit__(self, *exc: object) -> None:
        self.api.close()


def _resolve(api: Api, ident: str, kinds: Sequence[str], session: str | None) -> dict[str, Any]:
    return api.call("resolve_id", ident=ident, kinds=list(kinds), session_id=session)


def cmd_ls(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        result = api.call("subagent_status", session_id=args.session, limit=args.limit)
    runs = result.get("subagents") or []
    if args.json:
        _print_json({"subagents": runs})
    else:
        from boocode_mcp.cli_render import Renderer

        Renderer().subagents(runs)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Renderer

    out = Renderer()
    with _Session(args) as api:
        found = _resolve(api, args.id, ("subagent", "patch"), args.session)
        if found["kind"] == "patch":
            patch = api.call("get_patch", patch_id=found["id"], include_diff=not args.no_diff)
            if args.json:
                _print_json(patch)
                return 0
            out.patch_header(patch)
            if patch.get("diff"):
                out.diff(patch["diff"])
            return 0
        run = api.call("subagent_status", subagent_id=found["id"])
        if args.json:
            _print_json(run)
            return 0
        out.subagent(run)
        if run.get("patch_id"):
            patch = api.call("get_patch", patch_id=run["patch_id"], include_diff=not args.no_diff)
            out.line("")
            out.patch_header(patch)
            if patch.get("diff"):
                out.diff(patch["diff"])
    return 0


def cmd_patches(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        chat = _resolve(api, args.chat, ("chat",), args.session)["id"] if args.chat else None
        result = api.call(
            "list_patches",
            session_id=args.session,
            chat_id=chat,
            status=args.status,
            limit=args.limit,
            include_hunks=args.diff,
        )
    patches = result.get("patches") or []
    if args.json:
        _print_json({"patches": patches})
        return 0
    from boocode_mcp.cli_render import Renderer

    out = Renderer()
    if not args.diff:
        out.patches(patches)
        return 0
    for p in patches:
        out.patch_header(p)
        if p.get("diff"):
            out.diff(p["diff"])
    if not patches:
        out.line("no patches")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        ids = [_resolve(api, ident, ("patch",), args.session)["id"] for ident in args.ids]
        result = api.call("apply_pending", patch_ids=ids, dry_run=args.dry_run, commit_message=args.message)
    if args.json:
        _print_json(result)
    else:
        from boocode_mcp.cli_render import Renderer

        Renderer().apply_result(result)
    conflicts = result.get("conflicts") or []
    if conflicts:
        reasons = "; ".join(f"{c['file']}: {c['reason']} (patch {c['patch_id'][:8]})" for c in conflicts)
        _say(f"nothing applied, the workspace is untouched; conflicts: {reasons}")
        return 1
    return 0


def _answer(args: argparse.Namespace, method: str, render: str, field: str, **params: Any) -> int:
    """One API call, printed as JSON with --json or by the renderer's `render` method."""
    with _Session(args) as api:
        result = api.call(method, **params)
    if args.json:
        _print_json(result)
    else:
        from boocode_mcp.cli_render import Renderer

        getattr(Renderer(), render)(result[field])
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    return _answer(args, "inbox", "inbox", "items", limit=args.limit)


def cmd_stats(args: argparse.Namespace) -> int:
    return _answer(args, "usage_stats", "usage", "rows", group_by=args.by, since=args.since, limit=args.limit)


def cmd_agents(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        result, text = api.call_text("list_agents")
    if args.json:
        _print_json(result)
    else:
        from boocode_mcp.cli_render import Renderer

        out = Renderer()
        out.agents(result["agents"])
        # The text's last line says whether the workspace's own config counts, and how to trust it.
        out.line(text.splitlines()[-1])
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    """`boocode trust`: no daemon needed; a running one uses the trust from its next agent on."""
    from boocode_mcp import trust

    ws = trust.trust_workspace(_workspace(args.workspace))
    if args.json:
        _print_json(ws.model_dump())
    else:
        sys.stdout.write(trust.describe(ws) + "\n")
    return 0


def cmd_traces(args: argparse.Namespace) -> int:
    return _answer(args, "traces", "traces", "traces", session_id=args.session)


def cmd_worker(args: argparse.Namespace) -> int:
    from boocode_mcp.worker import main_worker

    return main_worker(_workspace(args.repo), args.db, args.remote)


def cmd_memory(args: argparse.Namespace) -> int:
    return _answer(
        args, "search_memory", "hits", "hits", query=args.query, limit=args.limit, source=args.source
    )


def cmd_respond(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        run_id = _resolve(api, args.subagent_id, ("subagent",), args.session)["id"]
        view = api.call("subagent_status", subagent_id=run_id)
        result = api.call(
            "respond_permission",
            subagent_id=run_id,
            request_id=_request_id(view, args.request_id),
            option_id=args.option_id,
        )
    if args.json:
        _print_json(result)
    else:
        sys.stdout.write(f"subagent {result['subagent_id'][:8]}: {result['status']}\n")
    return 0


def _request_id(view: dict[str, Any], given: str) -> str:
    """The pending request's full id when `given` is a prefix of it (the engine checks the rest)."""
    pending = view.get("pending_permission") or {}
    full = str(pending.get("request_id") or "")
    return full if given and full.startswith(given) else given


# -- run ------------------------------------------------------------------------------------


def _finish_run(view: dict[str, Any], as_json: bool, *, print_final: bool = True) -> int:
    if as_json:
        _print_json(view)
    elif view.get("final_message") and print_final:
        sys.stdout.write(view["final_message"].rstrip("\n") + "\n")
    status = view.get("status")
    if status == "completed":
        return 0
    reason = view.get("error") or view.get("stop_reason") or "no reason given"
    _say(f"run {view.get('subagent_id', '')[:8]} {status}: {reason}")
    return 1


class PermissionAsker:
    """What `boocode run` does when its run asks permission (policy "ask"): asks on the
    terminal when stdin and stderr are both one, else prints the `boocode respond` command
    that answers it from another shell. Each request is handled once."""

    def __init__(
        self,
        workspace: Path,
        subagent_id: str,
        progress: Progress | None,
        respond: Callable[[str, str], object],
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

    def handle(self, pending: dict[str, Any] | None) -> None:
        if not pending or pending["request_id"] in self._handled:
            return
        self._handled.add(pending["request_id"])
        if self.progress is not None:
            self._ask(self.progress, pending)
        else:
            sys.stderr.write(self.hint(pending) + "\n")
            sys.stderr.flush()

    def hint(self, pending: dict[str, Any]) -> str:
        """One line: the request and how to answer it."""
        title = " ".join(str(pending["title"]).split())
        head = f"boocode: subagent {self.subagent_id[:8]} asks permission: {title};"
        options = ", ".join(f"{shlex.quote(o['option_id'])} ({o['kind']})" for o in pending["options"])
        if self.in_process:
            return (
                f"{head} it runs in this process (--no-daemon), so only a terminal running it can "
                f"answer; it fails closed at its deadline (options: {options})"
            )
        args = [self.subagent_id, pending["request_id"], "OPTION_ID", "--workspace", str(self.workspace)]
        command = shlex.join(["boocode", "respond", *args])
        return f"{head} answer with `{command}`, OPTION_ID one of: {options}"

    def _ask(self, progress: Progress, pending: dict[str, Any]) -> None:
        import select

        options = pending["options"]
        progress.permission(pending)
        deadline = float(pending["deadline"])
        while True:
            progress.ask(f"answer 1-{len(options)} (Enter leaves it to its deadline): ")
            # Past its deadline the request has failed closed and the run moved on: stop asking.
            remaining = deadline - time.time()
            readable = select.select([sys.stdin], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not readable:
                progress.status("not answered in time: the request failed closed")
                return
            # A terminal hands over whole lines: once readable, readline does not block.
            choice = sys.stdin.readline().strip()
            if not choice:  # empty line or EOF
                progress.status("left unanswered: it fails closed at its deadline")
                return
            if choice.isdigit() and 1 <= int(choice) <= len(options):
                break
            progress.status(f"{choice!r} is not a number from 1 to {len(options)}")
        option = options[int(choice) - 1]
        try:
            self.respond(pending["request_id"], option["option_id"])
        except (ApiFailure, DaemonError) as e:
            progress.status(f"not answered: {' '.join(str(e).split())}")
        else:
            progress.status(f"answered: {option['name']}")


def _run_summary(view: dict[str, Any], started: float) -> str:
    act = view.get("activity") or {}
    n_tools = len(act.get("tool_calls") or [])
    files = len(act.get("files_touched") or [])
    return f"{view.get('status')} · {n_tools} tool calls · {files} files · {time.monotonic() - started:.0f}s"


# What `boocode run --image` may read and send: the daemon's own limit ([images] max_bytes) is
# checked there; this only keeps a mistaken path from sending a huge file over the socket.
MAX_IMAGE_FILE_BYTES = 32 * 1024 * 1024


def _data_uri(path: str) -> str:
    """An image file as a data URI: the daemon takes files outside the workspace only that way."""
    import base64
    import mimetypes

    try:
        size = os.path.getsize(path)
        if size > MAX_IMAGE_FILE_BYTES:
            raise CliError(
                f"--image {path}: {size / 2**20:.1f} MiB is far too large for an image; send a smaller one"
            )
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CliError(f"--image {path}: cannot be read ({e.strerror})") from None
    mime = mimetypes.guess_type(path)[0] or ""
    # The daemon recognises the format from the bytes; the declared type only has to be an image's.
    mime = mime if mime.startswith("image/") else "image/unknown"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def cmd_run(args: argparse.Namespace) -> int:
    images = [_data_uri(path) for path in args.image or []]
    with _Session(args, own_session=args.session) as api:
        chat = _resolve(api, args.chat, ("chat",), args.session)["id"] if args.chat else None
        spawned = api.call(
            "spawn_subagent",
            prompt=args.prompt,
            agent=args.agent,
            chat_id=chat,
            model=args.model,
            mode=args.mode,
            session_id=args.session if chat is not None else None,
            images=images or None,
        )
        return _foreground(api, args, spawned)


def cmd_send(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        run_id = _resolve(api, args.run, ("subagent",), args.session)["id"]
        chat = api.call("subagent_status", subagent_id=run_id)["chat_id"]
        spawned = api.call("spawn_subagent", prompt=args.message, chat_id=chat)
        return _foreground(api, args, spawned)


def cmd_retry(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        run_id = _resolve(api, args.run, ("subagent",), args.session)["id"]
        spawned = api.call("retry_subagent", subagent_id=run_id)
        return _foreground(api, args, spawned)


def cmd_attach(args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Progress

    with _Session(args) as api:
        run_id = _resolve(api, args.run, ("subagent",), args.session)["id"]
        progress = Progress(text_out=sys.stdout)
        try:
            view = _follow(api, run_id, progress, time.monotonic())
        finally:
            progress.done()
    # The text went to stdout as it came; only how the run ended is left to say.
    return _finish_run(view, as_json=False, print_final=False)


def _foreground(api: Api, args: argparse.Namespace, spawned: dict[str, Any]) -> int:
    """Follow a run this command started: progress on stderr, the final message (or with --json
    the final status) on stdout, permission requests asked; Ctrl-C cancels the run."""
    from boocode_mcp.cli_render import Progress

    progress = None if args.quiet else Progress()
    run_id = spawned["subagent_id"]
    if progress is not None:
        what = f"retry of {spawned['retry_of'][:8]}, " if spawned.get("retry_of") else ""
        progress.status(f"subagent {run_id[:8]} on {spawned['agent']} ({what}chat {spawned['chat_id'][:8]})")

    def respond(request_id: str, option_id: str) -> object:
        return api.call("respond_permission", subagent_id=run_id, request_id=request_id, option_id=option_id)

    asker = PermissionAsker(
        find_workspace(_workspace(args.workspace)),
        run_id,
        None if args.json else progress,
        respond,
        in_process=args.no_daemon,
    )
    try:
        view = _follow(api, run_id, progress, time.monotonic(), asker)
    except KeyboardInterrupt:
        # Ctrl-C cancels the run (session/cancel to its agent), then the command ends.
        api.call("cancel_subagent", subagent_id=run_id)
        if progress is not None:
            progress.done()
        raise
    if progress is not None:
        progress.done()
    return _finish_run(view, args.json)


def _follow(
    api: Api,
    run_id: str,
    progress: Progress | None,
    started: float,
    asker: PermissionAsker | None = None,
) -> dict[str, Any]:
    """Show a run's events as they arrive until it has ended; its final status."""
    seq = 0
    last_status = None
    while True:
        batch = api.call("watch", subagent_id=run_id, after_seq=seq, wait_seconds=WATCH_WAIT_S)
        seq = batch["next_seq"]
        view: dict[str, Any] = batch["status"]
        if progress is not None:
            for event in batch["events"]:
                progress.event(event["kind"], event["payload"])
            if view.get("status") != last_status:
                progress.status(_run_summary(view, started))
        if asker is not None:
            asker.handle(view.get("pending_permission"))
        last_status = view.get("status")
        if last_status in TERMINAL and not batch["events"]:
            return view


# -- workflows --------------------------------------------------------------------------------


def _workflow_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CliError(
            f'--args is not JSON ({e}); give a JSON object, e.g. --args \'{{"task": "..."}}\''
        ) from e
    if not isinstance(value, dict):
        raise CliError('--args must be a JSON object, e.g. --args \'{"task": "..."}\'')
    return value


def _workflow_run_id(api: Api, ident: str) -> str:
    return str(api.call("resolve_id", ident=ident, kinds=["workflow_run"])["id"])


def cmd_workflow(args: argparse.Namespace) -> int:
    return WORKFLOW_COMMANDS[args.workflow_command](args)


def cmd_workflow_ls(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        result = api.call("list_workflows")
    if args.json:
        _print_json(result)
    else:
        from boocode_mcp.cli_render import Renderer

        Renderer().workflows(result["workflows"], result["warnings"])
    return 0


def _finish_workflow(view: dict[str, Any], as_json: bool) -> int:
    from boocode_mcp.workflow_progress import summary

    if as_json:
        _print_json(view)
    elif view.get("status") == "completed":
        _print_json(view.get("result"))
    if view.get("status") == "completed":
        return 0
    _say(summary(view))
    return 1


def cmd_workflow_run(args: argparse.Namespace) -> int:
    from boocode_mcp.cli_render import Progress
    from boocode_mcp.workflow_progress import Follower

    progress = None if args.quiet else Progress()
    follower = Follower()
    with _Session(args) as api:
        started = api.call("run_workflow", name=args.name, args=_workflow_args(args.args))
        run_id = started["workflow_run_id"]
        if progress is not None:
            progress.status(f"workflow {started['name']}: run {run_id} ({started['status']})")
        try:
            while True:
                view = api.call("workflow_status", workflow_run_id=run_id, wait_seconds=WATCH_WAIT_S)
                if progress is not None:
                    for line in follower.lines(view):
                        progress.status(line)
                if view["status"] in TERMINAL:
                    break
        except KeyboardInterrupt:
            # Ctrl-C cancels the run and its running steps, then the command ends.
            api.call("cancel_workflow", workflow_run_id=run_id)
            if progress is not None:
                progress.done()
            raise
    if progress is not None:
        progress.done()
    return _finish_workflow(view, args.json)


def cmd_workflow_status(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        view = api.call("workflow_status", workflow_run_id=_workflow_run_id(api, args.id))
    if args.json:
        _print_json(view)
    else:
        from boocode_mcp.cli_render import Renderer

        Renderer().workflow_run(view)
    return 0


def cmd_workflow_cancel(args: argparse.Namespace) -> int:
    with _Session(args) as api:
        result = api.call("cancel_workflow", workflow_run_id=_workflow_run_id(api, args.id))
    if args.json:
        _print_json(result)
    else:
        sys.stdout.write(f"workflow run {result['workflow_run_id']}: {result['status']}\n")
    return 0


WORKFLOW_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ls": cmd_workflow_ls,
    "run": cmd_workflow_run,
    "status": cmd_workflow_status,
    "cancel": cmd_workflow_cancel,
}

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "acp": cmd_acp,
    "daemon": cmd_daemon,
    "ui": cmd_ui,
    "run": cmd_run,
    "send": cmd_send,
    "retry": cmd_retry,
    "attach": cmd_attach,
    "inbox": cmd_inbox,
    "stats": cmd_stats,
    "respond": cmd_respond,
    "ls": cmd_ls,
    "show": cmd_show,
    "patches": cmd_patches,
    "apply": cmd_apply,
    "agents": cmd_agents,
    "trust": cmd_trust,
    "traces": cmd_traces,
    "memory": cmd_memory,
    "workflow": cmd_workflow,
    "worker": cmd_worker,
}

__all__ = ["COMMANDS", "CliError", "build_parser", "main", "mcp_main"]

if __name__ == "__main__":
    main()
