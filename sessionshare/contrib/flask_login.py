"""Flask-Login on the shared session: one sign-in, ``current_user`` at every Flask app.

Flask-Login keeps its user in ``session["_user_id"]``, the id in *this* app's
user table. In a session shared by several apps that key would be read by
each of them, and would keep naming a user after a single logout ended the
shared sign-in elsewhere or the IdP withdrew an app. So :func:`init_login`
makes every Flask-Login app take its user from the **shared** sign-in
instead, and makes Flask-Login's two verbs sign that one in and out:

- at the IdP, ``login_user(user)`` sets ``session[user_key] = user.get_id()``
  -- the shared sign-in, which the middleware hands off as any other -- and
  ``remember=True`` makes it a remembered one (:meth:`Session.remember
  <sessionshare.core.session.Session.remember>`, for Flask-Login's
  ``duration`` or ``REMEMBER_COOKIE_DURATION``) in place of Flask-Login's own
  remember cookie; at a remote, ``login_user()`` raises ``RuntimeError``;
- anywhere, ``logout_user()`` ends the shared session everywhere;
- ``current_user`` is ``load_user(shared user)`` while the shared session is
  signed in *for this app* (at a remote: joined and not withdrawn), else
  anonymous;
- at a remote, ``@login_required`` sends an anonymous visitor to
  :data:`SIGN_IN_PATH`, which the middleware must protect: the hand-off runs
  there, and the view sends the signed-in user back to ``next`` (a local path
  only). A user ``load_user`` does not know gets a 403 that says so, not a loop.

Wrap ``app.wsgi_app`` first -- :func:`init_login` reads the role, the
``user_key`` and the origin from the middleware -- then::

    app.wsgi_app = RemoteSessionMiddleware(app.wsgi_app, ..., protect=["/account",
                                           SIGN_IN_PATH])
    login_manager = LoginManager(app)
    init_login(app, login_manager, load_user=User.get)   # no @user_loader of your own

Flask-Login's session protection compares a hash of the client's address and
user agent made at the sign-in: behind a proxy, every app must see the
client's own address (``ProxyFix``), or set ``login_manager.session_protection
= None``. Its other keys (``_fresh``, ``_id``) are shared, so a fresh sign-in
at the IdP is fresh everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app, redirect, request, session
from flask_login import user_logged_in, user_logged_out
from flask_login.config import COOKIE_DURATION, USE_SESSION_FOR_NEXT

from ..core.request import safe_return_path
from ..core.session import Session, state_of
from ..core.side import is_signed_in_user
from ..errors import ConfigurationError
from ..wsgi.base import SessionMiddleware
from . import shared_session
from .flask import SharedSessionInterface, init_app

if TYPE_CHECKING:
    from flask import Flask
    from flask.typing import ResponseReturnValue
    from flask_login import LoginManager

__all__ = ["SIGN_IN_PATH", "init_login"]

log = logging.getLogger("sessionshare")

#: Where a remote's ``@login_required`` sends an anonymous visitor (Flask-Login's
#: ``login_view``): the remote middleware must protect it.
SIGN_IN_PATH = "/_sessionshare/sign-in"
_ENDPOINT = "sessionshare_sign_in"
#: How deep ``init_login`` looks through ``app.wsgi_app``'s wrappers for the middleware.
_DEPTH = 16


def init_login(
    app: Flask,
    login_manager: LoginManager,
    *,
    load_user: Callable[[Any], Any],
    sign_in_path: str = SIGN_IN_PATH,
) -> None:
    """Make Flask-Login's user the shared sign-in's, at the IdP or at a remote.

    :param app: the Flask app, its ``wsgi_app`` already wrapped in the middleware.
    :param login_manager: the app's ``LoginManager``; its user loader and request
        loader are set here (do not register your own).
    :param load_user: this app's user for the shared user (a user id as the IdP's
        ``user.get_id()`` gave it), or None when this app has no such user.
    :param sign_in_path: at a remote, the path ``@login_required`` sends anonymous
        visitors to (``protect`` must include it); unused at the IdP.

    Installs :class:`~sessionshare.contrib.flask.SharedSessionInterface` if
    :func:`~sessionshare.contrib.flask.init_app` did not already.
    """
    middleware = _middleware_of(app)
    side = middleware.side
    role, user_key, origin = side.role, side.user_key, side.origin
    if not isinstance(app.session_interface, SharedSessionInterface):
        init_app(app)

    def shared_user() -> Any:
        """The user the shared session is signed in as for this app, or None."""
        shared = shared_session(request.environ)
        user = shared.get(user_key)
        if not is_signed_in_user(user):
            return None
        # A remote serves the sign-in only while its origin joined it (see Session.apps).
        if role == "remote" and not state_of(shared).has_joined(origin):
            return None
        return user

    def from_shared(*ignored: Any) -> Any:
        # Any id Flask-Login finds of its own (an older session's "_user_id") is ignored:
        # the shared sign-in is the one that counts, and it ends with a single logout.
        user = shared_user()
        return None if user is None else load_user(user)

    login_manager.user_loader(from_shared)
    login_manager.request_loader(from_shared)

    def signed_in(sender: Any, user: Any, **extra: Any) -> None:
        if role != "idp":
            raise RuntimeError(
                "login_user() at a remote: sign users in at the IdP -- a @login_required "
                "view here sends them there through the hand-off (see "
                "sessionshare.contrib.flask_login)"
            )
        shared = shared_session(request.environ)
        shared[user_key] = getattr(user, login_manager.id_attribute)()
        # Flask-Login's own copy of the id would be every other app's to read.
        session.pop("_user_id", None)
        _remember_instead(shared)

    def signed_out(sender: Any, user: Any, **extra: Any) -> None:
        # Flask-Login's order to clear its own cookie (one made before init_login) stays.
        forget = session.get("_remember")
        shared_session(request.environ).invalidate()  # single logout: ended everywhere
        if forget is not None:
            session["_remember"] = forget

    # Strong references: the receivers live as long as the app (blinker keeps weak ones).
    user_logged_in.connect(signed_in, sender=app, weak=False)
    user_logged_out.connect(signed_out, sender=app, weak=False)

    if role == "remote":
        def sign_in() -> ResponseReturnValue:
            return _sign_in(shared_user() is not None, sign_in_path)

        app.add_url_rule(sign_in_path, endpoint=_ENDPOINT, view_func=sign_in)
        login_manager.login_view = _ENDPOINT


def _remember_instead(shared: Session) -> None:
    """``login_user(remember=True)``: a remembered shared sign-in, not Flask-Login's cookie."""
    if session.pop("_remember", None) != "set":
        return
    seconds = session.pop("_remember_seconds", None)
    if seconds is None:
        duration = current_app.config.get("REMEMBER_COOKIE_DURATION", COOKIE_DURATION)
        seconds = (duration.total_seconds() if isinstance(duration, timedelta)
                   else float(duration))
    shared.remember(days=float(seconds) / 86400)


def _sign_in(signed_in: bool, path: str) -> ResponseReturnValue:
    """The remote's sign-in view: the hand-off ran in front of it; go on to ``next``."""
    from flask_login import current_user

    if not signed_in:
        raise ConfigurationError(
            f"{path} was reached without a signed-in user: the remote middleware must "
            f"protect it, so that the hand-off runs there (protect=[..., {path!r}])"
        )
    if not current_user.is_authenticated:
        log.warning(
            "remote_user_refused user=%r: the IdP signed this user in, but load_user "
            "returned None here (403 'no account for you')",
            str(request.environ.get("REMOTE_USER", ""))[:100],
        )
        return ("You are signed in, but this site has no account for you.", 403,
                {"Content-Type": "text/plain; charset=utf-8"})
    target = request.args.get("next")
    if not target and current_app.config.get("USE_SESSION_FOR_NEXT", USE_SESSION_FOR_NEXT):
        target = session.pop("next", None)
    return redirect(safe_return_path(target, default=request.script_root + "/"))


def _middleware_of(app: Flask) -> SessionMiddleware:
    """The sessionshare middleware in ``app.wsgi_app`` (through wrappers with an ``app``)."""
    layer: Any = app.wsgi_app
    for _ in range(_DEPTH):
        if isinstance(layer, SessionMiddleware):
            return layer
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    raise ConfigurationError(
        "init_login found no sessionshare middleware: wrap app.wsgi_app in "
        "IdpAuthMiddleware or RemoteSessionMiddleware first (app.wsgi_app = "
        "RemoteSessionMiddleware(app.wsgi_app, ...)), then call init_login(app, ...)"
    )
