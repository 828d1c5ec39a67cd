"""The ACP client side: agent registry, warm backends, client callbacks and the pool."""
