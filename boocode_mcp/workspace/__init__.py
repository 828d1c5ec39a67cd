"""workspace part."""
