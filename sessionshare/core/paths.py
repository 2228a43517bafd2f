"""Path prefixes as a remote's options name them: ``protect``, ``passive``, ``max_auth_age``.

A prefix is a whole path segment: ``/shop`` (or ``/shop/``) covers ``/shop``,
``/shop/`` and everything below, never ``/shopping`` (see :func:`path_prefixes`).
A spelling a router sends to a protected view (``//orders``, ``/./orders``) is
protected too, so nobody reaches a page by writing its path another way.

Prefixes are compared with the decoded path, as routers see it: a prefix
written percent-encoded could never match, so it is refused when the options
are checked (:func:`prefix_problem`), with the decoded spelling to write.

    protects = protect_predicate(["/account/", "/orders"])
    protects(Request("GET", "/orders/7"))     # True
    protects(Request("GET", "/ordersheet"))   # False
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from ..errors import ConfigurationError
from .request import Request

__all__ = [
    "Protect", "normalized_path", "passive_predicate", "path_prefixes", "prefix_problem",
    "protect_predicate", "required_age",
]

#: ``True`` (every path), ``False``, path prefixes, or a predicate on the server
#: interface's own request (the WSGI environ, the ASGI scope).
Protect = bool | Sequence[str] | Callable[[Any], bool]

#: What may follow a prefix for a path to be that prefix's segment or below it.
_SEGMENT_ENDS = ("/", ".", ";")
_PERCENT_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` can match no request (it is percent-encoded), or None."""
    if not _PERCENT_ENCODED.search(prefix):
        return None
    return (
        f"the path prefix {prefix!r} is percent-encoded: paths are compared decoded, "
        f"as routers see them, so it would match no request; write it decoded "
        f"(e.g. {unquote(prefix)!r})"
    )


def path_prefixes(prefixes: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether a path is at or below one of ``prefixes``, in whole segments.

    ``/shop`` (or ``/shop/``) matches ``/shop``, ``/shop/`` and ``/shop/x``, never
    ``/shopping``: a prefix means what a user writes it for. The same segment with
    a suffix after ``.`` or ``;`` matches too (``/shop.json``, ``/shop;v=1``): some
    routers send a format suffix or path parameters to the very view (Django REST
    framework's ``format_suffix_patterns``, servlet containers), so failing closed
    there costs a sign-in at worst. ``/`` matches every path, and the empty one
    (the mount point itself).

    The path is the one servers hand over (WSGI ``PATH_INFO``: decoded, its UTF-8
    bytes read as latin-1), so a prefix is written decoded (``/konto-ü``, never
    ``/konto-%C3%BC``, which raises :class:`ConfigurationError`) and compared in
    that form. A final newline is ignored: Starlette and Pyramid match a route with
    ``^/admin$``, whose ``$`` also matches before one, so ``/admin%0A`` is their
    ``/admin`` view.
    """
    bases: set[str] = set()
    for prefix in prefixes:
        problem = prefix_problem(prefix)
        if problem is not None:
            raise ConfigurationError(problem)
        base = prefix.rstrip("/")  # "/shop/" -> "/shop", "/" -> ""
        # Both spellings: as a server hands a UTF-8 path over, and as written (the bytes
        # of a latin-1 path): matching one more path only ever asks for a sign-in.
        bases.update({base, base.encode("utf-8", "surrogateescape").decode("latin-1")})
    below = tuple(base + mark for base in bases for mark in _SEGMENT_ENDS)

    def under(path: str) -> bool:
        if path.endswith("\n"):
            path = path[:-1]  # "/admin\n" is routed as /admin by "$"-anchored routes
        return path in bases or path.startswith(below)

    return under


def normalized_path(path: str) -> str:
    """``path`` with repeated slashes merged and ``.``/``..`` segments resolved."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    trailing = "/" if segments and path.endswith(("/", "/.", "/..")) else ""
    return "/" + "/".join(segments) + trailing


def protect_predicate(protect: Protect) -> Callable[[Request], bool]:
    """Whether a request's path needs a sign-in, as the (checked) ``protect`` option says."""
    if protect is True:
        return lambda request: True
    if protect is False:
        return lambda request: False
    if callable(protect):
        predicate = protect
        return lambda request: bool(predicate(request.native))
    under = path_prefixes(protect)

    def protects(request: Request) -> bool:
        path = request.path
        # Frameworks route "//orders" (werkzeug) or "/./orders" to the /orders view:
        # a spelling that reaches a protected page is protected too.
        return under(path) or under(normalized_path(path))

    return protects


def passive_predicate(passive: bool | Sequence[str]) -> Callable[[Request], bool]:
    """Whether a public request's path gets the passive sign-in check."""
    if passive is True:
        return lambda request: True
    if passive is False:
        return lambda request: False
    under = path_prefixes(passive)
    return lambda request: under(request.path)


def required_age(
    max_auth_age: int | Mapping[str, int] | None,
) -> Callable[[str], int | None]:
    """The step-up age a path requires (None: any sign-in will do)."""
    if max_auth_age is None:
        return lambda path: None
    if not isinstance(max_auth_age, Mapping):
        age = int(max_auth_age)
        return lambda path: age
    # The longest prefix wins: each is tried alone, longest first.
    by_length = sorted(((path_prefixes([prefix]), int(age), len(prefix.rstrip("/")))
                        for prefix, age in max_auth_age.items()), key=lambda item: -item[2])

    def required(path: str) -> int | None:
        for spelling in (path, normalized_path(path)):
            for under, age, _ in by_length:
                if under(spelling):
                    return age
        return None

    return required
