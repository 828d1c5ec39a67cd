"""Who may see the web page, and what a browser may do with it.

The page shows every run, diff and trace of the workspace and can apply patches, so it answers
only the person `boocode ui` printed the address for:

- It listens on 127.0.0.1 only, and only answers requests whose Host is this server
  (127.0.0.1:PORT or localhost:PORT): a web page whose name was rebound to 127.0.0.1 (DNS
  rebinding) sends its own name as Host and is refused.
- Every request needs the login token: the printed address carries it once (`?token=…`), which
  is exchanged for an HttpOnly, SameSite=Strict cookie and a redirect to the same address without
  it, so the token does not stay in the address bar or the history. Another site's page cannot
  send that cookie (SameSite=Strict) nor read anything back.
- An action (POST) must also come from this origin (its Origin header is this server's own) and
  carry JSON, which no cross-site form can send without a CORS preflight this server never grants.
- A request with a foreign Origin is refused whatever it asks.

Refusals are 4xx with a one-line body that shows nothing of the workspace.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_PREFIX = "boocode_ui_"
# Every response: no inline script or style, nothing from elsewhere, never framed, and the token
# in a first-visit address is not sent on as a Referer.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware in front of the page: Host, Origin, token or cookie, same-origin actions."""

    def __init__(self, app: ASGIApp, *, token: str, port: int) -> None:
        self.app = app
        self._token = token.encode()
        self._hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        # Cookies are shared by every port of a host: the port in the name keeps two workspaces'
        # pages (two daemons) from overwriting each other's login.
        self.cookie = f"{COOKIE_PREFIX}{port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        origin = headers.get("origin")
        method = scope["method"]
        if host not in self._hosts:
            await _refuse(send, 421, "this server answers only at the address `boocode ui` printed")
            return
        if origin is not None and origin != f"http://{host}":
            await _refuse(send, 403, "cross-origin requests are refused")
            return
        if method not in ("GET", "POST"):
            await _refuse(send, 405, "method not allowed")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if given:
            if method != "GET" or not self._valid(given[-1]):
                await _refuse(send, 401, "unknown or expired login token: run `boocode ui` again")
                return
            await self._login(send, scope["path"], [(k, v) for k, v in query if k != "token"])
            return
        if not self._valid(cookie_parser(headers.get("cookie", "")).get(self.cookie)):
            await _refuse(send, 401, "not logged in: open the address `boocode ui` prints")
            return
        if method == "POST":
            if origin is None:
                await _refuse(send, 403, "an action must come from this page (no Origin header)")
                return
            if not headers.get("content-type", "").lower().startswith("application/json"):
                await _refuse(send, 415, "an action carries JSON")
                return
        await self.app(scope, receive, _with_headers(send, SECURITY_HEADERS))

    def _valid(self, token: str | None) -> bool:
        # Constant-time, so response timing does not leak how much of a guess was right.
        return token is not None and hmac.compare_digest(token.encode(), self._token)

    async def _login(self, send: Send, path: str, rest: Iterable[tuple[str, str]]) -> None:
        query = urlencode(list(rest))
        location = path + (f"?{query}" if query else "")
        cookie = f"{self.cookie}={self._token.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await _respond(send, 303, b"", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message = {
                **message,
                "headers": [*message.get("headers", []), *((n, v) for n, v in extra if n not in present)],
            }
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, why: str) -> None:
    await _respond(send, status, why.encode() + b"\n", [(b"content-type", b"text/plain; charset=utf-8")])


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, *SECURITY_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
