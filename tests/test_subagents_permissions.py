"""The permission queue on its own: policy, answers, validation, deadlines failing closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from boocode_mcp.agents.events import PermissionOptionInfo, PermissionRequestEvent
from boocode_mcp.config import PermissionsConfig
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.store import Database, chats, open_db, permissions, sessions, subagents
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.views import PendingPermission

pytestmark = pytest.mark.anyio

ALLOW = PermissionOptionInfo("a", "Allow", "allow_once")
REJECT = PermissionOptionInfo("r", "Reject", "reject_once")


def request(*options: PermissionOptionInfo) -> PermissionRequestEvent:
    return PermissionRequestEvent(request_id="wire-1", tool_call_id="t", title="Write x", options=options)


@pytest.fixture
async def db(store_target: str | Path) -> AsyncIterator[Database]:
    async with open_db(store_target) as conn:
        await sessions.create(conn, "s")
        await chats.insert(conn, chat_id="c", session_id="s", agent="a", worktree="/w")
        await subagents.insert_if_chat_idle(
            conn,
            subagent_id="r",
            session_id="s",
            chat_id="c",
            agent="a",
            prompt="p",
            model=None,
            mode=None,
            owner_pid=1,
        )
        yield conn


class Recorder:
    def __init__(self) -> None:
        self.states: list[PendingPermission | None] = []
        self.waiting = anyio.Event()

    async def __call__(self, subagent_id: str, pending: PendingPermission | None) -> None:
        self.states.append(pending)
        if pending is not None:
            self.waiting.set()


async def test_auto_and_deny_answer_by_kind_without_queueing(db: Database) -> None:
    rec = Recorder()
    auto = PermissionQueue(db, PermissionsConfig(policy="auto"), rec).handler_for("s", "r")
    deny = PermissionQueue(db, PermissionsConfig(policy="deny"), rec).handler_for("s", "r")
    assert await auto(request(REJECT, ALLOW)) == "a"
    assert await deny(request(ALLOW, REJECT)) == "r"
    assert await deny(request(ALLOW)) is None  # no reject option: answered "cancelled"
    assert rec.states == []


async def asked(queue: PermissionQueue, rec: Recorder, meanwhile: Callable[[], None]) -> str | None:
    """The answer to a request of subagent "r", `meanwhile` called once it is pending."""
    handler = queue.handler_for("s", "r")
    answers: list[str | None] = []

    async def ask() -> None:
        answers.append(await handler(request(ALLOW, REJECT)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await rec.waiting.wait()
            meanwhile()
    [answer] = answers
    return answer


async def test_ask_waits_for_a_valid_answer(db: Database) -> None:
    rec = Recorder()
    queue = PermissionQueue(db, PermissionsConfig(policy="ask", timeout_s=60), rec)

    def answer() -> None:
        pending = queue.pending("r")
        assert pending is not None and [o.option_id for o in pending.options] == ["a", "r"]
        with pytest.raises(InvalidRequestError, match="valid option ids: a, r"):
            queue.respond("r", pending.request_id, "zzz")
        with pytest.raises(NotFoundError, match=pending.request_id):
            queue.respond("r", "not-it", "a")
        with pytest.raises(NotFoundError, match="no pending permission"):
            queue.respond("other", pending.request_id, "a")
        queue.respond("r", pending.request_id, "a")

    assert await asked(queue, rec, answer) == "a"
    assert queue.pending("r") is None
    assert rec.states[-1] is None
    [row] = await permissions.for_subagent(db, "r")
    assert (row.status, row.decision, row.title) == ("answered", "a", "Write x")


async def test_an_unanswered_request_fails_closed(db: Database) -> None:
    queue = PermissionQueue(db, PermissionsConfig(policy="ask", timeout_s=0.2), Recorder())
    handler = queue.handler_for("s", "r")
    with anyio.fail_after(5):
        assert await handler(request(ALLOW, REJECT)) == "r"
        assert await handler(request(ALLOW)) is None
    assert [(p.status, p.decision) for p in await permissions.for_subagent(db, "r")] == [
        ("timed_out", "r"),
        ("timed_out", None),
    ]


async def test_a_caller_handler_overrides_the_policy(db: Database) -> None:
    async def editor(req: PermissionRequestEvent) -> str | None:
        return "r"

    queue = PermissionQueue(db, PermissionsConfig(policy="auto"), Recorder())
    assert await queue.handler_for("s", "r", editor)(request(ALLOW, REJECT)) == "r"


async def test_cancel_answers_a_pending_request_cancelled(db: Database) -> None:
    rec = Recorder()
    queue = PermissionQueue(db, PermissionsConfig(policy="ask", timeout_s=60), rec)
    assert await asked(queue, rec, lambda: queue.cancel("r")) is None
    [row] = await permissions.for_subagent(db, "r")
    assert row.status == "cancelled"
