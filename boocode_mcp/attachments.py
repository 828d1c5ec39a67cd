"""Images in prompts: taken from a workspace file or a data URI, checked, and stored
content-addressed under `.boocode/attachments/` (the same image twice is one file), so a run keeps
what its prompt carried and a retry sends the very same bytes.

Only image formats every provider takes are accepted (PNG, JPEG, GIF, WebP), recognised by their
first bytes rather than by a file name or a declared type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from boocode_mcp.config import BOOCODE_DIR, ImagesConfig
from boocode_mcp.errors import InvalidRequestError, NotFoundError

ATTACHMENTS_DIR = "attachments"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}
# How much of a source an error quotes.
_SOURCE_CHARS = 60


@dataclass(frozen=True)
class Attachment:
    """A stored image: its content address and type."""

    sha256: str
    mime_type: str
    size: int

    @property
    def file_name(self) -> str:
        return f"{self.sha256}.{_EXTENSIONS[self.mime_type]}"

    def record(self) -> dict[str, Any]:
        """As kept on the run (`subagents.images_json`)."""
        return {"sha256": self.sha256, "mime_type": self.mime_type, "size": self.size}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Attachment:
        return cls(sha256=str(record["sha256"]), mime_type=str(record["mime_type"]), size=int(record["size"]))


def sniff(data: bytes) -> str | None:
    """The image type of `data` from its first bytes, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _quote(source: str) -> str:
    return repr(source if len(source) <= _SOURCE_CHARS else source[:_SOURCE_CHARS] + "…")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


class Attachments:
    """The attachment store of one workspace."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(os.path.realpath(workspace))
        self.directory = self.workspace / BOOCODE_DIR / ATTACHMENTS_DIR

    async def store(self, sources: Sequence[str], limits: ImagesConfig) -> list[Attachment]:
        """Check and store each image (a path inside the workspace, absolute or relative to it, or
        a `data:image/...;base64,` URI); the first bad one is an error naming it and what to do."""
        if len(sources) > limits.max_count:
            raise InvalidRequestError(
                f"{len(sources)} images, but a prompt may carry at most {limits.max_count} "
                "([images] max_count); send fewer"
            )
        return [await self._store_one(i, source, limits) for i, source in enumerate(sources, 1)]

    async def _store_one(self, index: int, source: str, limits: ImagesConfig) -> Attachment:
        what = f"image {index} ({_quote(source)})"
        if source.startswith("data:"):
            data = _decode_data_uri(what, source, limits.max_bytes)
        else:
            data = await anyio.to_thread.run_sync(self._read_file, what, source, limits.max_bytes)
        mime = sniff(data)
        if mime is None:
            raise InvalidRequestError(
                f"{what} is not a PNG, JPEG, GIF or WebP image; convert it to one of those"
            )
        attachment = Attachment(sha256=hashlib.sha256(data).hexdigest(), mime_type=mime, size=len(data))
        await anyio.to_thread.run_sync(self._write, attachment, data)
        return attachment

    def _read_file(self, what: str, source: str, max_bytes: int) -> bytes:
        given = Path(source).expanduser()
        path = Path(os.path.realpath(given if given.is_absolute() else self.workspace / given))
        if path != self.workspace and self.workspace not in path.parents:
            raise InvalidRequestError(
                f"{what} is outside the workspace {self.workspace}; give a path inside it (absolute or "
                "relative to it) or the image as a data URI"
            )
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise InvalidRequestError(f"{what} is not a regular file; give an image file")
            if size > max_bytes:
                raise _too_big(what, size, max_bytes)
            # Opened by its resolved path, so a link swapped in after the check is not followed.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise NotFoundError(f"{what} does not exist (looked at {path})") from None
        except OSError as e:
            raise InvalidRequestError(f"{what} cannot be read ({e.strerror}); check its path") from None
        if len(data) > max_bytes:
            raise _too_big(what, len(data), max_bytes)
        return data

    def path(self, attachment: Attachment) -> Path:
        return self.directory / attachment.file_name

    def _write(self, attachment: Attachment, data: bytes) -> None:
        target = self.path(attachment)
        if target.is_file() and target.stat().st_size == attachment.size:
            return  # content-addressed: the same bytes are already there
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(f".{attachment.sha256}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    async def load(self, attachment: Attachment) -> bytes:
        """A stored image's bytes; an error says which one is missing."""
        try:
            data = await anyio.Path(self.path(attachment)).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"the stored image {attachment.file_name} is gone from {self.directory}; attach it again"
            ) from None
        if hashlib.sha256(data).hexdigest() != attachment.sha256:
            raise InvalidRequestError(
                f"the stored image {attachment.file_name} in {self.directory} was changed; attach it again"
            )
        return data


def _too_big(what: str, size: int, max_bytes: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"{what} is {_size(size)}; an image may be at most {_size(max_bytes)} "
        "([images] max_bytes): send a smaller image"
    )


def _decode_data_uri(what: str, uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.endswith(";base64") or not header[5:].startswith("image/"):
        raise InvalidRequestError(
            f"{what} is not a base64 image data URI; give data:image/<type>;base64,<data> or a file path"
        )
    # Four base64 characters carry three bytes: refuse an oversized image before decoding it.
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise _too_big(what, len(payload) // 4 * 3, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{what} has invalid base64 data; encode the image again") from None
    if len(data) > max_bytes:
        raise _too_big(what, len(data), max_bytes)
    return data
