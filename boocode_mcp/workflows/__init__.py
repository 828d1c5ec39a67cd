"""Workflows: JavaScript scripts that fan work out to agents, with cached, resumable steps.

`discovery` finds them (workspace over user over the catalog in `catalog/`), `sandbox` runs each
script in a QuickJS process of its own (`sandbox_child.py`, with the API in `prelude.js`),
`runtime` drives one run and its steps, `service.Workflows` is what the engine holds.
"""

from boocode_mcp.workflows.service import Workflows

__all__ = ["Workflows"]
