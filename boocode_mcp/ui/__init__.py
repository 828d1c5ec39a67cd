"""The web page for people (`boocode ui`): runs live, a run's timeline, patches to review and
apply, traces, usage charts — served by the workspace's daemon on loopback, behind a login token.

`server` binds and runs it, `guard` decides who may see it, `app` maps its HTTP routes onto the
operations every front end shares, `stream` turns engine change listeners into server-sent
events; the page itself is the script app under `static/`.
"""

from boocode_mcp.ui.server import UiServer

__all__ = ["UiServer"]
