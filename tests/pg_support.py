"""A throwaway PostgreSQL cluster for the tests and benchmarks: `initdb` into a fresh directory, the
server on a unix socket only (no TCP port), one database per test, stopped at the end; and
`boocode worker` processes on it.

PostgreSQL refuses to run as root; run as root (CI, containers), the cluster runs as `nobody`
through `setpriv`, in a directory made for it. The server's own binaries (initdb, pg_ctl) are found
on PATH or under /usr/lib/postgresql/*/bin; without them `find_bin_dir` says why, and the tests
that need PostgreSQL skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

# The cluster's superuser; with trust authentication on its socket any local user may be it.
SUPERUSER = "boocode"
START_TIMEOUT_S = 30
READY_TIMEOUT_S = 30


def find_bin_dir() -> tuple[Path | None, str]:
    """The directory holding initdb and pg_ctl, or None and why it is missing."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(found)).parent, ""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return Path(d), ""
    return None, (
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
        "apt-get install postgresql (CI's .ci/run installs it)"
    )


class Cluster:
    """A running throwaway cluster; `url(name)` reaches one of its databases."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="boocode-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self._as_nobody = os.geteuid() == 0
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _run(self, *argv: str) -> None:
        cmd = [str(self._bin / argv[0]), *argv[1:]]
        if self._as_nobody:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            output = done.stderr or done.stdout
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {output}")

    def start(self) -> None:
        self.socket_dir.mkdir()
        if self._as_nobody:
            for p in (self.root, self.socket_dir):
                os.chown(p, 65534, 65534)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
            "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip

        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.data / "postmaster.pid"),
             str(self.root)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A test process killed outright (SIGKILL, a CI timeout) runs no teardown: this watcher, in a session
# of its own, stops the server (SIGQUIT: immediate shutdown) and removes its directory once the
# process that started the cluster is gone, so no cluster outlives its test run.
_WATCHDOG = """
import os, shutil, signal, sys, time
owner, pid_file, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while True:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
try:
    with open(pid_file) as f:
        os.kill(int(f.readline()), signal.SIGQUIT)
    time.sleep(2)
except (OSError, ValueError):
    pass
shutil.rmtree(root, ignore_errors=True)
"""


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A cluster for the block (RuntimeError naming the cause when PostgreSQL is missing or fails)."""
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(why)
    cluster = Cluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class Worker:
    """A `boocode worker` process in its own process group, with its stderr collected."""

    def __init__(self, clone: Path, url: str) -> None:
        self.clone = clone
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "boocode_mcp.cli", "worker", "--db", url, "--repo", str(clone)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "ready:" in line:
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> None:
        assert self.ready.wait(READY_TIMEOUT_S) and self.proc.poll() is None, "".join(self.lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
