"""The session engine: Django's ``request.session`` *is* the shared session.

``SESSION_ENGINE = "sessionshare.contrib.django.session"``, with
:class:`sessionshare.contrib.django.middleware.SessionMiddleware` in place of
Django's own. Each request's :class:`SessionStore` is a view over the
:class:`~sessionshare.core.session.Session` the WSGI middleware loaded: it
holds no data and writes no cookie itself -- the middleware persists the
changes before the status line goes out, and sets the cookie.

``SessionBase``'s contract holds on a shared session, each method saying how
(docs/frameworks.md lists what still differs): values must be JSON, as with
Django's default ``JSONSerializer``; ``save()`` and ``flush()`` act on the store
at once, as Django's backends do, and ``flush()`` -- so
``django.contrib.auth.logout()`` -- ends the shared session *everywhere*;
``set_expiry()`` asks the shared session to end by then, for every app, within
its idle and absolute limits. ``session_key`` is a stable reference (an HMAC of
the id under ``SECRET_KEY``), never the id, which is a bearer credential; a
session is found only through the browser's cookie, so another session's key
cannot be looked up (end another user's sessions with :mod:`sessionshare.admin`).
``clear_expired()`` does nothing: the store expires sessions itself.

**Django's own keys are this site's**: ``_auth_user_*``, ``_csrftoken`` and
``_session_expiry`` live in a per-site dict of the shared session
(:mod:`sessionshare.contrib.django.site`), and Django's sign-in counts only
while the shared sign-in it was made under holds. At the IdP, ``auth.login()``
also sets the shared user (``session[user_key] = user.get_username()``),
which is what signs the user in everywhere.

A ``SessionStore()`` made outside a request (``Client.session``, a shell) has
no shared session: using it raises ``RuntimeError`` naming what to wrap.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ...core.ids import SessionIds
from ...core.session import Session, state_of
from ...errors import SessionEnded
from .site import EXPIRY_KEY, SiteView
from .wsgi import AppFacts

__all__ = ["SessionStore"]

NOT_WRAPPED = (
    "this SessionStore has no shared session: request.session is only available inside "
    "a request served by sessionshare.contrib.django.wsgi.get_wsgi_application() with "
    "sessionshare.contrib.django.middleware.SessionMiddleware in MIDDLEWARE (Django's "
    "test Client.session and Client.login() cannot make one)"
)
FOREIGN_KEY = (
    "a session is found only through the browser's cookie, so another session's key "
    "cannot be looked up here; list and end a user's sessions with "
    "sessionshare.admin.SessionAdmin (sessions(), revoke()) or `python -m sessionshare "
    "sessions`"
)
#: ``session_key``: a keyed digest of the id (never the id itself), and its form.
_KEY_SALT = "sessionshare.contrib.django.session_key"
_KEY = re.compile(r"[0-9a-f]{40}")


def _run_sync(name: str) -> Any:
    """The ``a...`` twin of the method ``name``: a coroutine that runs it."""

    async def twin(self: SessionStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, name)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = "a" + name
    return twin


class SessionStore(SessionBase):  # type: ignore[misc]  # Django ships no types
    """``request.session`` over the shared session (see the module docstring)."""

    def __init__(
        self,
        session_key: str | None = None,
        *,
        shared: Session | None = None,
        facts: AppFacts | None = None,
    ) -> None:
        # Django's own engines take the cookie's key; this one is given the request's
        # shared session by the middleware instead, and ignores a key.
        self.view = SiteView(shared, facts) if shared is not None and facts is not None else None
        #: ``modified = True`` was said (or a change made through Django's API).
        self._flagged = False
        #: What had changed when ``modified = False`` was said last.
        self._acknowledged: tuple[Any, ...] | None = None
        #: Every ``session_key`` this object gave out (so exists()/delete() know them).
        self._given: set[str] = set()
        super().__init__(None)

    def _view(self) -> SiteView:
        if self.view is None:
            raise RuntimeError(NOT_WRAPPED)
        return self.view

    # SessionBase reads and writes through ``_session`` (and ``_aget_session``): the view.
    def _get_session(self, no_load: bool = False) -> SiteView:
        view = self._view()
        self.accessed = True
        return view

    _session = property(_get_session)

    async def _aget_session(self, no_load: bool = False) -> SiteView:
        return self._get_session()

    @property
    def shared(self) -> Session:
        """The shared :class:`~sessionshare.core.session.Session` itself."""
        return self._view().shared

    # -- modified ----------------------------------------------------------------
    def _changes(self) -> tuple[Any, ...] | None:
        """What persisting the shared session would write now (None: nothing)."""
        if self.view is None:
            return None
        state = state_of(self.view.shared)
        if not state.modified:
            return None
        changed, deleted = state.changes()
        return (sorted(changed.items()), sorted(deleted), sorted(state.meta_changed),
                state.regenerating, state.invalidated)

    @property
    def modified(self) -> bool:
        if self._flagged:
            return True
        changes = self._changes()
        return changes is not None and changes != self._acknowledged

    @modified.setter
    def modified(self, value: bool) -> None:
        # Django sets it True on each change made through its API; False (Django's own
        # start, or the app's) holds until the next change -- an in-place one included.
        self._flagged = bool(value)
        if not value:
            self._acknowledged = self._changes()

    # -- the key -----------------------------------------------------------------
    @property
    def session_key(self) -> str | None:
        """A stable reference to the session (not its id), or None while it is new."""
        if self.view is None:
            return None
        sid = self.view.facts.lifecycle.id_after_persist(self.view.shared)
        if sid is None:
            return None
        key = str(salted_hmac(_KEY_SALT, sid).hexdigest())
        self._given.add(key)
        return key

    def exists(self, session_key: str | None) -> bool:
        """Whether ``session_key`` names a stored session (this one's, as last read or
        written; not one it had, nor text no key has); ``ValueError`` for another
        session's key, which cannot be looked up (see the module docstring)."""
        if not isinstance(session_key, str) or _KEY.fullmatch(session_key) is None:
            return False
        if session_key == self.session_key:
            return True
        if session_key in self._given:
            return False  # cycled or flushed by this object: that key is gone
        raise ValueError(FOREIGN_KEY)

    def clear(self) -> None:
        """Remove every key, the shared user too: the emptied session ends at the response
        (store entry and cookie, as Django drops an emptied one's) unless ``save()`` stores it."""
        self.accessed = True
        self.modified = True
        shared = self.shared
        for key in list(shared):
            del shared[key]

    def is_empty(self) -> bool:
        return self.view is None or len(self.view) == 0

    # -- lifetime: the stricter of the app's ask and the session's limits ------------
    def _allowed(self) -> int:
        """Seconds the shared session allows from now, this app's own ask aside."""
        view = self._view()
        return view.facts.lifecycle.time_left(view.shared, own_ask=False)

    def get_expiry_age(self, **kwargs: Any) -> int:
        """The stricter of what this app asks (Django's reading) and what the session
        allows: an ask beyond the session's limits is capped to them."""
        return min(int(super().get_expiry_age(**kwargs)), self._allowed())

    def get_expiry_date(self, **kwargs: Any) -> datetime.datetime:
        asked: datetime.datetime = super().get_expiry_date(**kwargs)
        allowed: datetime.datetime = timezone.now() + datetime.timedelta(seconds=self._allowed())
        return asked if asked <= allowed else allowed

    def set_expiry(self, value: Any) -> None:
        """Django's ``set_expiry``, and the shared session asked to end by then."""
        super().set_expiry(value)
        self.renew_expiry()

    def renew_expiry(self) -> None:
        """Ask the shared session to end when this app's expiry says, counted from now
        (seconds count from the last change, as Django's backends count them: the
        middleware calls this as a response that changed the session goes out)."""
        view = self._view()
        expiry = view.get(EXPIRY_KEY)
        if isinstance(expiry, bool) or not expiry:  # None or 0: no ask (browser close)
            view.shared.expire_at(None)
        elif isinstance(expiry, str):
            view.shared.expire_at(datetime.datetime.fromisoformat(expiry).timestamp())
        elif isinstance(expiry, (int, float)):
            view.shared.expire_at(view.facts.clock() + expiry)

    def get_expire_at_browser_close(self) -> bool:
        """Django's reading -- ``set_expiry(0)``: True; another expiry: False; none:
        ``SESSION_EXPIRE_AT_BROWSER_CLOSE`` -- except for a sign-in the IdP remembers,
        whose cookie outlives the browser whatever this app asks: False then."""
        if self.view is None:
            return bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE)
        sid = None if self.view.shared.new else state_of(self.view.shared).stored_id
        if sid is not None and SessionIds.is_remembered(sid):
            return False
        return bool(super().get_expire_at_browser_close())

    def ask_cookie(self) -> None:
        """Ask the middleware for the cookie Django's ``SessionMiddleware`` would set on
        this response: one that ends with the browser, else one lasting
        :meth:`get_expiry_age`, re-sent with each answer that used the session (the idle
        limit capping that age slides with each read). Nothing for a response that never
        used the session (its answer stays cacheable) or that ended it."""
        if self.view is None:
            return
        state = state_of(self.view.shared)
        # Only a session already read and used: asking reads it, and a read here would
        # be a store round trip (or the outage a 503 already answers) and a Vary: Cookie
        # on an answer that never depended on the cookie.
        if not (state.loaded and (self.accessed or state.accessed)) or state.invalidated:
            return
        if self.get_expire_at_browser_close():
            # Re-sent when the session changed, as Django's middleware sends it then: the
            # browser may hold a persistent one from before a set_expiry(0).
            state.ask_cookie(None, refresh=self.modified)
        else:
            state.ask_cookie(self.get_expiry_age(), refresh=True)

    # -- saving, ending and moving the session -----------------------------------------
    def save(self, must_create: bool = False) -> None:
        """Persist now: a new session, even an empty one, is stored and has its key. A
        session ended or moved meanwhile (a logout in another app) is not written:
        ``UpdateError``, as Django's backends raise it, and it reads as new and empty.
        ``must_create`` on a stored session: ``CreateError``."""
        shared = self.shared
        if must_create and not shared.new:
            raise CreateError("save(must_create=True): this session is stored already "
                              "(create() gives it a fresh key)")
        if self.modified and self._view().get(EXPIRY_KEY):
            self.renew_expiry()
        try:
            shared.save()
        except SessionEnded as exc:
            raise UpdateError(str(exc)) from exc

    def create(self) -> None:
        """Store this session now under a fresh key (moved there if it was stored)."""
        shared = self.shared
        if not shared.new:
            shared.regenerate()
        self.modified = True
        self.save()

    def flush(self) -> None:
        """End the shared session everywhere, now (single logout)."""
        self.accessed = True
        self.modified = True
        shared = self.shared
        stored = not shared.new
        shared.invalidate()
        if stored and state_of(shared).saver is not None:  # served: persisted before the answer
            shared.save()  # a deletion: nothing can refuse it

    def cycle_key(self) -> None:
        """A fresh key at once (kept at a remote that joined the session): the session
        moves to it when persisted -- one conditional store step, the old id dying then.
        Django's ``login()`` calls it, and the IdP's sign-in moves the session to that
        same id: one move, not two."""
        self.accessed = True
        self.modified = True
        self.shared.regenerate()

    def delete(self, session_key: str | None = None) -> None:
        """End this session (:meth:`flush`); a key it no longer has names nothing."""
        if session_key is None or self.exists(session_key):
            self.flush()

    def load(self) -> dict[str, Any]:
        return dict(self._view())

    # Served under the WSGI middleware (a sync server): each async twin of Django's API
    # runs its sync method.
    aexists = _run_sync("exists")
    aget_expiry_age = _run_sync("get_expiry_age")
    aget_expiry_date = _run_sync("get_expiry_date")
    aset_expiry = _run_sync("set_expiry")
    aget_expire_at_browser_close = _run_sync("get_expire_at_browser_close")
    asave = _run_sync("save")
    acreate = _run_sync("create")
    aflush = _run_sync("flush")
    acycle_key = _run_sync("cycle_key")
    adelete = _run_sync("delete")
    aload = _run_sync("load")

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: the store expires sessions itself (``clearsessions`` is a no-op)."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Nothing to do, as :meth:`clear_expired`."""


def _on_sign_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """``auth.login()``: at the IdP the shared user is set; the sign-in is bound to it."""
    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore) or session.view is None:
        return
    view = session.view
    if view.facts.role == "idp":
        view.shared[view.facts.user_key] = user.get_username()
    view.bind_sign_in()


user_logged_in.connect(_on_sign_in, dispatch_uid="sessionshare.contrib.django")
