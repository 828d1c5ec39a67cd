"""Who may talk to BooCode over HTTP: loopback by default, a bearer token anywhere else.

HTTP reaches run_command and code-editing agents, so a server reachable from other machines must
not answer strangers. On loopback, DNS rebinding is the threat: a web page whose
name resolves to 127.0.0.1 would reach the server from the user's browser, so Host and Origin are
checked by the SDK's transport security.
"""

from __future__ import annotations

import hmac
import ipaddress

from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from boocode_mcp.errors import ConfigError

_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve HTTP on {host}: it is reachable from other machines and BooCode "
            "runs commands and coding agents; pass --token T (clients then send "
            "`Authorization: Bearer T`) or bind 127.0.0.1"
        )


def url_host(host: str) -> str:
    """The host part of the URL a local client should use to reach a server bound to `host`."""
    if is_wildcard(host):
        return "127.0.0.1"
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def transport_security(host: str) -> TransportSecuritySettings:
    """Host/Origin checks: loopback names always, plus the bound name when it is a specific one.

    A wildcard bind has no single name clients use, so only the token guards it (check_binding
    makes the token mandatory there).
    """
    if is_wildcard(host):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = list(_LOOPBACK_HOSTS)
    origins = list(_LOOPBACK_ORIGINS)
    if not is_loopback(host):
        name = url_host(host)
        hosts += [name, f"{name}:*"]
        origins += [f"http://{name}", f"http://{name}:*", f"https://{name}", f"https://{name}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerTokenMiddleware:
    """Answer 401 to every HTTP request that lacks `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            # Constant-time comparison, so response timing does not leak the token prefix.
            if not hmac.compare_digest(given, self._expected):
                response = JSONResponse(
                    {"error": "unauthorized", "detail": "send Authorization: Bearer <token>"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="boocode"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
