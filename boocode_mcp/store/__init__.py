"""The store: one `Database` interface over sqlite (the default) or PostgreSQL, versioned migrations
for both, and one small module per table family (see `store.db` for how the dialects divide)."""

from boocode_mcp.store.connection import connect, is_url, open_db
from boocode_mcp.store.db import ConstraintError, Database, DatabaseError, Row
from boocode_mcp.store.migrations import LATEST_VERSION, migrate

__all__ = [
    "LATEST_VERSION",
    "ConstraintError",
    "Database",
    "DatabaseError",
    "Row",
    "connect",
    "is_url",
    "migrate",
    "open_db",
]
