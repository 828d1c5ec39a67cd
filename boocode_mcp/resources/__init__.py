"""resources part."""
