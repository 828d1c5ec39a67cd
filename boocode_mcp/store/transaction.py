"""Multi-statement writes (and reads) on the shared connection, whole with respect to other tasks.

The connection is in autocommit mode and shared by every task of a process; a BEGIN … COMMIT spread
over several awaits would let another task's statements land inside the transaction. Running the
whole transaction as one job on aiosqlite's worker thread keeps it whole.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import aiosqlite

T = TypeVar("T")


async def atomically(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` in one transaction as a single job on the connection's worker thread.

    aiosqlite has no public way to do this, so this uses its `_execute` (queue a callable on the
    worker thread). Inside another task's open transaction a SAVEPOINT nests instead, so this
    never fails with "cannot start a transaction within a transaction".
    """

    def job() -> T:
        conn = db._conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT boocode_tx")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK TO boocode_tx")
                conn.execute("RELEASE boocode_tx")
                raise
            conn.execute("RELEASE boocode_tx")
            return result
        # IMMEDIATE takes the write lock up front, so a second process waits (busy_timeout)
        # instead of failing on a read-to-write upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    return await _on_worker(db, job)


async def snapshot(db: aiosqlite.Connection, read: Callable[[sqlite3.Connection], T]) -> T:
    """Run `read`, several queries, as one job on the worker thread, all of them seeing the same
    state of the database (a deferred read transaction: writers are not held up). One job rather
    than one hop to the worker thread per query: for many small queries the hops are the cost."""

    def job() -> T:
        conn = db._conn
        if conn.in_transaction:
            return read(conn)
        conn.execute("BEGIN")
        try:
            return read(conn)
        finally:
            conn.execute("COMMIT")

    return await _on_worker(db, job)


async def _on_worker(db: aiosqlite.Connection, job: Callable[[], T]) -> T:
    run = cast(Callable[[Callable[[], T]], Awaitable[T]], db._execute)
    return await run(job)
