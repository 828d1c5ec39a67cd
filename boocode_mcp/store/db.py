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

import sqlite3
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

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        """A transaction: the statements run through the `Database` it yields land together or not
        at all, and no other task's statements land inside it. Nested, it is a savepoint."""
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


class _SqliteRunner:
    """Statements on the connection's worker thread, one trip each (aiosqlite's `_execute` queues a
    callable there; the public API would take a trip for the statement and another for its rows)."""

    def __init__(self, conn: aiosqlite.Connection, where: str) -> None:
        self.conn = conn
        self.where = where

    async def job(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn

        def call() -> T:
            return fn(conn._conn)

        run = cast(Callable[[Callable[[], T]], Any], conn._execute)
        try:
            return cast(T, await run(call))
        except sqlite3.Error as e:
            raise _sqlite_error(e, self.where) from e

    async def execute(self, sql: str, params: Params) -> Result:
        def work(c: sqlite3.Connection) -> Result:
            cur = c.execute(sql, params)
            rows = cur.fetchall()
            return Result(cast(list[Row], rows), cur.rowcount)

        return await self.job(work)

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        batch = list(params)
        await self.job(lambda c: c.executemany(sql, batch))


class SqliteDatabase:
    """One aiosqlite connection in autocommit mode, shared by every task of the process.

    A transaction takes the connection's transaction lock; statements outside it wait for the lock,
    so another task's statement never lands inside someone's transaction (the lock is uncontended,
    and costs no trip to the event loop, whenever no transaction is open).
    """

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, where: str) -> None:
        self._run = _SqliteRunner(conn, where)
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
            return await self._run.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        async with self._lock:
            await self._run.executemany(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock, _sqlite_transaction(self._run) as tx:
            yield tx

    @asynccontextmanager
    async def listen(self, channels: Sequence[str]) -> AsyncIterator[AsyncIterator[Notification]]:
        yield Silence()

    async def close(self) -> None:
        await self._run.conn.close()


@asynccontextmanager
async def _sqlite_transaction(run: _SqliteRunner) -> AsyncIterator[Database]:
    def begin(c: sqlite3.Connection) -> bool:
        # Inside a transaction someone opened by hand (BEGIN through execute): a savepoint.
        if c.in_transaction:
            c.execute("SAVEPOINT boocode_tx")
            return True
        # IMMEDIATE takes the write lock up front, so a second process waits (busy_timeout)
        # instead of failing on a read-to-write upgrade.
        c.execute("BEGIN IMMEDIATE")
        return False

    nested = await run.job(begin)

    def end(c: sqlite3.Connection, statements: tuple[str, ...]) -> None:
        for statement in statements:
            c.execute(statement)

    try:
        yield _SqliteTransaction(run)
    except BaseException:
        undo = ("ROLLBACK TO boocode_tx", "RELEASE boocode_tx") if nested else ("ROLLBACK",)
        with anyio.CancelScope(shield=True):
            await run.job(lambda c: end(c, undo))
        raise
    await run.job(lambda c: end(c, ("RELEASE boocode_tx",) if nested else ("COMMIT",)))


class _SqliteTransaction:
    """The statements of one open sqlite transaction (its owner holds the lock)."""

    dialect: Dialect = "sqlite"

    def __init__(self, run: _SqliteRunner) -> None:
        self._run = run
        self.where = run.where

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await self._run.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self._run.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        await self._run.executemany(sql, params)

    def transaction(self) -> AbstractAsyncContextManager[Database]:
        return _sqlite_transaction(self._run)

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
