"""Finding workflows: `<workspace>/.boocode/workflows/*.js` over `~/.config/boocode/workflows/*.js`
over the catalog shipped in the package, by name.

A workflow file is JavaScript, so what it defines (its name, description and args schema) is known
only by evaluating it: each file is described once in a sandbox, and remembered by the SHA-256 of
its text, so a listing re-reads only the files that changed. A file that cannot be used is skipped
and reported with the reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

Source = Literal["workspace", "user", "builtin"]
CATALOG_DIR = Path(__file__).with_name("catalog")
MAX_FILE_BYTES = 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Evaluates files in the sandbox: (path, text) pairs → what each defines, or why it cannot.
Describe = Callable[[Sequence[tuple[str, str]]], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Definition:
    """A usable workflow file."""

    name: str
    description: str
    args_schema: dict[str, Any] | None
    source: Source
    path: Path
    text: str


@dataclass(frozen=True)
class Problem:
    """A workflow file that was skipped, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class Scan:
    definitions: dict[str, Definition]
    problems: list[Problem]


def _check(meta: dict[str, Any]) -> str | None:
    """Why what a file defines is not a usable workflow, or None."""
    name = meta.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        return (
            f"workflow.name must be 1-64 letters, digits, '.', '_' or '-' starting with a letter or "
            f"digit (got {name!r})"
        )
    if not isinstance(meta.get("description"), str) or not meta["description"].strip():
        return "workflow.description must be a non-empty string"
    if meta.get("run") != "function":
        return "workflow.run must be a function run(args)"
    schema = meta.get("args")
    if schema is not None:
        if not isinstance(schema, dict):
            return "workflow.args must be a JSON Schema object"
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            return f"workflow.args is not a valid JSON Schema: {e.message}"
    return None


class Discovery:
    """The workflows of one workspace, layered workspace > user > built-in."""

    def __init__(self, layers: Sequence[tuple[Source, Path]], describe: Describe) -> None:
        self._layers = list(layers)
        self._describe = describe
        # sha256 of a file's text -> what it defines ({"value": {...}} or {"error": "..."}).
        self._described: dict[str, dict[str, Any]] = {}

    async def scan(self) -> Scan:
        files: list[tuple[Source, Path, str, str]] = []
        problems: list[Problem] = []
        for source, directory in self._layers:
            for path in sorted(directory.glob("*.js")) if directory.is_dir() else []:
                try:
                    data = path.read_bytes() if path.is_file() else None
                except OSError as e:
                    problems.append(Problem(str(path), f"cannot be read: {e.strerror}"))
                    continue
                if data is None:
                    continue
                if len(data) > MAX_FILE_BYTES:
                    problems.append(Problem(str(path), f"is larger than {MAX_FILE_BYTES // 1024} KB"))
                    continue
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    problems.append(Problem(str(path), "is not UTF-8 text"))
                    continue
                files.append((source, path, text, hashlib.sha256(data).hexdigest()))
        new = {digest: (str(path), text) for _, path, text, digest in files if digest not in self._described}
        if new:
            digests = list(new)
            for digest, answer in zip(digests, await self._describe([new[d] for d in digests]), strict=True):
                self._described[digest] = answer
        definitions: dict[str, Definition] = {}
        seen: dict[tuple[Source, str], Path] = {}
        for source, path, text, digest in files:
            answer = self._described[digest]
            if "error" in answer:
                problems.append(Problem(str(path), str(answer["error"])))
                continue
            meta = answer.get("value") or {}
            reason = _check(meta)
            if reason is not None:
                problems.append(Problem(str(path), reason))
                continue
            name = str(meta["name"])
            if (source, name) in seen:
                problems.append(
                    Problem(
                        str(path), f"{seen[(source, name)]} already defines workflow {name!r}; rename one"
                    )
                )
                continue
            seen[(source, name)] = path
            # Layers come in order of precedence: a name taken by an earlier layer stays its.
            definitions.setdefault(
                name,
                Definition(
                    name=name,
                    description=str(meta["description"]),
                    args_schema=meta.get("args"),
                    source=source,
                    path=path,
                    text=text,
                ),
            )
        return Scan(dict(sorted(definitions.items())), problems)
