"""tools part."""
