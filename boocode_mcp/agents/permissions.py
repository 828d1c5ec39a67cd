"""Choosing a permission option by what it means (its kind), never by its agent-specific id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from boocode_mcp.agents.backend import PermissionHandler
from boocode_mcp.agents.events import PermissionKind, PermissionOptionInfo, PermissionRequestEvent

_ALLOW_ORDER: tuple[PermissionKind, ...] = ("allow_once", "allow_always")
_DENY_ORDER: tuple[PermissionKind, ...] = ("reject_once", "reject_always")


def choose_option(options: Sequence[PermissionOptionInfo], *, allow: bool) -> str | None:
    """The option id to answer with: allow prefers a one-off grant, deny a one-off refusal, so
    neither decision outlives this request. None when no option has a fitting kind."""
    for kind in _ALLOW_ORDER if allow else _DENY_ORDER:
        for option in options:
            if option.kind == kind:
                return option.option_id
    return None


def policy_handler(policy: Literal["auto", "deny"]) -> PermissionHandler:
    """A handler that answers every request the same way: "auto" allows, "deny" refuses.

    A refusal with no reject option answers None, which the client turns into "cancelled".
    """
    allow = policy == "auto"

    async def handle(request: PermissionRequestEvent) -> str | None:
        return choose_option(request.options, allow=allow)

    return handle
