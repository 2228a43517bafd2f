"""Django's own session keys, kept per site: :class:`SiteView`.

Django writes ``_auth_user_id`` (the user's primary key *in this site's user
table*), ``_auth_user_backend``, ``_auth_user_hash``, with
``CSRF_USE_SESSIONS`` ``_csrftoken``, and with ``set_expiry()``
``_session_expiry`` (this site's ask) into ``request.session``. In a session
shared by several sites those would be read by every other Django site, whose
user table may give that id to someone else. So :class:`SiteView` keeps them
in a dict of this site's own, under ``"django:" + origin``, and hides every
such dict from the keys Django code iterates.

The sign-in they record is tied to the shared sign-in it was made under
(:meth:`SiteView.bind_sign_in`, called when ``auth.login()`` signals it): it
counts only while the shared session names the same user and, at a remote,
this site is still joined (:attr:`~sessionshare.core.session.Session.apps`).
After a sign-out elsewhere, another user's sign-in at the IdP, or
:meth:`~sessionshare.core.session.Session.withdraw`, Django sees an anonymous
user -- and ``RemoteUserMiddleware`` signs the new one in.

    view = SiteView(shared, facts)
    view["_auth_user_id"] = "7"      # in shared["django:https://forum.example"]
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, MutableMapping
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.middleware.csrf import CSRF_SESSION_KEY

from ...core.session import Session, state_of
from ...core.side import is_signed_in_user
from .wsgi import AppFacts

__all__ = ["AUTH_KEYS", "EXPIRY_KEY", "LOCAL_KEYS", "NAMESPACE", "SiteView"]

#: Prefix of each Django site's own dict in the shared session.
NAMESPACE = "django:"
#: Keys kept in this site's dict rather than shared.
AUTH_KEYS = frozenset({SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY})
#: Where Django's ``set_expiry()`` keeps what this site asked.
EXPIRY_KEY = "_session_expiry"
LOCAL_KEYS = AUTH_KEYS | {CSRF_SESSION_KEY, EXPIRY_KEY}
#: In the site's dict: the shared user the Django sign-in was made under.
_SIGNED_IN_AS = "signed_in_as"


def _readable_expiry(value: Any) -> bool:
    """True for a ``_session_expiry`` as Django's ``set_expiry()`` stores it: seconds, or
    an ISO 8601 date and time Django can compare with its own clock."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return abs(value) <= _MAX_EXPIRY_SECONDS  # False for NaN, no float conversion
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            return False
        # Django subtracts it from its own now(): aware under USE_TZ, naive without.
        return (when.tzinfo is not None) == bool(settings.USE_TZ)
    return value is None


#: Seconds beyond which an expiry names no date (a century).
_MAX_EXPIRY_SECONDS = 100 * 366 * 86400


class SiteView(MutableMapping[str, Any]):
    """The shared session as this Django site sees it: shared keys, its own
    :data:`LOCAL_KEYS` kept in its dict, other sites' dicts hidden."""

    def __init__(self, shared: Session, facts: AppFacts) -> None:
        self.shared = shared
        self.facts = facts
        self.site_key = NAMESPACE + facts.origin

    # -- this site's dict --------------------------------------------------
    def _site(self) -> dict[str, Any]:
        site = self.shared.get(self.site_key)
        return dict(site) if isinstance(site, dict) else {}

    def _store_site(self, site: dict[str, Any]) -> None:
        if site:
            self.shared[self.site_key] = site
        elif self.site_key in self.shared:
            del self.shared[self.site_key]

    def shared_user(self) -> Any:
        user = self.shared.get(self.facts.user_key)
        return user if is_signed_in_user(user) else None

    def _sign_in_holds(self, site: dict[str, Any]) -> bool:
        user = self.shared_user()
        if user is None or site.get(_SIGNED_IN_AS) != user:
            return False
        return self.facts.role == "idp" or state_of(self.shared).has_joined(self.facts.origin)

    def _local(self) -> dict[str, Any]:
        site = self._site()
        visible = {key: site[key] for key in LOCAL_KEYS if key in site}
        if EXPIRY_KEY in visible and not _readable_expiry(visible[EXPIRY_KEY]):
            # Any app of the deployment can write this dict: an expiry Django cannot read
            # (text that is no ISO date, a number past any date, a list) is no ask -- not a
            # 500 on every later answer of this site that changes the session.
            del visible[EXPIRY_KEY]
        if not self._sign_in_holds(site):
            for key in AUTH_KEYS:
                visible.pop(key, None)
        return visible

    def bind_sign_in(self) -> None:
        """Tie Django's sign-in here to the shared user it was made under."""
        site = self._site()
        site[_SIGNED_IN_AS] = self.shared_user()
        self._store_site(site)

    # -- the mapping ---------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in LOCAL_KEYS:
            return self._local()[key]
        if key.startswith(NAMESPACE):
            raise KeyError(key)
        return self.shared[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in LOCAL_KEYS:
            site = self._site()
            site[key] = value
            self._store_site(site)
        elif key.startswith(NAMESPACE):
            raise KeyError(f"{key!r}: keys starting with {NAMESPACE!r} are the Django sites' own")
        else:
            self.shared[key] = value

    def __delitem__(self, key: str) -> None:
        if key in LOCAL_KEYS:
            if key not in self._local():
                raise KeyError(key)
            site = self._site()
            del site[key]
            self._store_site(site)
        elif key.startswith(NAMESPACE):
            raise KeyError(key)
        else:
            del self.shared[key]

    def __contains__(self, key: object) -> bool:
        if key in LOCAL_KEYS:
            return key in self._local()
        if isinstance(key, str) and key.startswith(NAMESPACE):
            return False
        return key in self.shared

    def __iter__(self) -> Iterator[str]:
        yield from (key for key in list(self.shared) if not key.startswith(NAMESPACE))
        yield from self._local()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<SiteView {self.facts.origin} of {self.shared!r}>"
