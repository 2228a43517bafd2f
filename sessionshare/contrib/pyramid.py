"""Pyramid adapter: ``request.session`` is the shared session, a full ``ISession``.

Include it, then wrap the WSGI app Pyramid makes in either middleware::

    config = Configurator()
    config.include("sessionshare.contrib.pyramid")
    config.set_security_policy(RemoteUserSecurityPolicy())     # optional, see below
    ...
    app = RemoteSessionMiddleware(config.make_wsgi_app(), store=..., key=..., app_url=...,
                                  idp_url=..., protect=["/orders"])

``request.session`` is then a view over the session the middleware loaded,
with ``ISession``'s API as Pyramid documents it, so Pyramid's default CSRF
storage and ``require_csrf`` work unchanged. Values must be JSON, as Pyramid
2 already asks. ``invalidate()`` ends the shared session *everywhere*
(single logout); ``changed()`` is never needed: in-place changes are noticed.

**Who is signed in.** The middleware sets ``REMOTE_USER`` on every path it
protects once the shared session is signed in (the IdP: on every path), and
on the paths it does not protect only where the passive check is on
(``passive=``). :class:`RemoteUserSecurityPolicy` reads it, so
``request.identity`` and ``request.authenticated_userid`` are the user, and
ACLs see ``Everyone``, ``Authenticated`` and the user id. ``remember()`` and
``forget()`` return no headers: signing in happens at the IdP, and signing
out is a POST to the middleware's ``logout_path``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.interfaces import ISession
from zope.interface import implementer

from ..core.session import Session
from . import SharedSessionView, shared_session

__all__ = ["PyramidSharedSession", "RemoteUserSecurityPolicy", "includeme", "session_factory"]

FLASH_PREFIX = "_f_"  # Pyramid's own session keeps its flash queues under these keys
CSRF_KEY = "_csrft_"


@implementer(ISession)
class PyramidSharedSession(SharedSessionView):
    """``request.session`` over the shared session (see the module docstring)."""

    def __init__(self, shared: Session, clock: Callable[[], float] = time.time) -> None:
        super().__init__(shared)
        self._opened = int(clock())

    @property
    def created(self) -> int:
        """Epoch seconds when the session was stored (for a new one: when it was opened)."""
        created = self.shared.created
        return self._opened if created is None else int(created)

    def changed(self) -> None:
        return None  # in-place changes are found when the response is persisted

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        messages = list(self.get(FLASH_PREFIX + queue) or [])
        if allow_duplicate or msg not in messages:
            messages.append(msg)
            self[FLASH_PREFIX + queue] = messages

    def pop_flash(self, queue: str = "") -> list[Any]:
        return list(self.pop(FLASH_PREFIX + queue, None) or [])

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self.get(FLASH_PREFIX + queue) or [])

    def new_csrf_token(self) -> str:
        token = secrets.token_hex(20)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        token = self.get(CSRF_KEY)
        if isinstance(token, str) and token:
            return token
        return self.new_csrf_token()


def session_factory(request: Any) -> PyramidSharedSession:
    """Pyramid's session factory: the view over this request's shared session."""
    return PyramidSharedSession(shared_session(request.environ))


class RemoteUserSecurityPolicy:
    """A Pyramid security policy whose identity is ``REMOTE_USER``, with ACL permits."""

    def __init__(self) -> None:
        self._acl = ACLHelper()

    def identity(self, request: Any) -> str | None:
        user = request.environ.get("REMOTE_USER")
        return user if isinstance(user, str) and user else None

    def authenticated_userid(self, request: Any) -> str | None:
        return self.identity(request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        principals = [Everyone]
        userid = self.identity(request)
        if userid is not None:
            principals += [Authenticated, userid]
        return self._acl.permits(context, principals, permission)

    def remember(self, request: Any, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        return []  # users sign in at the IdP, whose middleware sets the cookie

    def forget(self, request: Any, **kw: Any) -> list[tuple[str, str]]:
        return []  # sign out with a POST to the middleware's logout_path


def includeme(config: Any) -> None:
    """``config.include("sessionshare.contrib.pyramid")``: install the session factory."""
    config.set_session_factory(session_factory)
