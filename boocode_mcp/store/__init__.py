"""The sqlite store: connection, migrations, and one small module per table family."""

from boocode_mcp.store.connection import connect, open_db
from boocode_mcp.store.migrations import LATEST_VERSION, migrate

__all__ = ["LATEST_VERSION", "connect", "migrate", "open_db"]
