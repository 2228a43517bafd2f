"""The shared session: what an app sees at ``environ["sessionshare.session"]``.

:class:`Session` is a ``dict`` of JSON values plus a few verbs and facts, as
Django's ``SessionBase`` and Flask's session are -- a ``dict``, as Starlette
and FastAPI hand out ``request.session``: ``json`` serialises it, ``|=``
merges into it. It is lazy -- the store is read at the first look inside,
through any of its methods -- and tracks what changed, nested changes such as
``session["cart"].append(x)`` included. An app that empties it ends the
session: persisting deletes it and its cookie. Code that reads a dict's
storage without its methods (``orjson``; ``json.dumps``, whose C encoder answers ``{}``
for a session not read yet) sees the values once it was read:
under ASGI always, under WSGI after a first look (``len(session)``).

Everything the protocol tracks besides -- the session id, the cookie, what
persisting must do -- is behind it (:func:`state_of`), never in the app's
hands. The id (:mod:`sessionshare.core.ids`) is a bearer credential: it lives
only in cookies, never in a URL, a log line, a ``repr()``, an error, a copy
or a pickle of the session (a plain ``dict`` of its values).

    session = environ["sessionshare.session"]
    session["cart"] = session.get("cart", []) + [item_id]
    session.invalidate()        # sign out everywhere
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from ..errors import SessionEnded
from .ids import MAX_LIMIT
from .record import META_AUTHENTICATED, META_CREATED, META_JOINED, SessionLoader
from .sessionstate import IMMUTABLE, SessionState, encode

__all__ = ["ENVIRON_KEY", "Session", "peek", "state_of"]

ENVIRON_KEY = "sessionshare.session"
_MISSING: Any = object()


class Session(dict[str, Any]):
    """One shared session: a lazy, change-tracking ``dict`` of JSON values.

    Keys are strings; values anything ``json.dumps`` accepts (a non-JSON
    value raises ``TypeError`` at assignment, ``update()`` and ``|=``
    included). Metadata lives apart from app keys (:attr:`created`,
    :attr:`authenticated_at`, :attr:`apps`). The middlewares make each
    request's session; made directly, ``Session()`` is never stored.

    :param loader: reads the stored session for an id; None for a session that
        is read through the protocol's steps, or never stored.
    :param sid: the well-formed id the request's cookie named, if any.
    """

    __slots__ = ("_state",)

    def __init__(self, loader: SessionLoader | None = None, sid: str | None = None) -> None:
        # No dict.__init__: a new dict is empty already (and this runs on every request).
        self._state = SessionState(loader, sid, self)

    def _read(self) -> SessionState:
        """The state, once the session was read (on this first look, if not before)."""
        state = self._state
        state.accessed = True
        if not state.loaded:
            state.ensure()
        return state

    def _hand_all(self) -> SessionState:
        """The state, once read, noting that the app now holds every value."""
        state = self._read()
        state.handed_all = True
        return state

    # -- reading: the store is read at the first look, then the dict answers ------
    # A value handed out is noted only when it can change in place (a list, a dict): the
    # persist that looks for changes skips a string or a number unseen.
    def __getitem__(self, key: str) -> Any:
        state = self._read()
        value = dict.__getitem__(self, key)
        if not isinstance(value, IMMUTABLE):
            state.handed.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        state = self._read()
        value = dict.get(self, key, default)
        if not isinstance(value, IMMUTABLE):
            state.handed.add(key)
        return value

    def __contains__(self, key: object) -> bool:
        self._read()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._read()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._read()
        return dict.__reversed__(self)

    def __len__(self) -> int:
        self._read()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._read()
        return dict.keys(self)

    def values(self) -> Any:
        self._hand_all()
        return dict.values(self)

    def items(self) -> Any:
        self._hand_all()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self._read()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._read()
        return dict.__ne__(self, other)

    __hash__ = None

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` of the values (shallow, as ``dict.copy``): never stored."""
        self._hand_all()
        return dict(dict.items(self))

    def __or__(self, other: Any) -> Any:
        self._hand_all()
        return dict.__or__(self, other)

    def __ror__(self, other: Any) -> Any:
        self._hand_all()
        return dict.__ror__(self, other)

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.copy(), memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (dict, (self.copy(),))

    # -- writing: every change is checked and tracked here ----------------------------
    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(
                "session keys must be valid Unicode text (no lone surrogates)"
            ) from None
        encode(key, value)
        state = self._read()
        dict.__setitem__(self, key, value)
        state.assigned.add(key)

    def __delitem__(self, key: str) -> None:
        state = self._read()
        dict.__delitem__(self, key)
        state.assigned.discard(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        state = self._read()
        if default is not _MISSING and not dict.__contains__(self, key):
            return default
        value = dict.pop(self, key)
        state.assigned.discard(key)
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last key and its value, as ``dict.popitem`` (LIFO)."""
        state = self._read()
        key, value = dict.popitem(self)
        state.assigned.discard(key)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]
        else:
            pairs = other
        for key, value in pairs:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override]
        self.update(other)
        return self

    def clear(self) -> None:
        state = self._read()
        dict.clear(self)
        state.assigned.clear()

    def __repr__(self) -> str:
        # No id (reprs end up in logs and tracebacks), no values, no store access.
        if not self._state.loaded:
            return "<Session unloaded>"
        return f"<Session {dict.__len__(self)} keys{'' if self._state.exists else ' new'}>"

    # -- facts -------------------------------------------------------------
    @property
    def new(self) -> bool:
        """True until the session exists in the store."""
        return not self._read().exists

    @property
    def modified(self) -> bool:
        """True when persisting would write something."""
        return self._state.modified

    @property
    def created(self) -> float | None:
        """When the session was first stored (seconds since the epoch), or None if new."""
        return self._read().meta.get(META_CREATED)

    @property
    def authenticated_at(self) -> float | None:
        """When the IdP last signed a user into this session, or None."""
        return self._read().meta.get(META_AUTHENTICATED)

    @property
    def apps(self) -> dict[str, int]:
        """The remote origins that joined this session through a hand-off the IdP
        authorized, each with when it joined (seconds since the epoch): a remote
        serves its protected paths to this session only while its origin is here."""
        start = len(META_JOINED)
        return {name[start:]: int(when) for name, when in self._read().meta.items()
                if name.startswith(META_JOINED) and when > 0}

    @property
    def reauthentication_required(self) -> bool:
        """True at the IdP when a remote asked for a recent sign-in (step-up) and this
        one is too old: the login view must ask for the password again and sign the
        user in again (assigning the user key, the same user is fine)."""
        return self._state.reauthentication_required

    # -- verbs -------------------------------------------------------------
    def withdraw(self, origin: str) -> None:
        """Take ``origin`` out of :attr:`apps` when the response is persisted: that
        remote then sends the user through the hand-off again, where the IdP's
        ``authorize`` hook decides anew (a user who lost the right to use a site)."""
        state = self._state
        if state.has_joined(origin):
            state.set_meta(META_JOINED + origin, 0)

    def remember(self, days: float = 30, *, idle: int | None = None) -> None:
        """Make this sign-in persistent: call it at the IdP, in the request that signs
        the user in (a "remember me" box).

        The session moves to a new id carrying its own limits -- ``days`` in all,
        ``idle`` seconds without a request (default: the IdP's ``idle_timeout``)
        -- and every app's cookie for it gets a ``Max-Age``, so it outlives a
        browser restart. An app honours those limits only as far as its
        ``max_remember`` says (a remote: not at all unless it opts in), and the
        strictest app that reads the session ends it for all. A logout anywhere
        still ends it everywhere.

        Raises ``ValueError`` for a lifetime that is not positive or longer than
        an id can carry (:data:`~sessionshare.core.ids.MAX_LIMIT` seconds).
        """
        if not isinstance(days, (int, float)) or not math.isfinite(days) or (
            idle is not None and not isinstance(idle, int)
        ):
            raise ValueError("remember() needs a positive number of days (and idle seconds)")
        absolute = int(days * 86400)
        if absolute <= 0 or (idle is not None and idle <= 0):
            raise ValueError("remember() needs a positive number of days (and idle seconds)")
        if absolute > MAX_LIMIT or (idle is not None and idle > MAX_LIMIT):
            raise ValueError(
                f"remember() lasts at most {MAX_LIMIT // 86400} days ({MAX_LIMIT} seconds, "
                f"what a session id can carry), not {days!r} days"
            )
        state = self._read()
        state.remembered = (min(idle, absolute) if idle is not None else 0, absolute)
        state.regenerating = True
        state.next_sid = None  # an id named before carries other limits

    def regenerate(self) -> None:
        """Move the data to a fresh id when the response is persisted; the old id dies.

        A session this app *joined* through a hand-off (see :attr:`apps`) keeps
        its id: only the IdP moves the one session every app reaches (a remote's
        own cookie value cannot be planted elsewhere, so keeping the id gives no
        fixation), and Django's ``cycle_key()`` at a remote is harmless.
        """
        self._read().regenerating = True

    def invalidate(self) -> None:
        """Delete the session from the store (everywhere) and empty it."""
        self._state.invalidate()

    def save(self) -> None:
        """Persist the session now, rather than when the response starts, by the same
        rules -- but a new session is stored even when empty (the app asked for it).
        Other requests see the changes from here on; what changes later is persisted
        with the response. Under the WSGI middlewares only.

        Raises :class:`~sessionshare.errors.SessionEnded` when the stored session
        was ended (a logout elsewhere, a revocation) or moved by another request
        meanwhile: nothing was written, and the session reads as a new, empty one.
        """
        state = self._read()
        if state.saver is None:
            raise RuntimeError(
                "this session cannot be saved before its response: only a request served "
                "by a WSGI middleware can (an asyncio app's session is persisted when its "
                "response starts, and a detached Session() is never stored)"
            )
        state.wanted = True
        state.gone = None
        try:
            state.saver()
        finally:
            state.wanted = False  # asked for this save only
        if state.gone is not None:
            raise SessionEnded(moved=state.gone == "moved")

    def expire_at(self, when: float | None) -> None:
        """Ask, as this app, that the session end by ``when`` (seconds since the
        epoch); None withdraws this app's ask. Written when the session is persisted.

        The session ends for every app at the earliest of the apps' asks and its
        timeouts: an ask only shortens its life. A time already past ends it when
        persisted.
        """
        if when is not None and (
            isinstance(when, bool) or not isinstance(when, (int, float))
            or (isinstance(when, float) and not math.isfinite(when))  # an int is finite
        ):
            raise ValueError(f"expire_at() takes seconds since the epoch or None, not {when!r}")
        self._read().expire_at(when)

    @property
    def ends_at(self) -> int | None:
        """The earliest end an app asked for (:meth:`expire_at`), or None."""
        return self._state.ends_at


def peek(session: Session, key: str) -> Any:
    """``session.get(key)`` for the library's own bookkeeping (a side looking for a user):
    it does not mark the session accessed, so on its own it adds no ``Vary: Cookie`` to
    the response -- a page that never touched the session stays cacheable."""
    state = state_of(session)
    if not state.loaded:
        state.ensure()
    value = dict.get(session, key)
    if not isinstance(value, IMMUTABLE):
        state.handed.add(key)
    return value


#: ``state_of(session)``: the :class:`~sessionshare.core.sessionstate.SessionState`
#: behind ``session`` (its id, its cookie, what persisting must do). The library's one
#: accessor to it, for the core, the framework adapters and :mod:`sessionshare.testing`;
#: never an app's (the id is a bearer credential). Read in C: no Python call.
state_of: Callable[[Session], SessionState] = attrgetter("_state")
