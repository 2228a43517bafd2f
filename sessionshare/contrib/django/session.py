"""The session engine: Django's ``request.session`` *is* the shared session.

``SESSION_ENGINE = "sessionshare.contrib.django.session"``, with
:class:`sessionshare.contrib.django.middleware.SessionMiddleware` in place of
Django's own. Each request's :class:`SessionStore` is a view over the
:class:`~sessionshare.core.session.Session` the WSGI middleware loaded: it
holds no data, writes no cookie and saves nothing itself -- the middleware
persists the changes before the status line goes out.

How Django's session API maps:

- the mapping (``[]``, ``get``, ``pop``, ``setdefault``, ``update``, ``keys``,
  ``items``..., and their ``a...`` twins): reads and writes the shared
  session; values must be JSON (a ``TypeError`` at assignment otherwise), as
  with Django's default ``JSONSerializer``;
- ``modified``: True when persisting would write something; in-place changes
  of a list or dict are noticed, so ``modified = True`` is harmless and never
  needed. ``accessed``: True once anything looked inside;
- ``cycle_key()`` -> :meth:`Session.regenerate` (at a remote that joined the
  session, the id stays: only the IdP moves it), ``flush()`` and ``delete()``
  -> :meth:`Session.invalidate`: the shared session ends *everywhere*, which is
  what ``django.contrib.auth.logout()`` now does; ``clear()`` removes every
  key (the shared user too), and the emptied session ends, store entry and
  cookie (as Django drops the cookie of an emptied session);
- ``session_key``: None while the session is new, else a stable reference
  (an HMAC of the id under ``SECRET_KEY``) -- never the id, which is a bearer
  credential. ``save()`` does nothing: persisting is the middleware's;
- expiry is decided on the server, for every app alike, by ``idle_timeout``
  and ``absolute_timeout``: ``get_expiry_age()`` is what is left of them now
  (at most ``idle_timeout``, as each request slides it), ``get_expiry_date()``
  that moment, ``get_session_cookie_age()`` the idle timeout, and
  ``get_expire_at_browser_close()`` True (the cookie is a browser-session
  cookie). ``set_expiry(None)`` and ``set_expiry(0)`` are accepted (they ask
  for what already holds); any other value raises ``ValueError``;
- ``create()``, ``exists()``, ``delete(key)`` of another session and
  ``save(must_create=True)`` raise ``NotImplementedError``: sessions are made
  by the middleware, never from a key; ``clear_expired()`` does nothing (the
  store expires sessions itself).

**Django's own keys are this site's**: ``_auth_user_*`` and ``_csrftoken``
live in a per-site dict of the shared session
(:mod:`sessionshare.contrib.django.site`), and Django's
sign-in counts only while the shared sign-in it was made under holds. At the
IdP, ``auth.login()`` also sets the shared user
(``session[user_key] = user.get_username()``), which is what signs the user
in everywhere.

A ``SessionStore()`` made outside a request (``Client.session``, a shell) has
no shared session: using it raises ``RuntimeError`` naming what to wrap.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import salted_hmac

from ...core.session import Session, state_of
from .site import SiteView
from .wsgi import AppFacts

__all__ = ["SessionStore"]

NOT_WRAPPED = (
    "this SessionStore has no shared session: request.session is only available inside "
    "a request served by sessionshare.contrib.django.wsgi.get_wsgi_application() with "
    "sessionshare.contrib.django.middleware.SessionMiddleware in MIDDLEWARE (Django's "
    "test Client.session and Client.login() cannot make one)"
)


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
        super().__init__(None)
        self.view = SiteView(shared, facts) if shared is not None and facts is not None else None

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

    @property
    def modified(self) -> bool:
        return self.view is not None and self.view.shared.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Changes, nested ones included, are found by comparing encodings at persist time.
        return None

    @property
    def session_key(self) -> str | None:
        """A stable reference to the session (not its id), or None while it is new."""
        if self.view is None:
            return None
        sid = state_of(self.view.shared).stored_id
        if sid is None:
            return None
        return str(salted_hmac("sessionshare.contrib.django.session_key", sid).hexdigest())

    def clear(self) -> None:
        self.accessed = True
        shared = self.shared
        for key in list(shared):
            del shared[key]

    def is_empty(self) -> bool:
        return self.view is None or len(self.view) == 0

    # -- lifetime: decided on the server ---------------------------------------
    def get_session_cookie_age(self) -> int:
        return self._view().facts.idle_timeout

    def get_expiry_age(self, **kwargs: Any) -> int:
        """Seconds the session has left now: the idle timeout, or less near its end."""
        view = self._view()
        facts = view.facts
        now = facts.clock()
        start = max(view.shared.created or now, view.shared.authenticated_at or 0)
        return max(0, int(min(facts.idle_timeout, start + facts.absolute_timeout - now)))

    def get_expiry_date(self, **kwargs: Any) -> datetime.datetime:
        now = self._view().facts.clock()
        return datetime.datetime.fromtimestamp(now + self.get_expiry_age(), datetime.timezone.utc)

    def set_expiry(self, value: Any) -> None:
        if value is None or value == 0 or value == datetime.timedelta(0):
            return  # what already holds: server-side limits, a browser-session cookie
        raise ValueError(
            f"set_expiry({value!r}): the shared session's lifetime is decided on the server, "
            "for every app alike, by SESSIONSHARE['idle_timeout'] and ['absolute_timeout'] "
            "(and the IdP's); only set_expiry(None) and set_expiry(0) are accepted"
        )

    async def aset_expiry(self, value: Any) -> None:
        self.set_expiry(value)

    def get_expire_at_browser_close(self) -> bool:
        return True

    async def aget_expire_at_browser_close(self) -> bool:
        return True

    # -- ending and moving the session -------------------------------------------
    def flush(self) -> None:
        """End the shared session everywhere (single logout)."""
        self.accessed = True
        self.shared.invalidate()

    async def aflush(self) -> None:
        self.flush()

    def cycle_key(self) -> None:
        """Move the session to a fresh id when persisted (kept at a remote that joined it)."""
        self.accessed = True
        self.shared.regenerate()

    async def acycle_key(self) -> None:
        self.cycle_key()

    def save(self, must_create: bool = False) -> None:
        self._view()
        if must_create:
            raise NotImplementedError("sessions are created by the sessionshare middleware")
        # Nothing to do: the middleware persists before the response starts.

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is not None and session_key != self.session_key:
            raise NotImplementedError("only the request's own session can be deleted")
        self.flush()

    async def adelete(self, session_key: str | None = None) -> None:
        self.delete(session_key)

    def load(self) -> dict[str, Any]:
        return dict(self._view())

    async def aload(self) -> dict[str, Any]:
        return self.load()

    def create(self) -> None:
        raise NotImplementedError("sessions are created by the sessionshare middleware")

    async def acreate(self) -> None:
        self.create()

    def exists(self, session_key: str) -> bool:
        raise NotImplementedError("sessions are not looked up by key here")

    async def aexists(self, session_key: str) -> bool:
        return self.exists(session_key)

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
