"""Flask adapter: ``flask.session`` *is* the shared session.

Wrap ``app.wsgi_app`` in either middleware, then install the interface in
one line::

    from sessionshare import RemoteSessionMiddleware
    from sessionshare.contrib.flask import init_app

    app.wsgi_app = RemoteSessionMiddleware(app.wsgi_app, store=..., key=..., app_url=...,
                                           idp_url=...)
    init_app(app)

Flask then opens, for every request, a view over the session the middleware
already loaded (lazily: a view that never looks inside costs no round trip)
and never writes a cookie of its own: the middleware persists the changes
before the status line goes out and owns the cookie, so ``app.secret_key`` is
not needed for the session.

How Flask's session API maps:

- the mapping, ``flash()`` and ``get_flashed_messages()`` read and write the
  shared session. Values: JSON, plus what Flask's tagged JSON stores (tuples,
  ``bytes``, ``Markup``, ``UUID``, ``datetime``), kept in Flask's tagged form
  (``{" t": [1, 2]}``), which is what another app of the deployment reads for
  them; a list or dict that holds such a value comes back as a fresh copy each
  time: after changing it, assign it back;
- ``modified``, ``accessed`` and ``new`` behave as on Flask's own session;
  only an accessed session's answer says ``Vary: Cookie``. In-place changes are
  stored even without ``modified = True``;
- ``permanent`` is kept in the shared session (``_permanent``, as Flask does)
  and decides this app's cookie as in Flask (``PERMANENT_SESSION_LIFETIME``,
  ``SESSION_REFRESH_EACH_REQUEST``); a sign-in the IdP remembers still
  persists. The session's life on the server is still the middlewares'
  ``idle_timeout`` and ``absolute_timeout``, for every app alike;
- ``SESSION_COOKIE_*`` and ``APPLICATION_ROOT`` settings the app makes become
  the middleware's cookie options (:func:`cookie_settings`), so its own answers
  (the hand-off's callback, the sign-out) set and clear the very cookie the
  app's answers set. Flask's default ``SESSION_COOKIE_SAMESITE=None`` keeps the
  middleware's ``SameSite=Lax``: the sign-out's protection against cross-site
  requests counts on it;
- ``invalidate()`` ends the shared session everywhere (single logout),
  ``regenerate()`` moves it to a fresh id, and at the IdP ``remember(days=30)``
  makes the sign-in persistent (:meth:`sessionshare.Session.remember`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from flask.json.tag import TaggedJSONSerializer
from flask.sessions import NullSession, SessionInterface, SessionMixin

from ..core.cookies import CookieSpec, cookie_conflicts
from ..core.lifecycle import follow_cookie
from ..core.reply import Reply
from ..core.session import ENVIRON_KEY, Session, peek, state_of
from ..errors import ConfigurationError, StoreUnavailable
from ..wsgi.environ import wants_json
from . import NOT_WRAPPED, SharedSessionView

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

__all__ = [
    "FlaskSharedSession",
    "SharedSessionInterface",
    "UnwrappedSession",
    "cookie_settings",
    "init_app",
    "refuse_cookie_settings",
]

#: Flask's own tags for the values JSON lacks (its cookie session's serializer).
_TAGS = TaggedJSONSerializer()
#: The types no tag applies to: stored as they are.
_PLAIN = frozenset((str, int, float, bool, type(None)))


def _untagged(value: Any) -> Any:
    """``value`` with Flask's tagged objects turned back into their values; ``value``
    itself when it holds none (so that it can still be changed in place)."""
    if isinstance(value, list):
        items = [_untagged(item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        inner = {name: _untagged(item) for name, item in value.items()}
        if any(inner[name] is not value[name] for name in value):
            value = inner
        # Flask escapes a plain one-key object whose key looks like a tag, so this finds
        # only what it tagged -- of what Flask wrote. Another app of the deployment stores
        # plain JSON, where ``{" t": 5}`` is just a dict: what does not untag stays as it is
        # (a TypeError or ValueError from Flask's tags would be a 500 on every later read).
        if len(value) != 1:
            return value
        try:
            return _TAGS.untag(value)
        except Exception:  # any tag's failure (TypeError, binascii.Error, StopIteration...)
            return value
    return value


class FlaskSharedSession(SharedSessionView, SessionMixin):  # type: ignore[override]  # new: read-only
    """``flask.session`` over the shared session (see the module docstring)."""

    def __init__(self, shared: Session) -> None:
        super().__init__(shared)
        #: A change made through this mapping in this request, or ``modified = True``.
        self._changed = False

    # -- Flask's two flags, as its SecureCookieSession keeps them ---------------------
    @property
    def modified(self) -> bool:
        """True once this request changed the session (and stays so after the response,
        as Flask's does), or set by hand; also while an in-place change of a list or
        dict waits to be stored."""
        return self._changed or self.shared.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # The flag Flask's code and tests read. What is stored does not hang on it: a
        # change, nested ones included, is found by comparing encodings when persisting.
        self._changed = bool(value)

    @property
    def accessed(self) -> bool:
        """True once this request looked inside the session: its answer then says
        ``Vary: Cookie``, as Flask's does. Set it to True to have that without a look."""
        return state_of(self.shared).accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        # The middleware reads the same flag when it adds Vary: one decision, the core's.
        state_of(self.shared).accessed = bool(value)

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, (dict, list)):
            return _untagged(value)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if type(value) not in _PLAIN:  # exactly: Markup is a str, and is tagged
            # A value that needs no tag is kept as it is: changing it in place still works.
            try:
                tagged = _TAGS.tag(value)
                if tagged != value or type(tagged) is not type(value):
                    value = tagged
            except RecursionError:
                pass  # a cycle, or hostile nesting: the session's own TypeError says so
        super().__setitem__(key, value)
        self._changed = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed = True

    def clear(self) -> None:
        super().clear()
        self._changed = True  # as Flask's: even a session that was empty

    @property
    def created(self) -> float | None:
        """When the session was first stored (seconds since the epoch), or None if new."""
        return self.shared.created

    def regenerate(self) -> None:
        """Move the data to a fresh session id when the response is persisted."""
        self.shared.regenerate()

    @property
    def reauthentication_required(self) -> bool:
        """At the IdP: ask for the password again (see the core Session's flag)."""
        return self.shared.reauthentication_required

    def remember(self, days: float = 30, *, idle: int | None = None) -> None:
        """At the IdP's sign-in: a persistent sign-in (:meth:`sessionshare.Session.remember`)."""
        self.shared.remember(days, idle=idle)


class UnwrappedSession(NullSession):
    """The session of a request no middleware wrapped (say, in
    ``app.test_request_context()``): empty, and writes raise a ``RuntimeError`` that
    says what to wrap."""

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        # Flask's own null session says "the session is unavailable"; so does this one,
        # and why, and what to wrap.
        raise RuntimeError(f"The session is unavailable: {NOT_WRAPPED}")

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail
    del _fail


class SharedSessionInterface(SessionInterface):
    """Serves ``flask.session`` from the middleware's shared session."""

    null_session_class = UnwrappedSession

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        shared = request.environ.get(ENVIRON_KEY)
        if not isinstance(shared, Session):
            return None  # Flask falls back to make_null_session()
        # Here the middleware is known: its cookie follows the app's settings (the same
        # settings again cost a comparison), or a ConfigurationError says which cannot hold.
        _follow(app, lambda asked: follow_cookie(shared, asked))
        return FlaskSharedSession(shared)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # The middleware persists the changes and owns the cookie: what Flask decides per
        # session (a permanent cookie, and whether this answer sends it) is asked of it.
        if not isinstance(session, FlaskSharedSession):
            return
        state = state_of(session.shared)
        modified = session.modified
        refresh_each = bool(app.config["SESSION_REFRESH_EACH_REQUEST"])
        permanent = False
        if state.loaded or modified or (refresh_each and state.sid is not None):
            # Flask's own interface reads its cookie for this on every request; a
            # session this request never read and will not send needs no read.
            try:
                permanent = bool(peek(session.shared, "_permanent"))
            except StoreUnavailable:
                return  # the answer is the outage's 503 already: nothing to ask of it
        lifetime = int(app.permanent_session_lifetime.total_seconds()) if permanent else None
        # Flask's should_set_cookie: a changed session, or a permanent one refreshed.
        state.ask_cookie(lifetime, refresh=modified or (permanent and refresh_each))


def init_app(app: Flask) -> None:
    """Serve ``flask.session`` from the shared session, and answer a store outage met
    inside a view (a page the middleware does not protect) with the middleware's 503
    and ``Retry-After``, not Flask's 500.

    The middleware's session cookie follows the app's ``SESSION_COOKIE_*`` and
    ``APPLICATION_ROOT`` settings (:func:`cookie_settings`): from here when the
    middleware already wraps ``app.wsgi_app`` -- directly, or under middleware
    that keeps what it wraps as ``.app``, as werkzeug's ``ProxyFix`` does -- else
    from the first request. Raises :class:`~sessionshare.errors.ConfigurationError`
    for one it cannot follow, saying which and why.
    """
    refuse_cookie_settings(app, None)
    lifecycle = _wrapped_lifecycle(app.wsgi_app)
    if lifecycle is not None:
        _follow(app, lifecycle.follow_cookie)
    app.session_interface = SharedSessionInterface()
    app.register_error_handler(StoreUnavailable, _store_unavailable)


#: How many wrappers deep :func:`init_app` looks for the middleware.
_WRAPPERS_DEEP = 8


def _wrapped_lifecycle(wsgi_app: object) -> Any:
    """The lifecycle of the sessionshare middleware ``wsgi_app`` is, or wraps through
    ``.app`` attributes (ProxyFix and most WSGI middleware keep the app they wrap
    there); None when there is none within :data:`_WRAPPERS_DEEP` wrappers."""
    for _ in range(_WRAPPERS_DEEP):
        lifecycle = getattr(getattr(wsgi_app, "side", None), "lifecycle", None)
        if lifecycle is not None and hasattr(lifecycle, "follow_cookie"):
            return lifecycle
        wsgi_app = getattr(wsgi_app, "app", None)
        if wsgi_app is None:
            return None
    return None


def _store_unavailable(exc: StoreUnavailable) -> Response:
    from flask import current_app, request

    # Fail closed, with the very reply the middleware sends for the paths it protects.
    # Flask drops the body of a HEAD answer itself, keeping Content-Length.
    reply = Reply.store_unavailable(as_json=wants_json(request.environ))
    return current_app.response_class(
        reply.body, status=reply.status_line, headers=list(reply.headers)
    )


#: Flask's settings of its session cookie, by the attribute each sets.
_COOKIE_SETTINGS = {
    "SESSION_COOKIE_NAME": "name",
    "SESSION_COOKIE_DOMAIN": "domain",
    "SESSION_COOKIE_PATH": "path",
    "SESSION_COOKIE_SECURE": "secure",
    "SESSION_COOKIE_HTTPONLY": "httponly",
    "SESSION_COOKIE_SAMESITE": "samesite",
    "SESSION_COOKIE_PARTITIONED": "partitioned",
}


def _follow(app: Flask, follow: Callable[[dict[str, object]], object]) -> None:
    """``follow`` the app's cookie settings; what cannot hold is refused naming them."""
    asked = cookie_settings(app)
    try:
        follow(asked)
    except ConfigurationError as exc:
        keys = [key for key, attribute in _COOKIE_SETTINGS.items() if attribute in asked]
        raise ConfigurationError(
            f"Flask's session cookie settings ({', '.join(keys) or 'APPLICATION_ROOT'}) "
            f"that the shared session's cookie cannot follow: {exc}"
        ) from None


def cookie_settings(app: Flask) -> dict[str, object]:
    """The app's own settings for its session cookie, by attribute (``name``,
    ``domain``, ``path``, ``secure``, ``httponly``, ``samesite``, ``partitioned``):
    each one it set to anything but Flask's default, which the middleware's cookie
    then follows. The path is Flask's: ``SESSION_COOKIE_PATH``, else
    ``APPLICATION_ROOT``."""
    from flask import Flask

    defaults, config = Flask.default_config, app.config
    asked: dict[str, object] = {}
    for key, attribute in _COOKIE_SETTINGS.items():
        if key != "SESSION_COOKIE_PATH" and config.get(key) != defaults.get(key):
            asked[attribute] = config.get(key)
    path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
    if path != "/":
        asked["path"] = path
    return asked


def refuse_cookie_settings(app: Flask, cookie: CookieSpec | None) -> None:
    """Raise :class:`~sessionshare.errors.ConfigurationError` naming each of the app's
    own session cookie settings that cannot hold beside the middleware's ``cookie``.

    ``init_app`` calls it with ``cookie`` None: only a setting no cookie could
    have (a ``SameSite`` that is not Lax, Strict or None) is refused there; every
    other one is followed (:func:`cookie_settings`, ``Lifecycle.follow_cookie``).
    Given the middleware's ``cookie``, it names each setting that differs from it,
    with why and the middleware's option that would make it hold: a check for an
    app that wants its settings to match the middleware's as configured.
    """
    from flask import Flask

    defaults, config = Flask.default_config, app.config
    asked: dict[str, object] = {}
    keys: dict[str, str] = {}
    for key, attribute in _COOKIE_SETTINGS.items():
        if config.get(key) != defaults.get(key):
            asked[attribute], keys[attribute] = config.get(key), key
    if "path" not in asked and config.get("APPLICATION_ROOT") != defaults["APPLICATION_ROOT"]:
        # Flask's cookie path when SESSION_COOKIE_PATH is unset.
        asked["path"], keys["path"] = config.get("APPLICATION_ROOT"), "APPLICATION_ROOT"
    conflicts = cookie_conflicts(cookie, asked)
    if not conflicts:
        return
    lines = []
    for conflict in conflicts:
        key, value = keys[conflict.attribute], asked[conflict.attribute]
        if key == "APPLICATION_ROOT":
            # It also prefixes the app's URLs: keep it, and give the cookie its path.
            instead = "set SESSION_COOKIE_PATH='/' (APPLICATION_ROOT stays for the URLs)"
        elif conflict.option is not None:
            instead = (f"set {conflict.option}={value!r} on the middleware "
                       f"(SESSIONSHARE_{conflict.option.upper()}), or leave {key} unset")
        else:
            instead = f"leave {key} unset"
        lines.append(f"- {key}={value!r}: the shared session's cookie has {conflict.attribute}"
                     f"={conflict.current!r}, because {conflict.why}. Fix: {instead}.")
    raise ConfigurationError(
        "Flask's session cookie settings that the shared session cannot follow:\n"
        + "\n".join(lines)
    )
