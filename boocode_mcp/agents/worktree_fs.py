"""The files of one worktree as an agent's `fs/*` requests reach them: confined, race-free.

An agent controls every byte of its worktree and can change it while BooCode serves a request
(turn a directory into a symlink to somewhere else between a check and the use). So a path is
never checked and then opened by name: it is split into components and walked from a handle on
the worktree's root, each component opened relative to its parent's handle with `O_NOFOLLOW`.
No symlink is ever followed (one in the way refuses the request), so what is opened is inside the
worktree whatever the agent does meanwhile. Missing parent directories are made the same way.

The worktree's git metadata is off limits: a `.git` component anywhere in a path refuses it, since
an agent that wrote `.git` could point BooCode's own git at a repository and config of its choosing.

Everything here blocks. The ACP client runs requests for small files on the event loop (a few
system calls cost less than the trip to a worker thread) and the others in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO the agent planted must fail or return at once, never wait for a peer.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Linux answers ENOTDIR for a symlink opened with O_DIRECTORY|O_NOFOLLOW, ELOOP without O_DIRECTORY;
# the BSDs answer EMLINK.
_REFUSED_LINK = {errno.ELOOP, errno.EMLINK, errno.ENOTDIR}


class FsRefused(Exception):
    """A request the agent must be told no to; the message names the path and why."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


def is_git_metadata(name: str) -> bool:
    # Case-insensitive (and trailing dots/spaces ignored) as git itself treats ".git" on the
    # filesystems that fold case or strip them.
    return name.rstrip(". ").lower() == ".git"


class WorktreeFiles:
    """Read and write text files under `root`, as described in the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)

    def parts(self, path: str) -> list[str]:
        """The components of `path` below the root (empty for the root itself), or a refusal.

        Relative paths are taken from the root. `..` is resolved lexically, which is exact here:
        the walk follows no symlink, so every component is the real directory it names.
        """
        if not path:
            raise FsRefused("the path is empty; give an absolute path inside the worktree")
        if "\x00" in path:
            raise FsRefused(f"path {path!r} is not a valid path: it contains a NUL byte")
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(self.root, path))
        if full == self.root:
            return []
        if not full.startswith(self.root.rstrip(os.sep) + os.sep):
            raise FsRefused(
                f"path {path} is outside the worktree {self.root}; agents may only touch files in it"
            )
        parts = full[len(self.root.rstrip(os.sep)) + 1 :].split(os.sep)
        if any(is_git_metadata(p) for p in parts):
            raise FsRefused(
                f"path {path} is in the worktree's git metadata (.git); agents may not read or write it"
            )
        return parts

    def read_text(self, path: str) -> str:
        with self._open_regular(path) as (f, _):
            return f.read().decode("utf-8", errors="replace")

    def read_small_text(self, path: str, *, limit: int) -> str | None:
        """The file's text; None, without reading it, when it is larger than `limit` bytes."""
        with self._open_regular(path) as (f, st):
            return None if st.st_size > limit else f.read().decode("utf-8", errors="replace")

    @contextlib.contextmanager
    def _open_regular(self, path: str) -> Iterator[tuple[BinaryIO, os.stat_result]]:
        with open(self._open_file(path, _READ, create=False), "rb", closefd=True) as f:
            st = os.fstat(f.fileno())
            self._check_regular(st, path)
            yield f, st

    def write_text(self, path: str, content: str) -> None:
        data = content.encode("utf-8")
        with open(self._open_file(path, _WRITE, create=True), "wb", closefd=True) as f:
            self._check_regular(os.fstat(f.fileno()), path)
            # Truncated only once it is known to be a regular file of the worktree.
            f.truncate(0)
            f.write(data)

    def _open_file(self, path: str, flags: int, *, create: bool) -> int:
        """A descriptor of the file `path` names, opened with `flags` (creating missing parent
        directories when `create`)."""
        parts = self.parts(path)
        if not parts:
            raise FsRefused(f"path {path} is a directory, not a text file")
        parent = self._walk(path, parts[:-1], create=create)
        try:
            return self._open(parent, parts[-1], flags, path, creating=create)
        finally:
            os.close(parent)

    # --- the walk ------------------------------------------------------------------------

    def _walk(self, path: str, dirs: list[str], *, create: bool) -> int:
        """A handle on the directory `dirs` names below the root; made when missing if `create`."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in dirs:
                try:
                    child = self._open(fd, name, _DIR, path, creating=False)
                except FsRefused as e:
                    if not (create and e.not_found):
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    # Opened again without following: whatever now sits at `name` (the agent may
                    # have swapped in a symlink since the mkdir) is checked like anything else.
                    child = self._open(fd, name, _DIR, path, creating=True)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open(self, dir_fd: int, name: str, flags: int, path: str, *, creating: bool) -> int:
        try:
            return os.open(name, flags, 0o666, dir_fd=dir_fd)
        except FileNotFoundError:
            raise FsRefused(f"{path} does not exist", not_found=True) from None
        except IsADirectoryError:
            raise FsRefused(f"path {path} is a directory, not a text file") from None
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise FsRefused(f"path {path} is not a valid path: a component is too long") from None
            if e.errno == errno.ENXIO:
                raise FsRefused(f"path {path} is not a regular file") from None
            if e.errno not in _REFUSED_LINK:
                raise
        # Why it was refused decides only the message; the refusal itself does not depend on it.
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            raise FsRefused(f"{path} does not exist", not_found=True) from None
        if stat.S_ISLNK(st.st_mode):
            raise FsRefused(
                f"path {path} goes through a symlink ({name}); file access follows no symlinks, "
                "so use the path of a real file inside the worktree"
            )
        if creating:
            raise FsRefused(f"path {path} cannot be written: {name} is not a directory")
        raise FsRefused(f"{path} does not exist ({name} is not a directory)", not_found=True)

    @staticmethod
    def _check_regular(st: os.stat_result, path: str) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise FsRefused(f"path {path} is a directory, not a text file")
        if not stat.S_ISREG(st.st_mode):
            raise FsRefused(f"path {path} is not a regular file")
