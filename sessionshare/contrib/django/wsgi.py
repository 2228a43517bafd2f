"""The Django project's WSGI application, behind the sessionshare middleware.

:func:`get_wsgi_application` is Django's own function of that name with the
hand-off around it: it builds Django's handler and wraps it in
:class:`~sessionshare.RemoteSessionMiddleware` (``idp_url`` given) or
:class:`~sessionshare.IdpAuthMiddleware` (``known_remote_hosts`` given),
configured from the ``SESSIONSHARE`` setting::

    # settings.py
    SESSIONSHARE = {"store": "redis://127.0.0.1:6379/0", "app_url": "https://forum.example",
                    "idp_url": "https://id.example/login", "protect": False}
    # wsgi.py
    from sessionshare.contrib.django.wsgi import get_wsgi_application
    application = get_wsgi_application()

The dict takes the middlewares' own option names (declared once in
:mod:`sessionshare.core.options`; an unknown name is an error that says so);
``store`` and the numbers may also be written as their ``SESSIONSHARE_*``
variables' text (``"redis://..."``, ``"1800"``), and an option the dict
leaves out is read from its variable, so the sync key can stay out of
``settings.py``.

Why around the handler, not in ``MIDDLEWARE``: the session must be persisted
before the status line goes out and, at the IdP, a sign-in may replace the
app's answer with the 303 back to a remote; the WSGI shell already does both,
once, for every framework. Django's middleware chain is left as it is, and
every middleware in it -- CSRF, auth, messages -- finds the shared session
already there.

At a remote, the path of ``LOGIN_URL`` is added to ``protect``: Django's
``login_required`` sends an anonymous visitor there, and the middleware turns
that into the hand-off (see :mod:`sessionshare.contrib.django.views`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...core.options import OPTIONS, Role
from ...errors import ConfigurationError
from ...wsgi import IdpAuthMiddleware, RemoteSessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "FACTS_KEY", "AppFacts", "get_wsgi_application", "middleware_options", "wrap_handler",
]

#: Where the Django side finds :class:`AppFacts` in the environ.
FACTS_KEY = "sessionshare.django"
_BY_NAME = {option.name: option for option in OPTIONS if "wsgi" in option.shells}
_PLAIN_REMOTE_USER = "django.contrib.auth.middleware.RemoteUserMiddleware"


@dataclass(frozen=True)
class AppFacts:
    """What the Django side needs to know about the middleware in front of it."""

    #: ``"idp"`` or ``"remote"``.
    role: Role
    #: This app's canonical origin: the namespace of Django's own session keys.
    origin: str
    #: The shared session's key naming the signed-in user.
    user_key: str
    #: The server-side limits of the shared session, in seconds.
    idle_timeout: int
    absolute_timeout: int
    #: The middleware's time source.
    clock: Callable[[], float]


def middleware_options(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[Role, dict[str, Any]]:
    """The role and the constructor arguments a ``SESSIONSHARE`` dict asks for.

    Text values of options that are not text (``store``, numbers, flags) are
    parsed as their variables are. The role is ``remote`` when ``idp_url`` is
    set (in the dict or ``SESSIONSHARE_IDP_URL``), ``idp`` when
    ``known_remote_hosts`` is; both or neither is an error.
    """
    unknown = sorted(set(config) - set(_BY_NAME))
    if unknown:
        guesses = [difflib.get_close_matches(name, _BY_NAME, n=1) for name in unknown]
        named = ", ".join(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")
                          for name, guess in zip(unknown, guesses, strict=True))
        raise ConfigurationError(
            f"SESSIONSHARE has unknown option(s) {named}: it takes the middlewares' option "
            "names (see docs/options.md)"
        )
    env = os.environ if environ is None else environ
    has = {name: name in config or bool(env.get(_BY_NAME[name].env or "")) for name in
           ("idp_url", "known_remote_hosts")}
    if has["idp_url"] == has["known_remote_hosts"]:
        raise ConfigurationError(
            "SESSIONSHARE must name either idp_url (this site is a remote) or "
            "known_remote_hosts (this site is the IdP), not "
            + ("both" if has["idp_url"] else "neither")
        )
    role: Role = "remote" if has["idp_url"] else "idp"
    misplaced = sorted(name for name in config if role not in _BY_NAME[name].roles)
    if misplaced:
        raise ConfigurationError(
            f"SESSIONSHARE has {', '.join(map(repr, misplaced))}, for "
            f"{'the IdP' if role == 'remote' else 'remotes'} only: this site is "
            + ("a remote (idp_url is set)" if role == "remote"
               else "the IdP (known_remote_hosts is set)")
        )
    values: dict[str, Any] = {}
    for name, value in config.items():
        option = _BY_NAME[name]
        if isinstance(value, str) and "str" not in option.annotation and option.env:
            try:
                value = option.parse(value)
            except (ConfigurationError, ValueError) as exc:
                raise ConfigurationError(f"SESSIONSHARE[{name!r}] is invalid ({exc}): "
                                         f"{option.help}") from None
        values[name] = value
    return role, values


def _with_login_url(protect: Any, login_path: str) -> Any:
    """``protect`` extended by Django's ``LOGIN_URL`` path."""
    if protect is True:
        return True
    if protect is False:
        return [login_path]
    if callable(protect):
        predicate = protect
        return lambda environ: environ.get("PATH_INFO") == login_path or predicate(environ)
    return [*protect, login_path]


def _publishing(app: WSGIApplication, facts: list[AppFacts]) -> WSGIApplication:
    def publish(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[FACTS_KEY] = facts[0]
        return app(environ, start_response)

    return publish


def get_wsgi_application(
    *, wrap_app: Callable[[Any], Any] | None = None, **options: Any
) -> IdpAuthMiddleware | RemoteSessionMiddleware:
    """Django's WSGI application inside the sessionshare middleware.

    ``options`` win over the ``SESSIONSHARE`` setting's entries, which win
    over the ``SESSIONSHARE_*`` variables. ``wrap_app`` wraps Django's handler
    inside the middleware, where the shared session is visible.
    """
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup(set_prefix=False)
    return wrap_handler(WSGIHandler(), wrap_app=wrap_app, **options)


def wrap_handler(
    handler: WSGIApplication, *, wrap_app: Callable[[Any], Any] | None = None, **options: Any
) -> IdpAuthMiddleware | RemoteSessionMiddleware:
    """``handler``, a WSGI callable serving this Django project, inside the middleware,
    configured as :func:`get_wsgi_application` configures it (Django set up already).

    The seam for a handler other than Django's ``WSGIHandler``: the test
    client of :mod:`sessionshare.contrib.django.testing`.
    """
    from django.conf import settings
    from django.shortcuts import resolve_url

    config = {**getattr(settings, "SESSIONSHARE", {}), **options}
    role, values = middleware_options(config)
    facts: list[AppFacts] = []
    app: Any = _publishing(handler, facts)
    if wrap_app is not None:
        app = wrap_app(app)
    middleware: IdpAuthMiddleware | RemoteSessionMiddleware
    if role == "remote":
        protect = values.get("protect", True)
        if protect is not True and _PLAIN_REMOTE_USER in settings.MIDDLEWARE:
            # It logs the user out -- flush(), which ends the shared session everywhere --
            # on every request without REMOTE_USER, i.e. on every path not protected.
            raise ConfigurationError(
                f"{_PLAIN_REMOTE_USER} signs the user out everywhere on each page "
                "sessionshare does not protect: use "
                "django.contrib.auth.middleware.PersistentRemoteUserMiddleware, or protect "
                "every path (SESSIONSHARE['protect'] = True)"
            )
        login_path = str(resolve_url(settings.LOGIN_URL))
        if login_path.startswith("/"):  # an absolute LOGIN_URL is left to the app
            values["protect"] = _with_login_url(protect, login_path.split("?", 1)[0])
        middleware = RemoteSessionMiddleware.from_env(app, **values)
    else:
        middleware = IdpAuthMiddleware.from_env(app, **values)
    side = middleware.side
    facts.append(AppFacts(
        role=role, origin=side.origin, user_key=side.user_key,
        idle_timeout=side.lifecycle.idle_timeout,
        absolute_timeout=side.lifecycle.absolute_timeout, clock=side.clock,
    ))
    return middleware
