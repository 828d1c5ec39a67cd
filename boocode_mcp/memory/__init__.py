"""memory part."""
