"""The PostgreSQL dialect of `store.db.Database`: psycopg 3, async, over a connection pool.

psycopg is an optional dependency (`pip install 'boocode-mcp[postgres]'`); this module is imported
only when a store URL names PostgreSQL. Statements are written in the store's portable style
(`?` and `:name` placeholders) and rewritten here to psycopg's (`%s`, `%(name)s`).
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from boocode_mcp.errors import StoreError
from boocode_mcp.store.db import (
    ConstraintError,
    Database,
    DatabaseError,
    Dialect,
    Notification,
    Params,
    Result,
    Row,
)

try:
    import psycopg
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool
except ImportError as e:  # pragma: no cover - depends on how BooCode was installed
    raise StoreError(
        "a PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'boocode-mcp[postgres]'"
    ) from e

CONNECT_TIMEOUT_S = 10
POOL_MAX_SIZE = 16


def redact(url: str) -> str:
    """The URL without its password (in the userinfo part or as a `password=` parameter)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urllib.parse.urlencode(
        [
            (k, "***" if k == "password" else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/",
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@functools.lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """The statement with `?` → `%s`, `:name` → `%(name)s` and a literal `%` doubled; string
    literals, quoted names, comments and `::` casts are left alone."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # a doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif c == ":" and sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[i + 1 : end]})s")
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


class PgRow:
    """A row readable by position and by column name, as sqlite3.Row is."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, names)

    return make


def _error(e: psycopg.Error, where: str) -> DatabaseError:
    kind = ConstraintError if isinstance(e, psycopg.errors.IntegrityError) else DatabaseError
    return kind(f"{where}: {e}")


async def _execute(conn: AsyncConnection[Any], sql: str, params: Params, where: str) -> Result:
    try:
        # Without parameters psycopg sends the text as it is: no placeholder rewriting then.
        cur = await conn.execute(to_pyformat(sql) if params else sql, params or None)
        rows: list[Row] = list(await cur.fetchall()) if cur.description is not None else []
        return Result(rows, cur.rowcount)
    except psycopg.Error as e:
        raise _error(e, where) from e


async def _executemany(conn: AsyncConnection[Any], sql: str, params: Iterable[Params], where: str) -> None:
    try:
        async with conn.cursor() as cur:
            await cur.executemany(to_pyformat(sql), list(params))
    except psycopg.Error as e:
        raise _error(e, where) from e


class PostgresDatabase:
    """A pool of autocommit connections; a transaction holds one connection for its duration."""

    dialect: Dialect = "postgres"

    def __init__(self, url: str, pool: AsyncConnectionPool[Any]) -> None:
        self.url = url
        self.where = redact(url)
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> PostgresDatabase:
        """Open a pool on `url`; an unreachable server is a StoreError naming the URL (without its
        password) and what to check."""
        where = redact(url)
        try:
            # One connection first, so that a refusal comes with the server's reason, at once.
            probe = await AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.Error as e:
            reason = " ".join(str(e).split())
            raise StoreError(
                f"cannot reach the PostgreSQL store {where}: {reason}; check that the server runs, "
                "the URL ([store] url or BOOCODE_DB_URL) and its credentials"
            ) from e
        await probe.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            kwargs={"autocommit": True, "row_factory": _row_factory},
            open=False,
            name="boocode",
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        return cls(url, pool)

    async def execute(self, sql: str, params: Params = ()) -> Result:
        async with self._pool.connection() as conn:
            return await _execute(conn, sql, params, self.where)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        async with self._pool.connection() as conn:
            await _executemany(conn, sql, params, self.where)

    @asynccontextmanager
    async def transaction(self, *, quick: bool = False) -> AsyncIterator[Database]:
        async with self._pool.connection() as conn, conn.transaction():
            yield _PgConnection(conn, self.where)

    @asynccontextmanager
    async def listen(self, channels: Sequence[str]) -> AsyncIterator[AsyncIterator[Notification]]:
        """A connection of its own (a pooled one would carry the LISTEN back into the pool)."""
        try:
            conn = await AsyncConnection.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.Error as e:
            raise _error(e, self.where) from e
        try:
            for channel in channels:
                await conn.execute(f"LISTEN {psycopg.sql.Identifier(channel).as_string(conn)}")
            yield _notifications(conn, self.where)
        finally:
            await conn.close()

    async def close(self) -> None:
        await self._pool.close()


async def _notifications(conn: AsyncConnection[Any], where: str) -> AsyncIterator[Notification]:
    try:
        async for n in conn.notifies():
            yield Notification(n.channel, n.payload)
    except psycopg.Error as e:
        raise _error(e, where) from e


class _PgConnection:
    """The statements of one open transaction, on the connection it holds."""

    dialect: Dialect = "postgres"

    def __init__(self, conn: AsyncConnection[Any], where: str) -> None:
        self._conn = conn
        self.where = where

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await _execute(self._conn, sql, params, self.where)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return (await self.execute(sql, params)).rows

    async def executemany(self, sql: str, params: Iterable[Params]) -> None:
        await _executemany(self._conn, sql, params, self.where)

    @asynccontextmanager
    async def transaction(self, *, quick: bool = False) -> AsyncIterator[Database]:
        async with self._conn.transaction():  # a savepoint
            yield self

    def listen(self, channels: Sequence[str]) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        raise StoreError("listen on the database, not inside a transaction")

    async def close(self) -> None:
        raise StoreError("a transaction is closed by leaving it, not by close()")
