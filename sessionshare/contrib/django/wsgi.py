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

The dict takes the middlewares' own option names, and an option it leaves
out is read from its ``SESSIONSHARE_*`` variable, so the sync key can stay out
of ``settings.py`` (:mod:`~sessionshare.contrib.django.config`).

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

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...core.lifecycle import Lifecycle
from ...core.options import Role
from ...errors import ConfigurationError
from ...wsgi import IdpAuthMiddleware, RemoteSessionMiddleware
from .config import middleware_options as middleware_options

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "FACTS_KEY", "AppFacts", "get_wsgi_application", "middleware_options", "wrap_handler",
]

log = logging.getLogger("sessionshare")

#: Where the Django side finds :class:`AppFacts` in the environ.
FACTS_KEY = "sessionshare.django"


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
    #: The middleware's session rules (what a session has left, the id it will have).
    lifecycle: Lifecycle


def _check_at_start_up(role: Role, values: Any) -> None:
    """Django's system checks of sessionshare, as ``manage.py check`` runs them: gunicorn
    runs none, and these setups fail on every request. Errors refuse to start."""
    from django.apps import apps

    from .checks import APP, middleware_messages, not_installed

    found = middleware_messages(role, values)
    if not apps.is_installed(APP):
        found.append(not_installed())
    errors = [message for message in found if message.is_serious()]
    if errors:
        raise ConfigurationError("; ".join(
            f"{message.id}: {message.msg} (fix: {message.hint})" for message in errors
        ))
    for message in found:
        log.warning("%s: %s (fix: %s)", message.id, message.msg, message.hint)


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
    _check_at_start_up(role, values)
    if role == "remote":
        protect = values.get("protect", True)
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
        lifecycle=side.lifecycle,
    ))
    return middleware
