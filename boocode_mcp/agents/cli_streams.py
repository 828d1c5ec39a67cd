"""What a command-line agent prints on stdout, turned into AgentEvents.

Pure (no I/O): a parser is fed stdout as it arrives, in chunks of any size, and answers with the
events in it, the tool's own session id when the stream names one, and the error text the tool
reported in its stream (some tools print their failure there, not on stderr).

- ``text``: stdout is the agent's answer, streamed as text events.
- ``jsonl``: one JSON object a line, in one of the stream formats below, recognized from the
  first line that fits one. A line that is not JSON, or JSON of no known format, is passed back as
  `noise` (the backend logs it) and is not output.

  * opencode ``run --format json``: ``step_start``; ``text`` and ``reasoning`` with the whole part
    once it has ended; ``tool_use`` once the tool has finished (``part.tool``, ``part.callID``,
    ``part.state`` with ``status``, ``input``, ``output``, ``title``); ``step_finish`` with the
    step's ``tokens`` and ``cost``; ``error`` with ``error.name`` and ``error.data.message``.
    Every line names the session (``sessionID``).
  * stream-json, as qwen-code ``-o stream-json`` and claude ``-p --output-format stream-json``
    print it: ``system``/``init``; ``assistant`` messages whose content blocks are ``text``,
    ``thinking`` and ``tool_use``; ``user`` messages carrying ``tool_result`` blocks; a final
    ``result`` with the turn's total ``usage`` (and ``total_cost_usd`` from claude) and
    ``is_error``. Every line names the session (``session_id``).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from boocode_mcp.agents.events import (
    AgentEvent,
    ReasoningEvent,
    TextEvent,
    ToolCallEvent,
    ToolStatus,
    ToolUpdateEvent,
    UsageEvent,
)

# A separate message or text part starts on a new paragraph of the run's final message.
PART_SEPARATOR = "\n\n"
TITLE_HINT_CHARS = 80
_PATH_KEYS = ("file_path", "filePath", "absolute_path", "path", "notebook_path", "filepath")
_HINT_KEYS = ("command", "pattern", "query", "url", "description")


@dataclass
class Parsed:
    """What a piece of stdout held."""

    events: list[AgentEvent] = field(default_factory=list)
    session_id: str | None = None
    error: str | None = None
    noise: list[str] = field(default_factory=list)

    def merge(self, other: Parsed) -> None:
        self.events.extend(other.events)
        self.session_id = other.session_id or self.session_id
        self.error = other.error or self.error
        self.noise.extend(other.noise)


class StdoutParser(Protocol):
    def feed(self, data: bytes) -> Parsed: ...

    def finish(self) -> Parsed:
        """Whatever the end of the stream completes (a last line without a newline)."""
        ...


def parser_for(kind: Literal["text", "jsonl"]) -> StdoutParser:
    return TextParser() if kind == "text" else JsonlParser()


class TextParser:
    """stdout as the answer's text, decoded as UTF-8 across chunk boundaries."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> Parsed:
        return self._text(self._decoder.decode(data))

    def finish(self) -> Parsed:
        return self._text(self._decoder.decode(b"", final=True))

    @staticmethod
    def _text(text: str) -> Parsed:
        return Parsed(events=[TextEvent(text=text)] if text else [])


class JsonlParser:
    """JSON lines in one of the known stream formats (see the module docstring)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._dialect: _Dialect | None = None

    def feed(self, data: bytes) -> Parsed:
        out = Parsed()
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            out.merge(self.line(line.decode("utf-8", errors="replace")))
        return out

    def finish(self) -> Parsed:
        rest, self._buffer = self._buffer, b""
        return self.line(rest.decode("utf-8", errors="replace"))

    def line(self, text: str) -> Parsed:
        """One line of the stream."""
        text = text.strip()
        if not text:
            return Parsed()
        try:
            obj = json.loads(text)
        except ValueError:
            return Parsed(noise=[text])
        if not isinstance(obj, dict):
            return Parsed(noise=[text])
        if self._dialect is None:
            self._dialect = _detect(obj)
            if self._dialect is None:
                return Parsed(noise=[text])
        return self._dialect.map(obj)


class _Dialect(Protocol):
    def map(self, obj: Mapping[str, Any]) -> Parsed: ...


def _detect(obj: Mapping[str, Any]) -> _Dialect | None:
    if "sessionID" in obj or isinstance(obj.get("part"), dict):
        return OpencodeDialect()
    if obj.get("type") in ("system", "assistant", "user", "result", "stream_event") and "session_id" in obj:
        return StreamJsonDialect()
    return None


# --- shared helpers --------------------------------------------------------------------------


def tool_kind(name: str) -> str:
    """The ACP tool kind a tool's name suggests (read, edit, execute, search, fetch, think, other)."""
    n = name.lower()
    if "todo" in n or "think" in n:
        return "think"
    if any(w in n for w in ("write", "edit", "patch", "replace", "create")):
        return "edit"
    if "delete" in n or n in ("rm", "remove"):
        return "delete"
    if "read" in n:
        return "read"
    if any(w in n for w in ("bash", "shell", "command", "exec", "terminal")):
        return "execute"
    if any(w in n for w in ("grep", "glob", "search", "list", "find")) or n == "ls":
        return "search"
    if "fetch" in n or "web" in n:
        return "fetch"
    return "other"


def _locations(*sources: Any) -> tuple[str, ...]:
    found: list[str] = []
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in _PATH_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value and value not in found:
                found.append(value)
    return tuple(found)


def _title(name: str, hint: str | None) -> str:
    if not hint or hint == name:
        return name
    hint = " ".join(hint.split())
    if len(hint) > TITLE_HINT_CHARS:
        # A path says most at its end, anything else at its start.
        keep = TITLE_HINT_CHARS - 1
        hint = "…" + hint[-keep:] if hint.startswith("/") else hint[:keep] + "…"
    return f"{name} {hint}"


def _hint(tool_input: Any) -> str | None:
    if not isinstance(tool_input, Mapping):
        return None
    paths = _locations(tool_input)
    if paths:
        return paths[0]
    for key in _HINT_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _Text:
    """Text parts of one turn: each new part starts a paragraph; a part seen again adds only what
    it gained since."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._any = False

    def event(self, part_id: str | None, text: str, *, reasoning: bool = False) -> AgentEvent | None:
        if part_id is not None and part_id in self._seen:
            new = text[self._seen[part_id] :]
        else:
            new = text
            if not reasoning and self._any and new:
                new = PART_SEPARATOR + new
        if part_id is not None:
            self._seen[part_id] = len(text)
        if not text or not new:
            return None
        if reasoning:
            return ReasoningEvent(text=new)
        self._any = True
        return TextEvent(text=new)


# --- opencode ---------------------------------------------------------------------------------

_OPENCODE_STATUS: dict[str, ToolStatus] = {
    "pending": "pending",
    "running": "in_progress",
    "completed": "completed",
    "error": "failed",
}


class OpencodeDialect:
    """opencode `run --format json` (see the module docstring)."""

    def __init__(self) -> None:
        self._text = _Text()
        self._tools: set[str] = set()

    def map(self, obj: Mapping[str, Any]) -> Parsed:
        out = Parsed(session_id=_str(obj.get("sessionID")))
        kind = obj.get("type")
        part = obj.get("part")
        part = part if isinstance(part, Mapping) else {}
        if kind in ("text", "reasoning"):
            event = self._text.event(
                _str(part.get("id")), _str(part.get("text")) or "", reasoning=kind == "reasoning"
            )
            if event is not None:
                out.events.append(event)
        elif kind == "tool_use":
            out.events.extend(self._tool(part))
        elif kind == "step_finish":
            tokens = part.get("tokens")
            tokens = tokens if isinstance(tokens, Mapping) else {}
            usage = UsageEvent(
                input_tokens=_int(tokens.get("input")),
                output_tokens=_int(tokens.get("output")),
                cost=_float(part.get("cost")),
            )
            if (usage.input_tokens, usage.output_tokens, usage.cost) != (None, None, None):
                out.events.append(usage)
        elif kind == "error":
            out.error = _opencode_error(obj.get("error"))
        return out

    def _tool(self, part: Mapping[str, Any]) -> list[AgentEvent]:
        call_id = _str(part.get("callID")) or _str(part.get("id")) or "tool"
        name = _str(part.get("tool")) or "tool"
        state = part.get("state")
        state = state if isinstance(state, Mapping) else {}
        status = _OPENCODE_STATUS.get(str(state.get("status")), "in_progress")
        tool_input = state.get("input")
        locations = _locations(tool_input, state.get("metadata"))
        title = _title(name, _str(state.get("title")) or _hint(tool_input))
        events: list[AgentEvent] = []
        if call_id not in self._tools:
            self._tools.add(call_id)
            started: ToolStatus = "in_progress" if status in ("completed", "failed") else status
            events.append(
                ToolCallEvent(
                    tool_call_id=call_id,
                    title=title,
                    tool_kind=tool_kind(name),
                    status=started,
                    locations=locations,
                    raw_input=tool_input,
                )
            )
            if started == status:
                return events
        output = state.get("output") if status == "completed" else state.get("error")
        events.append(
            ToolUpdateEvent(
                tool_call_id=call_id,
                status=status,
                title=title,
                locations=locations,
                content_text=output if isinstance(output, str) else None,
                raw_output=output,
            )
        )
        return events


def _message(error: Any) -> str | None:
    """An error's text: a string, or an object's `message` (also under `data`)."""
    if not isinstance(error, Mapping):
        return _str(error)
    data = error.get("data")
    return _str(error.get("message")) or (_str(data.get("message")) if isinstance(data, Mapping) else None)


def _opencode_error(error: Any) -> str:
    name = _str(error.get("name")) if isinstance(error, Mapping) else None
    text = ": ".join(p for p in (name, _message(error)) if p)
    return text or json.dumps(error)


# --- stream-json (qwen-code, claude) ------------------------------------------------------------


class StreamJsonDialect:
    """The stream-json of qwen-code and claude (see the module docstring)."""

    def __init__(self) -> None:
        self._text = _Text()
        self._blocks = 0

    def map(self, obj: Mapping[str, Any]) -> Parsed:
        out = Parsed(session_id=_str(obj.get("session_id")))
        kind = obj.get("type")
        message = obj.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        if kind == "assistant":
            for block in blocks:
                out.events.extend(self._assistant_block(block))
        elif kind == "user":
            out.events.extend(_tool_result(b) for b in blocks if b.get("type") == "tool_result")
        elif kind == "result":
            usage = obj.get("usage")
            usage = usage if isinstance(usage, Mapping) else {}
            out.events.append(
                UsageEvent(
                    input_tokens=_int(usage.get("input_tokens")),
                    output_tokens=_int(usage.get("output_tokens")),
                    cost=_float(obj.get("total_cost_usd")),
                    # The result's usage is the turn's total, not one more step's worth.
                    cumulative=True,
                )
            )
            if obj.get("is_error"):
                reason = _message(obj.get("error")) or _str(obj.get("result"))
                out.error = reason or str(obj.get("subtype") or "error")
        return out

    def _assistant_block(self, block: Mapping[str, Any]) -> list[AgentEvent]:
        kind = block.get("type")
        self._blocks += 1
        # Blocks carry no id; each is a part of its own.
        part_id = f"block-{self._blocks}"
        if kind == "text":
            event = self._text.event(part_id, _str(block.get("text")) or "")
            return [event] if event is not None else []
        if kind == "thinking":
            event = self._text.event(part_id, _str(block.get("thinking")) or "", reasoning=True)
            return [event] if event is not None else []
        if kind == "tool_use":
            name = _str(block.get("name")) or "tool"
            tool_input = block.get("input")
            return [
                ToolCallEvent(
                    tool_call_id=_str(block.get("id")) or part_id,
                    title=_title(name, _hint(tool_input)),
                    tool_kind=tool_kind(name),
                    status="in_progress",
                    locations=_locations(tool_input),
                    raw_input=tool_input,
                )
            ]
        return []


def _tool_result(block: Mapping[str, Any]) -> ToolUpdateEvent:
    content = block.get("content")
    if isinstance(content, list):
        text: str | None = "".join(
            str(c.get("text") or "") for c in content if isinstance(c, Mapping) and c.get("type") == "text"
        )
    else:
        text = _str(content)
    return ToolUpdateEvent(
        tool_call_id=_str(block.get("tool_use_id")) or "tool",
        status="failed" if block.get("is_error") else "completed",
        content_text=text,
        raw_output=content,
    )
