"""Django's system checks for sessionshare: each setup that cannot work, by id, with its fix.

Add the app, and Django runs them with its own -- ``manage.py check``,
``runserver``, ``migrate``::

    INSTALLED_APPS = [..., "sessionshare.contrib.django"]

:func:`~sessionshare.contrib.django.wsgi.get_wsgi_application` runs them too
when the server starts (gunicorn runs no checks): an error refuses to start,
since every request would fail; a warning is logged. ``python -m sessionshare
check`` in a Django project runs them, then builds the middleware from the
``SESSIONSHARE`` setting and pings the store.

==================  ================================================================
``E001``            the ``SESSIONSHARE`` setting (with the ``SESSIONSHARE_*``
                    variables) cannot build the middleware; the message says why
``E002``            Django's own ``SessionMiddleware`` in ``MIDDLEWARE``: every
                    request would be a 500
``E003``            no ``SessionMiddleware`` at all: ``request.session`` is missing
``E004``            ``SESSION_ENGINE`` is not ``sessionshare.contrib.django.session``
``E005``            a remote without ``PersistentRemoteUserMiddleware``: every visit
                    after the hand-off would be a 403 "no account for you"
``E006``            a remote without ``RemoteUserBackend`` (or a subclass): the same 403
``E007``            Django's plain ``RemoteUserMiddleware`` on a remote with public
                    paths: it would sign the user out everywhere on each of them
``E008``            the middlewares in the wrong order
``E009``            a remote without ``AuthenticationMiddleware``
``W001``            ``LOGIN_URL`` does not lead to ``views.sign_in``: ``login_required``
                    would not start the hand-off
``W002``            ``WSGI_APPLICATION``'s module serves Django's own handler
``W003``            the app is not in ``INSTALLED_APPS`` (so ``manage.py check`` runs
                    none of these; logged at start-up only)
``W004``            settings that build but are probably not what was meant (a
                    ``memory://`` store, an ``idp_url`` without a path)
==================  ================================================================
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

from ...core.configure import option_warnings
from ...core.events import CapturedWarnings
from ...core.options import Role
from ...errors import ConfigurationError
from ...wsgi import IdpAuthMiddleware, RemoteSessionMiddleware
from .config import middleware_options

__all__ = [
    "APP", "TAG", "check_project", "messages", "middleware_messages", "not_installed",
    "preflight",
]

#: The app to list in ``INSTALLED_APPS``; the checks' tag (``manage.py check --tag``).
APP = "sessionshare.contrib.django"
TAG = "sessionshare"
OURS = "sessionshare.contrib.django.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"
ENGINE = "sessionshare.contrib.django.session"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
PERSISTENT = "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"
PLAIN = "django.contrib.auth.middleware.RemoteUserMiddleware"
BACKEND = "django.contrib.auth.backends.RemoteUserBackend"
SIGN_IN = "sessionshare.contrib.django.views.sign_in"


def _error(number: int, msg: str, hint: str) -> Error:
    return Error(msg, hint=hint, id=f"{TAG}.E{number:03d}")


def _warning(number: int, msg: str, hint: str) -> CheckWarning:
    return CheckWarning(msg, hint=hint, id=f"{TAG}.W{number:03d}")


def check_project(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The check Django runs (registered by the app's ``ready()``): :func:`messages`."""
    return messages()


def messages(options: Mapping[str, Any] | None = None) -> list[CheckMessage]:
    """Every check, for this project's settings and ``options`` over ``SESSIONSHARE``
    (as :func:`~sessionshare.contrib.django.wsgi.get_wsgi_application` takes them),
    the middleware built too (quietly; its store closed again)."""
    role, found, built = preflight(options)
    if built is not None:
        built.store.close()
    return found


def preflight(
    options: Mapping[str, Any] | None = None,
) -> tuple[Role | None, list[CheckMessage], IdpAuthMiddleware | RemoteSessionMiddleware | None]:
    """The site's role (None when the settings name none), every check's message, and
    the middleware the settings build (None on an error; the caller closes its store)."""
    config = {**getattr(settings, "SESSIONSHARE", {}), **(options or {})}
    try:
        role, values = middleware_options(config)
    except ConfigurationError as exc:
        return None, [_e001(exc), *middleware_messages(None, {})], None
    found = middleware_messages(role, values)
    found += [_warning(4, text, _SEE_CHECK) for text in option_warnings(role, values)]
    cls = RemoteSessionMiddleware if role == "remote" else IdpAuthMiddleware
    with CapturedWarnings() as captured:
        try:
            # Quietly: the start-up notice belongs to the server's log, not to a check.
            built = cls.from_env(_no_app, **{**values, "quiet_startup": True})
        except ConfigurationError as exc:
            store = values.get("store")
            if store is not None and hasattr(store, "close"):
                store.close()
            return role, [_e001(exc), *found], None
    found += [_warning(4, text, _SEE_CHECK) for text in captured.messages]
    if any(message.is_serious() for message in found):
        built.store.close()
        return role, found, None
    return role, found, built


_SEE_CHECK = "see the message; python -m sessionshare check says the same and pings the store"


def _e001(exc: ConfigurationError) -> Error:
    return _error(1, f"sessionshare cannot be configured: {exc}",
                  "fix the SESSIONSHARE setting (the middlewares' option names, "
                  "docs/options.md) or the SESSIONSHARE_* variable named")


def _no_app(environ: Any, start_response: Any) -> list[bytes]:
    return []


def middleware_messages(role: Role | None, values: Mapping[str, Any]) -> list[CheckMessage]:
    """The checks of ``MIDDLEWARE``, ``SESSION_ENGINE``, the backends, ``LOGIN_URL`` and
    ``WSGI_APPLICATION`` for a site of ``role`` (None: only what holds for both)."""
    middleware = [entry for entry in settings.MIDDLEWARE if isinstance(entry, str)]
    found: list[CheckMessage] = []
    if DJANGOS in middleware:
        found.append(_error(
            2, "Django's own SessionMiddleware is in MIDDLEWARE: it would read "
               "sessionshare's session engine as its own, and every request would be a 500",
            f"replace {DJANGOS!r} with {OURS!r}"))
    elif _index(middleware, OURS) is None:
        found.append(_error(
            3, "no SessionMiddleware in MIDDLEWARE: request.session would be missing",
            f"add {OURS!r} to MIDDLEWARE, before {AUTH!r}"))
    if settings.SESSION_ENGINE != ENGINE:
        found.append(_error(
            4, f"SESSION_ENGINE is {settings.SESSION_ENGINE!r}: Django's clients of it "
               "(the test Client, clearsessions) would meet a session of Django's own",
            f"SESSION_ENGINE = {ENGINE!r}"))
    if role == "remote":
        found += _remote_user_messages(middleware, values)
        found += _login_url_messages()
    found += _wsgi_module_messages()
    return found


def _remote_user_messages(middleware: list[str], values: Mapping[str, Any]) -> list[CheckMessage]:
    """A remote's user comes from REMOTE_USER: the auth middleware, the remote-user
    middleware after it, a backend that accepts the user."""
    found: list[CheckMessage] = []
    auth = _index(middleware, AUTH)
    remote_user = _index(middleware, PLAIN)  # PersistentRemoteUserMiddleware is one too
    session = _index(middleware, OURS)
    if auth is None:
        found.append(_error(
            9, "a remote needs AuthenticationMiddleware: without it request.user is never "
               "set, and the sign-in view and login_required fail",
            f"add {AUTH!r} to MIDDLEWARE, after {OURS!r}"))
    if remote_user is None:
        found.append(_error(
            5, "a remote takes its user from REMOTE_USER, which nothing here reads: every "
               "visit after the hand-off would be a 403 \"this site has no account for you\"",
            f"add {PERSISTENT!r} to MIDDLEWARE, after {AUTH!r}"))
    elif middleware[remote_user] == PLAIN and values.get("protect", True) is not True:
        found.append(_error(
            7, f"{PLAIN} signs the user out everywhere (flush() ends the shared session) on "
               "each page sessionshare does not protect, where REMOTE_USER is unset",
            f"use {PERSISTENT!r} instead, or protect every path "
            "(SESSIONSHARE['protect'] = True)"))
    if auth is not None and remote_user is not None and remote_user < auth:
        found.append(_error(
            8, "the remote-user middleware comes before AuthenticationMiddleware: Django "
               "refuses every request",
            f"move {middleware[remote_user]!r} after {AUTH!r}"))
    if auth is not None and session is not None and auth < session:
        found.append(_error(
            8, "AuthenticationMiddleware comes before sessionshare's SessionMiddleware: it "
               "finds no request.session",
            f"move {OURS!r} before {AUTH!r}"))
    if _index(list(settings.AUTHENTICATION_BACKENDS), BACKEND) is None:
        found.append(_error(
            6, "no authentication backend accepts the user the IdP signed in (REMOTE_USER): "
               "every visit after the hand-off would be a 403 \"this site has no account "
               "for you\"",
            f"add {BACKEND!r} (or a subclass) to AUTHENTICATION_BACKENDS"))
    return found


def _login_url_messages() -> list[CheckMessage]:
    from django.shortcuts import resolve_url
    from django.urls import NoReverseMatch, Resolver404, resolve

    from .views import sign_in

    try:
        path = str(resolve_url(settings.LOGIN_URL)).split("?", 1)[0]
    except NoReverseMatch:
        path = str(settings.LOGIN_URL)
    if not path.startswith("/"):
        return []  # an absolute LOGIN_URL is the app's own choice
    try:
        view = resolve(path).func
    except Resolver404:
        view = None
    unwrapped = getattr(sign_in, "__wrapped__", sign_in)
    if view is not None and getattr(view, "__wrapped__", view) is unwrapped:
        return []
    return [_warning(
        1, f"LOGIN_URL {path!r} does not lead to sessionshare's sign-in view: "
           "login_required would send visitors there instead of into the hand-off",
        f"add path({path.lstrip('/')!r}, {SIGN_IN}) to your urls.py, or set LOGIN_URL "
        "to the path you mounted it at")]


def _wsgi_module_messages() -> list[CheckMessage]:
    """``WSGI_APPLICATION``'s module, read (not imported: that would build the app)."""
    target = getattr(settings, "WSGI_APPLICATION", None)
    if not target or "." not in target:
        return []
    module = target.rsplit(".", 1)[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return []
    try:
        with open(spec.origin, encoding="utf-8") as source:
            text = source.read()
    except OSError:
        return []
    if "sessionshare" in text:
        return []
    return [_warning(
        2, f"WSGI_APPLICATION {target!r} never names sessionshare: Django's own handler "
           "has no sessionshare middleware in front, and every request would be a 500",
        f"in {module}, application = "
        "sessionshare.contrib.django.wsgi.get_wsgi_application()")]


def not_installed() -> CheckWarning:
    """W003: the start-up's own finding when ``manage.py check`` cannot run these."""
    return _warning(
        3, "sessionshare.contrib.django is not in INSTALLED_APPS: manage.py check runs none "
           "of sessionshare's checks (they ran now, at start-up)",
        f"add {APP!r} to INSTALLED_APPS")


def _index(entries: list[str], path: str) -> int | None:
    """Where ``path``'s class (or a subclass of it) stands in ``entries``."""
    wanted = _imported(path)
    for position, entry in enumerate(entries):
        if entry == path:
            return position
        found = _imported(entry)
        if isinstance(found, type) and isinstance(wanted, type) and issubclass(found, wanted):
            return position
    return None


def _imported(path: str) -> Any:
    try:
        return import_string(path)
    except Exception:  # noqa: BLE001 - a path Django itself will report
        return None

