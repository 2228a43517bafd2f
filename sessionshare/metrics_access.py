"""Who may read ``/metrics``: a scraper with the bearer token -- or, if asked for, this machine.

The library's metrics say how many people are signed in, how often sign-ins
fail and why, and how fast the store answers: a map for whoever probes the
deployment, and nothing a visitor needs. So the apps that
:meth:`~sessionshare.metrics.PrometheusMetrics.wsgi_app` and ``asgi_app``
mount serve them only to

- a request whose ``Authorization: Bearer <token>`` carries the token of
  ``SESSIONSHARE_METRICS_TOKEN`` (or the ``token`` argument), compared in
  constant time. This is the default, and with a token configured nobody
  else is served: behind a reverse proxy on the same machine every request
  comes from the loopback, so the loopback proves nothing then;
- with no token, and only when the app is built with ``loopback=True``, a
  client on the loopback whose request carries no header a proxy adds
  (``Forwarded``, ``Via``, any ``X-Forwarded-*``, ``X-Real-IP``, the
  client-address headers of CDNs). An opt-in, because a proxy on the same
  machine that adds none of them (nginx's bare ``proxy_pass``) makes every
  visitor a loopback client: only where no proxy runs on the machine is the
  loopback a fact about the client.

Anyone else gets **401** (a token is configured) or **403** (none is; the
answer names the variable to set), and not a byte of the metrics; a websocket
handshake is closed with 1008 before it is accepted.

    app = guard_wsgi(make_wsgi_app(registry), MetricsAccess())   # the token from the env
    app = guard_asgi(make_asgi_app(registry), MetricsAccess(loopback=True))  # a local demo
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from hmac import compare_digest
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["MIN_TOKEN_LENGTH", "TOKEN_VARIABLE", "MetricsAccess", "guard_asgi", "guard_wsgi"]

#: The variable the token is read from when none is given.
TOKEN_VARIABLE = "SESSIONSHARE_METRICS_TOKEN"
#: Shorter tokens are refused: a guessable token guards nothing.
MIN_TOKEN_LENGTH = 32

#: Headers a proxy adds (lower case), besides every ``x-forwarded-*``.
_PROXY_HEADERS = frozenset((
    "forwarded", "via", "x-real-ip", "x-client-ip", "x-cluster-client-ip", "true-client-ip",
    "cf-connecting-ip", "fastly-client-ip", "x-original-forwarded-for",
))
_ASGI = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                  Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]


class MetricsAccess:
    """The rule above, decided once per request from three facts.

    :param token: the bearer token a scraper must send; None reads
        ``SESSIONSHARE_METRICS_TOKEN`` (unset or empty: no token). At least
        :data:`MIN_TOKEN_LENGTH` printable ASCII characters, e.g.
        ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
    :param loopback: with no token, serve clients on this machine's loopback that
        came through no proxy; off by default (see above why). A token, when one is
        configured, is required from every client whatever this says.
    :param environ: where the variable is read (``os.environ`` by default).
    """

    def __init__(
        self, token: str | None = None, *, loopback: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.loopback = loopback
        source = "token"
        if token is None:
            source = TOKEN_VARIABLE
            token = (os.environ if environ is None else environ).get(TOKEN_VARIABLE) or None
        if token is not None and not (
            len(token) >= MIN_TOKEN_LENGTH and token.isascii() and token.isprintable()
            and " " not in token
        ):
            # The token itself is never shown: it is a secret even when it is a weak one.
            raise ConfigurationError(
                f"{source}: the metrics token must be at least {MIN_TOKEN_LENGTH} printable "
                "ASCII characters without spaces (python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\")"
            )
        self._token = None if token is None else token.encode("ascii")

    def refusal(
        self, *, authorization: str | None, client: str | None, proxied: bool
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """None to serve the request; else the status, headers and body to answer.

        :param authorization: the ``Authorization`` header, if any.
        :param client: the peer's address (WSGI ``REMOTE_ADDR``, the ASGI scope's
            ``client``), None when the server gave none (a unix socket).
        :param proxied: the request carries a header a proxy adds.
        """
        if self._token is not None:
            if self._bearer_matches(authorization):
                return None
            return _answer(401, "Send the metrics token: Authorization: Bearer <token>.",
                           [("WWW-Authenticate", 'Bearer realm="metrics"')])
        if self.loopback:
            if not proxied and _is_loopback(client):
                return None
            return _answer(403, "Metrics are served to this machine only; to scrape them from "
                                f"elsewhere, set {TOKEN_VARIABLE} and send it as a bearer "
                                "token.")
        return _answer(403, f"Metrics need a token: set {TOKEN_VARIABLE} (32 characters or "
                            "more) and send it as a bearer token (Authorization: Bearer "
                            "<token>); or, where no proxy runs on this machine, build the "
                            "metrics app with loopback=True.")

    def _bearer_matches(self, authorization: str | None) -> bool:
        assert self._token is not None
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        sent = credentials.strip().encode("latin-1", "replace")
        # compare_digest: the time taken says nothing about how much of the token matched.
        return compare_digest(sent, self._token)


def _is_proxy_header(name: str) -> bool:
    """True for a (lower-case) header name that a proxy adds to what it forwards."""
    return name in _PROXY_HEADERS or name.startswith("x-forwarded-")


def _is_loopback(client: str | None) -> bool:
    if not client:
        return False  # a unix socket: a proxy in front, most likely
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _answer(status: int, message: str, headers: Iterable[tuple[str, str]] = ()
            ) -> tuple[int, list[tuple[str, str]], bytes]:
    body = (message + "\n").encode()
    return status, [
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), *headers,
    ], body


_REASONS = {401: "401 Unauthorized", 403: "403 Forbidden"}


def guard_wsgi(app: WSGIApplication, access: MetricsAccess) -> WSGIApplication:
    """``app`` (a metrics WSGI app), served only as ``access`` allows."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = access.refusal(
            authorization=environ.get("HTTP_AUTHORIZATION"),
            client=environ.get("REMOTE_ADDR"),
            proxied=any(_is_proxy_header(key[5:].replace("_", "-").lower())
                        for key in environ if key.startswith("HTTP_")),
        )
        if refusal is None:
            return app(environ, start_response)
        status, headers, body = refusal
        start_response(_REASONS[status], headers)
        return [body]

    return guarded


def guard_asgi(app: _ASGI, access: MetricsAccess) -> _ASGI:
    """``app`` (a metrics ASGI app), served only as ``access`` allows over HTTP; a
    websocket is refused, a lifespan scope goes through untouched."""

    async def guarded(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        kind = scope.get("type")
        if kind == "websocket":
            # Never served over a websocket (prometheus_client's app asserts HTTP): closed
            # before it is accepted, so the server answers the handshake 403.
            if (await receive()).get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        if kind != "http":
            await app(scope, receive, send)  # lifespan
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers") or ()}
        client = scope.get("client")
        refusal = access.refusal(
            authorization=headers.get("authorization"),
            client=None if not client else str(client[0]),
            proxied=any(_is_proxy_header(name) for name in headers),
        )
        if refusal is None:
            await app(scope, receive, send)
            return
        status, answer, body = refusal
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer]})
        await send({"type": "http.response.body", "body": body})

    return guarded
