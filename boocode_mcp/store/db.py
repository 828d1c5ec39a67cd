"""The one interface every store module talks to, whichever database is behind it.

A store module writes its SQL once, in the portable subset both dialects share: `?` and `:name`
placeholders, `INSERT … ON CONFLICT`, `RETURNING`, no `rowid`, no engine-specific functions. The
`Database` below runs it on sqlite (`SqliteDatabase`, aiosqlite: the embedded default) or on
PostgreSQL (`store.postgres.PostgresDatabase`, psycopg 3 with a connection pool, which rewrites
the placeholders). Where the two must differ (memory search, claiming runs across hosts), the
module asks `db.dialect` and keeps each dialect's SQL beside the other.

Results are read in full before `execute` returns (the store's statements are bounded), so a
caller never holds a cursor across an await. Driver errors come out as `DatabaseError` (a
`StoreError`), a broken constraint as its subclass `ConstraintError`, whatever the dialect.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

import aiosqlite
import anyio

from boocode_mcp.errors import StoreError

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")

log = logging.getLogger(__name__)


class DatabaseError(StoreError):
    """A statement failed in the database (the driver's message is kept)."""


class ConstraintError(DatabaseError):
    """A statement broke a constraint: a duplicate key, a missing foreign row, a failed CHECK."""


class Row(Protocol):
    """A result row: by column position or by column name."""

    def __getitem__(self, key: int | str, /) -> Any: ...


@dataclass(frozen=True)
class Result:
    """A statement's rows (read in full) and how many rows it changed."""

    rows: list[Row]
    rowcount: int

    async def fetchall(self) -> list[Row]:
        return self.rows

    async def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None


@dataclass(frozen=True)
class Notification:
    channel: str
    payload: str


class Database(Protocol):
    """A store's connection: statements, transactions, and (on PostgreSQL) change notifications."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def where(self) -> str:
        """The database as errors name it (a path, or a URL without its password)."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> Result: ...

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def executemany(self, sql: str, params: Iterable[Params]) -> None: ...

    def transaction(self, *, quick: bool = False) -> AbstractAsyncContextManager[Database]:
        """A transaction: the statements run through the `Database` it yields land together or not
        at all, and no other task's statements land inside it. Nested, it is a savepoint.

        `quick`: its statements are few and touch few rows (the caller's promise), so sqlite runs it
        on the event loop when it can take the write lock at once (see INLINE_BUDGET_S)."""
        ...

    def listen(self, channels: Sequence[str]) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        """The notifications sent on `channels` from now on (PostgreSQL `LISTEN`); on sqlite the
        iterator never yields, and callers fall back to polling."""
        ...

    async def close(self) -> None: ...


# -- sqlite ------------------------------------------------------------------------------------


def _sqlite_error(e: sqlite3.Error, where: str) -> DatabaseError:
    kind = ConstraintError if isinstance(e, sqlite3.IntegrityError) else DatabaseError
    return kind(f"{where}: {e}")


# A statement outside a transaction runs right on the event loop when it can finish at once: a trip
# to the connection's thread and back costs 60-200 µs, more than most of the store's statements take
# to run, and a turn makes some twenty of them. "At once": it needs no lock another connection holds
# (its busy timeout is 0) and it is done within INLINE_BUDGET_S (a progress handler interrupts it
# otherwise). A statement refused or interrupted so has changed nothing (autocommit: it is its own
# transaction, rolled back), and it runs again on the thread, where it may wait for the lock and
# take its time; its SQL goes to the thread from then on. The loop never waits on another process.
INLINE_BUDGET_S = 0.002
# VM instructions between two looks at the clock by the progress handler.
_PROGRESS_STEPS = 500
# SQL found too slow to run inline, remembered (up to this many) so it is not tried again.
_SLOW_SQL_MAX = 512
# sqlite's primary result codes that mean "not now": busy, locked (another connection holds a lock
# it needs: the connection's busy timeout is 0, so nothing waits on the loop), interrupted.
_LOCKED = frozenset({5, 6})
_INTERRUPTED = 9
_NOT_NOW = _LOCKED | {_INTERRUPTED}
# A statement on the connection's thread refused for a lock is tried again after these pauses (and
# then every last one), up to the busy timeout: the backing off of sqlite's own busy handler.
_BUSY_PAUSES_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.05, 0.05, *(0.1,) * 100)
# Rows changed between two WAL checkpoints. A checkpoint syncs the files (milliseconds, more on a
# busy disk), so the connection's automatic one (made by the commit that crosses 1000 pages, which
# may be one made on the loop) is off; `_Checkpointer` makes them on a thread and connection of its
# own, PASSIVE (never waiting for a reader or writer), while the loop goes on.
CHECKPOINT_CHANGES = 500


def _code(e: sqlite3.Error) -> int:
    """sqlite's primary result code of an error (0 when the driver gives none)."""
    return int(getattr(e, "sqlite_errorcode", 0)) & 0xFF


def _in_transaction(c: sqlite3.Connection) -> bool:
    # A function, so that a check made earlier does not narrow what the type checker believes.
    return c.in_transaction


class _Checkpointer:
    """WAL checkpoints of one database file on a thread and connection of their own, made when
    asked (`request`, which never blocks); `close` ends the thread (joined, none is left)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._closing:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="boocode-sqlite-checkpoints", daemon=True
            )
            self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        self._closing = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._closing:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:
                    # The next one catches up; the WAL only grows meanwhile.
                    log.debug("checkpoint of %s failed: %s", self._path, e)
        finally:
            conn.close()


def _statement(sql: str, params: Params) -> Callable[[sqlite3.Connection], Result]:
    def work(c: sqlite3.Connection) -> Result:
        cur = c.execute(sql, params)
        rows = cur.fetchall()
        return Result(cast(list[Row], rows), cur.rowcount)

    return work


def _many(sql: str, batch: list[Params]) -> Callable[[sqlite3.Connection], None]:
    """`executemany` as one transaction (a savepoint inside one): refused or cut short, all of it
    is undone, so trying it again repeats nothing."""

    def work(c: sqlite3.Connection) -> None:
        nested = c.in_transaction
        c.execute("SAVEPOINT boocode_many" if nested else "BEGIN IMMEDIATE")
        try:
            c.executemany(sql, batch)
        except BaseException:
            # (An interrupted write has rolled the whole transaction back already.)
            if _in_transaction(c):
                undo = ("ROLLBACK TO boocode_many", "RELEASE boocode_many") if nested else ("ROLLBACK",)
                for statement in undo:
                    c.execute(statement)
            raise
        c.execute("RELEASE boocode_many" if nested else "COMMIT")

    return work


class _NotNow(Exception):
    """The statement could not run inline; it runs on the connection's thread instead."""


class _SqliteRunner:
    """Statements on the connection: inline on the event loop when they can finish at once (see
    INLINE_BUDGET_S), else on the connection's worker thread, one trip each (aiosqlite's `_execute`
    queues a callable there; the public API would take a trip for the statement and another for
    its rows). Its caller holds the database's lock: one statement at a time on the connection."""

    def __init__(self, conn: aiosqlite.Connection, where: str, busy_timeout_ms: int) -> None:
        self.conn = conn
        self.where = where
        self._busy_timeout_ms = busy_timeout_ms
        self._slow: set[str] = set()
        self._checkpoints = _Checkpointer(where) if where != ":memory:" else None
        self._checkpointed_at = 0

    def _inline(self, sql: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` run here, now; _NotNow when it cannot finish at once (having changed nothing)."""
        # aiosqlite's connection, used from the loop's thread: safe, as the lock the caller holds
        # keeps its worker thread idle meanwhile (the sqlite3 connection allows other threads).
        c: sqlite3.Connection = self.conn._conn
        if sql in self._slow or c.in_transaction:
            raise _NotNow
        deadline = time.perf_counter() + INLINE_BUDGET_S
        c.set_progress_handler(lambda: time.perf_counter() > deadline, _PROGRESS_STEPS)
        try:
            return fn(c)
        except sqlite3.Error as e:
            code = _code(e)
            if code not in _NOT_NOW:
                raise _sqlite_error(e, self.where) from e
            if code == _INTERRUPTED:
                if len(self._slow) >= _SLOW_SQL_MAX:
                    self._slow.clear()
                self._slow.add(sql)
            raise _NotNow from e
        finally:
            c.set_progress_handler(None, 0)

    async def job(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the connection's thread; while another connection holds a lock it needs, tried
        again (backing off, as sqlite's own busy handler does) for up to the busy timeout. Every
        `fn` given here is safe to try again: a statement refused for a lock has changed nothing."""
        conn = self.conn
        budget_s = self._busy_timeout_ms / 1000

        def call() -> T:
            give_up = time.monotonic() + budget_s
            for pause in _BUSY_PAUSES_S:
                try:
                    return fn(conn._conn)
                except sqlite3.OperationalError as e:
                    if _code(e) not in _LOCKED or time.monotonic() >= give_up:
                        raise
                time.sleep(min(pause, max(0.0, give_up - time.monotonic())))
            return fn(conn._conn)

        run = cast(Callable[[Callable[[], T]], Any], conn._execute)
        try:
            return cast(T, await run(call))
        except sqlite3.Error as e:
            raise _sqlite_error(e, self.where) from e

    def now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` run here, now (inside a transaction begun inline)."""
        try:
            return fn(self.conn._conn)
        except sqlite3.Error as e:
            raise _sqlite_error(e, self.where) from e

    async def call(self, fn: Callable[[sqlite3.Connection], T], inline: bool) -> T:
        return self.now(fn) if inline else await self.job(fn)

    def begin_inline(self) -> bool:
        """BEGIN IMMEDIATE here, now, if the write lock is free at once; False (nothing begun)
        otherwise, or inside a transaction opened by hand."""
        c: sqlite3.Connection = self.conn._conn
        if c.in_transaction:
            return False
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            if _code(e) not in _NOT_NOW:
                raise _sqlite_error(e, self.where) from e
            return False
        # The transaction holds the write lock: none of its statements waits for one.
        return True

    async def execute_soon(self, sql: str, params: Params) -> Result:
        """`execute`, inline when it can finish at once (outside a transaction only)."""
        work = _statement(sql, params)
        try:
            result = self._inline(sql, work)
        except _NotNow:
            result = await self.job(work)
        self.changed()
        return result

    async def executemany_soon(self, sql: str, params: Iterable[Params]) -> None:
        """`executemany` as one transaction, inline when it can finish at once (outside a
        transaction only)."""
        work = _many(sql, list(params))
        try:
            self._inline(sql, work)
        except _NotNow:
            await self.job(work)
        self.changed()

    def changed(self) -> None:
        """After statements that may have changed rows: a checkpoint asked for every
        CHECKPOINT_CHANGES rows."""
        changes = self.conn._conn.total_changes
        if self._checkpoints is not None and changes - self._checkpointed_at >= CHECKPOINT_CHANGES:
            self._checkpointed_at = changes
            self._checkpoints.request()

    async def close(self) -> None:
        if self._checkpoints is not None:
            await anyio.to_thread.run_sync(self._checkpoints.close)
        await self.conn.close()


class SqliteDatabase:
    """One aiosqlite connection in autocommit mode, shared by every task of the process.

    A transaction takes the connection's transaction lock; statements outside it wait for the lock,
    so another task's statement never lands inside someone's transaction (the lock is uncontended,
    and costs no trip to the event loop, whenever no transaction is open).
    """

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, where: str, busy_timeout_ms: int) -> None:
        self._run = _SqliteRunner(conn, where, busy_timeout_ms)
        self._lock = anyio.Lock(fast_acquire=True)
        self.where = where

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._run.conn

    @property
    def in_transaction(self) -> bool:
        return bool(self._run.conn.in_transaction)

    async def execute(self, sql: str, params: Params = ()) -> Result:
        async with self._lock:
            return await self._run.execute_soon(sql, params)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        async with self._lock:
            await self._run.executemany_soon(sql, params)

    @asynccontextmanager
    async def transaction(self, *, quick: bool = False) -> AsyncIterator[Database]:
        async with self._lock, _sqlite_transaction(self._run, quick=quick) as tx:
            yield tx

    @asynccontextmanager
    async def listen(self, channels: Sequence[str]) -> AsyncIterator[AsyncIterator[Notification]]:
        yield Silence()

    async def close(self) -> None:
        await self._run.close()


@asynccontextmanager
async def _sqlite_transaction(
    run: _SqliteRunner, *, quick: bool = False, enclosing: bool | None = None
) -> AsyncIterator[Database]:
    """A transaction, or a savepoint in one (`enclosing`: whether that one runs inline). A `quick`
    one runs inline when it can begin at once, and then to its end: a statement of it cannot be
    sent to the thread halfway, nor cut short (that would undo the whole transaction)."""

    def begin(c: sqlite3.Connection) -> bool:
        # Inside a transaction someone opened by hand (BEGIN through execute): a savepoint.
        if c.in_transaction:
            c.execute("SAVEPOINT boocode_tx")
            return True
        # IMMEDIATE takes the write lock up front, so a second process waits (busy_timeout)
        # instead of failing on a read-to-write upgrade.
        c.execute("BEGIN IMMEDIATE")
        return False

    if enclosing is None and quick and run.begin_inline():
        inline, nested = True, False
    else:
        inline = bool(enclosing)
        nested = await run.call(begin, inline)

    def end(c: sqlite3.Connection, statements: tuple[str, ...]) -> None:
        for statement in statements:
            c.execute(statement)

    try:
        yield _SqliteTransaction(run, inline)
    except BaseException:
        undo = ("ROLLBACK TO boocode_tx", "RELEASE boocode_tx") if nested else ("ROLLBACK",)
        with anyio.CancelScope(shield=True):
            await run.call(lambda c: end(c, undo), inline)
        raise
    await run.call(lambda c: end(c, ("RELEASE boocode_tx",) if nested else ("COMMIT",)), inline)
    run.changed()


class _SqliteTransaction:
    """The statements of one open sqlite transaction (its owner holds the lock)."""

    dialect: Dialect = "sqlite"

    def __init__(self, run: _SqliteRunner, inline: bool) -> None:
        self._run = run
        self._inline = inline
        self.where = run.where

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await self._run.call(_statement(sql, params), self._inline)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        await self._run.call(_many(sql, list(params)), self._inline)

    def transaction(self, *, quick: bool = False) -> AbstractAsyncContextManager[Database]:
        return _sqlite_transaction(self._run, enclosing=self._inline)

    @asynccontextmanager
    async def listen(self, channels: Sequence[str]) -> AsyncIterator[AsyncIterator[Notification]]:
        yield Silence()

    async def close(self) -> None:
        raise StoreError("a transaction is closed by leaving it, not by close()")


class Silence:
    """The notifications of a database that sends none: waiting for the next one waits forever."""

    def __aiter__(self) -> Silence:
        return self

    async def __anext__(self) -> Notification:
        await anyio.sleep_forever()
        raise StopAsyncIteration
