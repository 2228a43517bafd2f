"""Framework adapters: the shared session behind a framework's own session API.

The middlewares do all the work -- cookie, load, persist, hand-off -- and
publish the request's :class:`~sessionshare.core.session.Session` at
``environ["sessionshare.session"]``. An adapter only puts a thin view over
that object where the framework looks for its session, so ``flask.session``
or ``request.session`` (Pyramid, Django) *is* the shared session: a key
written there is what every other app of the deployment reads. Values must
be JSON (``TypeError`` at assignment otherwise), a value mutated in place is
noticed without ``modified = True``, and flashed messages and CSRF tokens are
shared by two apps on the same framework (Django's CSRF token and sign-in
excepted: :mod:`sessionshare.contrib.django.site`).

    shared = shared_session(environ)       # the Session, or a clear error
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ..core.session import ENVIRON_KEY, Session
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["SharedSessionView", "shared_session"]

NOT_WRAPPED = (
    "no shared session in this request: wrap the WSGI app in IdpAuthMiddleware or "
    "RemoteSessionMiddleware (for Flask: app.wsgi_app = RemoteSessionMiddleware(app.wsgi_app, "
    "...); for Pyramid: RemoteSessionMiddleware(config.make_wsgi_app(), ...))"
)


def shared_session(environ: WSGIEnvironment) -> Session:
    """The request's shared session; ``ConfigurationError`` when no middleware runs."""
    session = environ.get(ENVIRON_KEY)
    if not isinstance(session, Session):
        raise ConfigurationError(NOT_WRAPPED)
    return session


class SharedSessionView(MutableMapping[str, Any]):
    """A mapping that reads and writes through to one shared :class:`Session`.

    It holds no data of its own, so whatever the framework or the middleware
    sees is the same thing; :attr:`shared` gives the session itself
    (``regenerate()``, ``authenticated_at``...).
    """

    def __init__(self, shared: Session) -> None:
        self.shared = shared

    def __getitem__(self, key: str) -> Any:
        return self.shared[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.shared[key] = value

    def __delitem__(self, key: str) -> None:
        del self.shared[key]

    def __contains__(self, key: object) -> bool:
        return key in self.shared

    def __iter__(self) -> Iterator[str]:
        return iter(self.shared)

    def __len__(self) -> int:
        return len(self.shared)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.shared!r}>"

    @property
    def new(self) -> bool:
        """True until the session exists in the store."""
        return self.shared.new

    def invalidate(self) -> None:
        """End the shared session everywhere (every app sees it gone next request)."""
        self.shared.invalidate()

    @property
    def authenticated_at(self) -> float | None:
        """When the IdP last signed a user into this session, or None."""
        return self.shared.authenticated_at
