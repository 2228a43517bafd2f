"""The shared session: what an app sees at ``environ["sessionshare.session"]``.

:class:`Session` is a ``MutableMapping`` of JSON values. It is lazy -- the
store is read only when the app (or the middleware) first looks inside,
through the loader it was given -- and it tracks what changed, including
nested changes such as ``session["cart"].append(x)``.

The session also decides what persisting means: :meth:`Session.write_plan`
turns its state into a :class:`WritePlan` (the id to drop, whether to create,
the changed and deleted keys, the metadata, the cookie to set or clear), and
whoever persists -- :class:`~sessionshare.wsgi.manager.SessionManager` for WSGI --
only runs that plan against the store and reports back with
:meth:`Session.mark_written` or :meth:`Session.mark_gone`. Only changed
top-level keys are written, in one round trip; an unchanged session is never
written.

A session id holds 256 random bits (its format is :mod:`sessionshare.core.ids`),
lives only in cookies -- each app's own value -- and is never taken from a URL
or logged; neither ``repr()`` of a session or of a plan nor any error shows it.

    session = environ["sessionshare.session"]
    session["cart"] = session.get("cart", []) + [item_id]
    session.invalidate()        # sign out everywhere
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..store.base import RETIRED, SessionRecord
from .ids import MAX_LIMIT

__all__ = [
    "ENVIRON_KEY",
    "META_AUTHENTICATED",
    "META_CREATED",
    "META_JOINED",
    "META_RETIRED",
    "Session",
    "SessionLoader",
    "WritePlan",
    "lifetime_start",
    "new_session_id",
]

ENVIRON_KEY = "sessionshare.session"

#: Metadata field names, as stored. They are part of the wire format: apps of
#: an older version sharing the store read these very letters, so never rename them.
META_CREATED = "c"
META_AUTHENTICATED = "a"
#: Prefix of the metadata field recording that a remote origin joined the session
#: through a hand-off the IdP authorized: ``"o:" + origin`` -> when (0: withdrawn).
META_JOINED = "o:"
#: Metadata field of a *retired* id: one that a sign-in (or ``regenerate()``) moved to a new
#: id a moment ago. Its record stays a short while as a marker holding no data, so that a
#: request of the same browser that read the old id and is still running does not clear or
#: replace the cookie the moving request sets, and a logout sent with it still ends the
#: session where it went (:meth:`~sessionshare.store.base.SessionStore.move`).
META_RETIRED = RETIRED

#: Reads the stored session with this id: its record, or None when the store
#: holds no live session under it (the manager also enforces lifetimes here).
SessionLoader = Callable[[str], "SessionRecord | None"]

_IMMUTABLE = (str, int, float, bool, type(None))
# ASCII-only JSON text: a lone surrogate (valid in a Python str, not in UTF-8)
# is stored as its \uXXXX escape instead of failing later on the way to the store.
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def _loads(text: str) -> Any:
    """A stored value's JSON text, decoded.

    The most common value -- a short string with nothing escaped, as the
    encoder above writes it -- is its own text between the quotes, so it skips
    the decoder (which costs several times as much). Anything else, including
    any text that is not valid JSON, goes to ``json.loads``.
    """
    if (type(text) is str and len(text) >= 2 and text[0] == '"' and text[-1] == '"'
            and "\\" not in text and text.count('"') == 2 and text.isascii()
            and text.isprintable()):
        return text[1:-1]
    return json.loads(text)


def new_session_id(remember: tuple[int, int] | None = None) -> str:
    """256 random bits, URL-safe (43 characters): the id of a detached session.

    Sessions an app persists get theirs from its
    :class:`~sessionshare.core.ids.SessionIds` (key id and limits included).
    """
    return secrets.token_urlsafe(32)


def lifetime_start(meta: Mapping[str, int], default: int) -> int:
    """Where the absolute lifetime counts from: the latest sign-in, else creation.

    A sign-in starts a fresh lifetime, so an anonymous session kept alive for
    hours before the user signs in does not end minutes after the sign-in.
    ``default`` stands in for a missing creation time.
    """
    return max(meta.get(META_CREATED, default), meta.get(META_AUTHENTICATED, 0))


def _encode(key: str, value: Any) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session[{key!r}]: only JSON values can be stored (str, int, float, bool, None, "
            f"list, dict with str keys); got {type(value).__name__}: {exc}"
        ) from None
    except RecursionError:
        # A value nested thousands deep (hostile input stored as is, or a cycle the
        # encoder follows) must fail as the documented TypeError at assignment, not
        # as a RecursionError -- a 500 wherever the app did not expect one.
        raise TypeError(
            f"session[{key!r}]: the value is nested too deeply to store as JSON"
        ) from None


@dataclass(frozen=True, repr=False)
class WritePlan:
    """What persisting a session does to the store and to its cookie, in this order:

    1. when ``drop`` is set, end that session (``drop_first``: before a new
       session is created in its place; else there is nothing to keep);
    2. when ``move_from`` is set, move that session to the new id ``save_to`` in
       one store step, merging ``changed`` / ``deleted`` / ``meta`` in -- only
       while it is live: a session a logout or a revocation ended meanwhile is
       not brought back, and the request answers signed out;
    3. else when ``save_to`` is set, save ``changed`` / ``deleted`` / ``meta``
       under it -- as a new entry when ``create``, else merged into the existing
       one (if that one is gone, the session was ended elsewhere: nothing is
       written, the cookie is cleared and the session told so);
    4. set the cookie to ``save_to``, clear it, or leave it as it is.

    The TTL comes from the persisting side's timeouts and
    :attr:`lifetime_start`. A plan that does nothing is :attr:`unchanged`.
    """

    #: Id whose session is ended: the old id on invalidate (or a regenerate of an
    #: empty session, which keeps nothing).
    drop: str | None = None
    #: ``drop`` is ended before a new session is created (invalidate, then new values:
    #: the logout must not depend on the write that follows).
    drop_first: bool = False
    #: Id the session moves *from* to ``save_to`` (regenerate, a sign-in, remember-me):
    #: one conditional store step, see :class:`WritePlan`.
    move_from: str | None = None
    #: Id the changes are saved under: the current one, or a fresh one.
    save_to: str | None = None
    #: Write a new entry holding every key, rather than merge into a live one.
    create: bool = False
    #: Top-level key -> JSON text to write (every key when ``create``).
    changed: Mapping[str, str] = field(default_factory=dict)
    #: Top-level keys to remove.
    deleted: tuple[str, ...] = ()
    #: Metadata fields to write, or None to leave them alone.
    meta: Mapping[str, int] | None = None
    #: Where the absolute lifetime counts from (seconds since the epoch).
    lifetime_start: int = 0
    #: What the response does to the session cookie.
    cookie: Literal["set", "clear", "keep"] = "keep"
    #: What a late plan (``write_plan(late=True)``) leaves out, or None:
    #: ``"regenerate"`` (the session keeps its id) or ``"new_session"`` (no
    #: session is created). The plan still does everything else it lists.
    refused: Literal["regenerate", "new_session", "rotated"] | None = None

    @property
    def unchanged(self) -> bool:
        """True when the plan touches neither the store nor the cookie."""
        return self.drop is None and self.save_to is None and self.cookie == "keep"

    def __repr__(self) -> str:
        # Neither ids nor values: plans end up in logs and assertion messages.
        steps = []
        if self.drop is not None:
            steps.append("drop first" if self.drop_first else "drop")
        if self.save_to is not None:
            steps.append("move" if self.move_from is not None
                         else "create" if self.create else "update")
            steps.append(f"changed={sorted(self.changed)} deleted={sorted(self.deleted)}")
            if self.meta is not None:
                steps.append(f"meta={sorted(self.meta)}")
        steps.append(f"cookie={self.cookie}")
        if self.refused is not None:
            steps.append(f"refused={self.refused}")
        return f"<WritePlan {' '.join(steps)}>"


# Most requests write nothing: one shared plan spares them building one.
_UNCHANGED = WritePlan()


class Session(MutableMapping[str, Any]):
    """One shared session: a lazy, change-tracking mapping of JSON values.

    Keys are strings; values anything ``json.dumps`` accepts (a non-JSON
    value raises ``TypeError`` at assignment). Metadata -- when the session
    was created and authenticated -- lives apart from app keys and is read
    through :attr:`created` and :attr:`authenticated_at`.

    :param loader: reads the stored session for an id (see :data:`SessionLoader`);
        None for a session that is never stored (tests, a detached mapping).
    :param sid: the well-formed id the request's cookie named, if any. It is
        only a claim: a cookie naming a session the store does not hold is
        ignored, and the session is then new.
    """

    __slots__ = (
        "_deleted",
        "_exists",
        "_had_cookie",
        "_invalidate",
        "_loaded",
        "_loader",
        "_meta",
        "_meta_changed",
        "_regenerate",
        "_reauthenticate",
        "_remember",
        "_retired",
        "_retired_id",
        "_set",
        "_sid",
        "_stored",
        "_values",
    )

    def __init__(self, loader: SessionLoader | None = None, sid: str | None = None) -> None:
        self._loader = loader
        self._sid = sid
        self._had_cookie = sid is not None
        self._loaded = loader is None or sid is None
        self._exists = False
        self._stored: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._meta: dict[str, int] = {}
        # The metadata fields this request set: a save or a move sends only these, so
        # that a field another request wrote since this one read the session (an
        # operator's withdraw, say) is not overwritten with the value read before.
        self._meta_changed: set[str] = set()
        self._regenerate = False
        self._invalidate = False
        self._retired = False
        self._retired_id: str | None = None
        self._remember: tuple[int, int] | None = None
        self._reauthenticate = False

    # -- loading -----------------------------------------------------------
    # A session is read either lazily through its loader (the WSGI shell: the
    # app may never look) or from outside: whoever drives the protocol's store
    # steps reads the record for :attr:`unread_id` and hands it to :meth:`fill`.
    @property
    def unread_id(self) -> str | None:
        """The id whose record this session still needs, or None once it has it."""
        return None if self._loaded else self._sid

    def fill(self, record: SessionRecord | None) -> None:
        """Take what the store holds for :attr:`unread_id` (None: no such live session)."""
        if self._loaded:
            raise RuntimeError("the session was read already")
        if record is None:
            self._take(None, {}, {})
        elif META_RETIRED in record.meta:
            # Moved to a new id by another request of this browser: no session here, and
            # this request must leave the cookie to the one that moved it. A logout sent
            # with this id still ends it -- and where it went (the store follows).
            retired = self._sid
            self._take(None, {}, {})
            self._retired, self._retired_id = True, retired
        else:
            self._take(self._sid, record.fields, record.meta)

    def point_at(self, sid: str) -> None:
        """Become the stored session ``sid`` (a completed hand-off), still to be read."""
        self._sid = sid
        self._loaded = False

    def _ensure(self) -> None:
        if not self._loaded:
            assert self._loader is not None and self._sid is not None
            self.fill(self._loader(self._sid))

    def _take(self, sid: str | None, fields: dict[str, str], meta: dict[str, int]) -> None:
        """Become the stored record ``fields``/``meta`` of ``sid`` (None: a new session)."""
        self._retired, self._retired_id = False, None
        self._sid = sid
        self._exists = sid is not None
        self._stored = fields
        self._meta = meta
        self._values = {}
        self._set = set()
        self._deleted = set()
        self._loaded = True

    def switch_to(self, sid: str) -> bool:
        """Become the stored session ``sid``, reading it now through the loader.

        Returns False when the store holds no such session. Setting the
        cookie is the caller's job.
        """
        if self._loader is None:
            raise RuntimeError("a session without a loader cannot switch to a stored one")
        self.point_at(sid)
        self._ensure()
        return self._exists

    # -- the mapping -------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        self._ensure()
        if key in self._deleted or key not in self._stored:
            raise KeyError(key)
        value = self._values[key] = _loads(self._stored[key])
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys are strings, not {type(key).__name__}")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise TypeError(
                "session keys must be valid Unicode text (no lone surrogates)"
            ) from None
        _encode(key, value)
        self._ensure()
        self._values[key] = value
        self._set.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._values.pop(key, None)
        self._set.discard(key)
        if key in self._stored:
            self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        if key in self._values:
            return True
        self._ensure()
        return key in self._stored and key not in self._deleted

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        # A snapshot: reading values while iterating (``items()``) moves keys into
        # _values, and a lazy walk would then list them a second time.
        keys = [k for k in self._stored if k not in self._deleted and k not in self._values]
        keys += self._values
        return iter(keys)

    def __len__(self) -> int:
        self._ensure()
        extra = sum(1 for k in self._values if k not in self._stored)
        return len(self._stored) - len(self._deleted) + extra

    def __repr__(self) -> str:
        # No id here (reprs end up in logs and tracebacks), and no store access.
        if not self._loaded:
            return "<Session unloaded>"
        return f"<Session {len(self)} keys{'' if self._exists else ' new'}>"

    # -- state -------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """True once the store was read, or nothing needed reading (no cookie).

        An unloaded session was never looked at: it has nothing to write and
        the response does not depend on it.
        """
        return self._loaded

    @property
    def had_cookie(self) -> bool:
        """True while the browser holds a cookie for this session.

        That is: the request carried a well-formed session cookie (valid or
        not), or persisting set one; persisting that clears it makes this False.
        """
        return self._had_cookie

    @property
    def new(self) -> bool:
        """True until the session exists in the store."""
        self._ensure()
        return not self._exists

    @property
    def stored_id(self) -> str | None:
        """The id of the stored session (to mint a hand-off ticket); None while new.

        It is the session's bearer credential: never log or display it. Reading
        it does not load the session.
        """
        return self._sid if self._exists else None

    @property
    def modified(self) -> bool:
        """True when persisting would write something."""
        if not self._loaded:
            return False
        changed, deleted = self._changes()
        return bool(
            changed or deleted or self._meta_changed or self._regenerate or self._invalidate
        )

    @property
    def reauthentication_required(self) -> bool:
        """True at the IdP when a remote asked for a recent sign-in (step-up) and this
        one is too old: the app must ask for the password again -- and sign the user
        in again, assigning the user key (the same user is fine) -- before the
        hand-off goes on. A documented flag for the IdP app's login view."""
        return self._reauthenticate

    def require_reauthentication(self) -> None:
        """Set :attr:`reauthentication_required` (the IdP's side does, for this request)."""
        self._reauthenticate = True

    def was_assigned(self, key: str) -> bool:
        """True when ``key`` was assigned in this request -- even to the value it had."""
        return key in self._set

    def is_changed(self, key: str) -> bool:
        """True when persisting would write or remove the top-level ``key``."""
        if not self._loaded:
            return False
        changed, deleted = self._changes()
        return key in changed or key in deleted

    @property
    def created(self) -> float | None:
        """When the session was first stored (seconds since the epoch), or None if new."""
        self._ensure()
        return self._meta.get(META_CREATED)

    @property
    def authenticated_at(self) -> float | None:
        """When the IdP last signed a user into this session, or None."""
        self._ensure()
        return self._meta.get(META_AUTHENTICATED)

    @property
    def apps(self) -> dict[str, int]:
        """The remote origins that joined this session through a hand-off the IdP
        authorized, each with when it joined (seconds since the epoch).

        A remote serves its protected paths to this session only while its
        origin is here; :meth:`withdraw` takes one out.
        """
        self._ensure()
        start = len(META_JOINED)
        return {name[start:]: int(when) for name, when in self._meta.items()
                if name.startswith(META_JOINED) and when > 0}

    def has_joined(self, origin: str) -> bool:
        """True while ``origin`` (a canonical origin) is in :attr:`apps`."""
        self._ensure()
        return self._meta.get(META_JOINED + origin, 0) > 0

    def withdraw(self, origin: str) -> None:
        """Take ``origin`` out of :attr:`apps` when the response is persisted.

        From its next request on, that remote sends the user through the
        hand-off again, where the IdP's ``authorize`` hook decides anew: call
        this when a user loses the right to use a site.
        """
        self._ensure()
        if self._meta.get(META_JOINED + origin, 0) > 0:
            self._meta[META_JOINED + origin] = 0
            self._meta_changed.add(META_JOINED + origin)

    def mark_authenticated(self, now: float) -> None:
        """Record the time of a sign-in (the IdP middleware calls this)."""
        self._ensure()
        self._meta[META_AUTHENTICATED] = int(now)
        self._meta_changed.add(META_AUTHENTICATED)

    def mark_joined(self, origin: str, now: float) -> None:
        """Record that ``origin`` joined the session at ``now`` (a remote's hand-off does
        this in the store command that reads the session; :mod:`sessionshare.testing`
        does it for a session it makes)."""
        self._ensure()
        self._meta[META_JOINED + origin] = int(now)
        self._meta_changed.add(META_JOINED + origin)

    def remember(self, days: float = 30, *, idle: int | None = None) -> None:
        """Make this sign-in persistent: call it at the IdP, in the request that signs
        the user in (a "remember me" box).

        The session moves to a new id carrying its own limits -- ``days`` in all,
        and ``idle`` seconds without a request (default: the IdP's own
        ``idle_timeout``) -- and the session cookie of the IdP and of every remote
        that adopts it gets a ``Max-Age``, so it outlives a browser restart. Each
        app honours those longer limits only as far as its ``max_remember``
        option says: the IdP what it grants, a remote not at all unless it opts
        in -- elsewhere the stricter of the app's own limits and the session's
        hold, as for any session, and the strictest app that reads the session
        ends it for all. It is still revocable: a logout anywhere ends it
        everywhere. A sign-in without it is a browser-session cookie with the
        apps' own limits, as always.

        Raises ``ValueError`` for a lifetime that is not positive or longer than
        an id can carry (:data:`~sessionshare.core.ids.MAX_LIMIT` seconds, about
        49,710 days).
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
        self._ensure()
        self._remember = (min(idle, absolute) if idle is not None else 0, absolute)
        self._regenerate = True

    def regenerate(self) -> None:
        """Move the data to a fresh id when the response is persisted; the old id dies.

        A session this app *joined* through a hand-off (see :attr:`apps`) keeps
        its id: it is the one session every app and the IdP's logout reach, and
        only the IdP moves it (a remote's own cookie value cannot be planted
        elsewhere, so keeping the id gives no fixation). Django's
        ``cycle_key()`` at a remote is then harmless.
        """
        self._ensure()
        self._regenerate = True

    def invalidate(self) -> None:
        """Delete the session from the store (everywhere) and empty it."""
        self._ensure()
        self._invalidate = True
        self._values = {}
        self._set = set()
        self._deleted = set(self._stored)
        self._meta = {}
        self._meta_changed = set()

    @property
    def invalidated(self) -> bool:
        """True after :meth:`invalidate` until the response is persisted."""
        return self._invalidate

    # -- persisting ----------------------------------------------------------
    def write_plan(
        self,
        now: float,
        *,
        new_id: Callable[[tuple[int, int] | None], str] = new_session_id,
        joined_as: str | None = None,
        late: bool = False,
    ) -> WritePlan:
        """What persisting at ``now`` must do; the session itself is not changed.

        Run the plan, then report with :meth:`mark_written` (or
        :meth:`mark_gone` when an update found the stored session gone).

        ``new_id`` makes the id of a new session; ``joined_as`` is the origin of
        the persisting app: a :meth:`regenerate` of a session that origin
        joined keeps the id.

        ``late``: the response's headers are already out (a change made while
        its body streamed), so no cookie can be set or cleared any more. The
        plan then only updates or deletes the stored session: a move to a new
        id, or a session that does not exist yet, is left out and named in
        :attr:`WritePlan.refused`.
        """
        if not self._loaded:
            return _UNCHANGED
        old = self._sid if self._exists else None
        regenerate = self._regenerate and not (
            joined_as is not None and old is not None
            and self._meta.get(META_JOINED + joined_as, 0) > 0
        )
        if late:
            return self._late_plan(now, regenerate)
        cookie_gone: Literal["clear", "keep"] = "clear" if self._had_cookie else "keep"
        if self._invalidate:
            # A logout sent with an id another request just moved ends it where it went.
            ending = old if old is not None else self._retired_id
            if not self._values:
                return WritePlan(drop=ending, drop_first=True, cookie=cookie_gone)
            # Values written after invalidate() start a new session; metadata alone does not.
            fresh = {key: _encode(key, value) for key, value in self._values.items()}
            return self._creating(fresh, now, new_id, drop=ending, drop_first=True)
        changed, deleted = self._changes()
        if self._retired and old is None:
            # The cookie this request came with names an id another request of the browser
            # just moved (a sign-in): that request sets the new cookie. Clearing it here, or
            # setting a new session's, would sign the browser out if this answer came last.
            return WritePlan(refused="rotated") if changed or self._meta_changed else _UNCHANGED
        if old is not None and not regenerate:
            if not (changed or deleted or self._meta_changed):
                return _UNCHANGED
            return WritePlan(
                save_to=old, changed=changed, deleted=tuple(deleted),
                meta=self._changed_meta(), lifetime_start=lifetime_start(self._meta, int(now)),
            )
        # A new session, or one moving to a fresh id.
        fields = dict(self._stored)
        fields.update(changed)
        for key in deleted:
            fields.pop(key, None)
        if not fields and not self._meta_changed:
            # Nothing to keep: no store entry and no cookie for an empty session.
            return WritePlan(drop=old, cookie=cookie_gone)
        if old is None:
            return self._creating(fields, now, new_id, drop=None, drop_first=False)
        # A move: the store takes the session as it holds it *then* (another app's write
        # since this request read it is kept, metadata included: an operator's withdraw
        # must not be undone by a move that read the session before it) and merges this
        # request's changes in -- only if it is still live, in the same step.
        meta = self._changed_meta() or {}
        if META_CREATED not in self._meta:
            meta[META_CREATED] = int(now)
        return WritePlan(
            move_from=old, save_to=new_id(self._remember), changed=changed,
            deleted=tuple(deleted), meta=meta,
            lifetime_start=lifetime_start({**self._meta, **meta}, int(now)), cookie="set",
        )

    def _creating(
        self,
        fields: dict[str, str],
        now: float,
        new_id: Callable[[tuple[int, int] | None], str],
        *,
        drop: str | None,
        drop_first: bool,
    ) -> WritePlan:
        meta = dict(self._meta)
        meta.setdefault(META_CREATED, int(now))
        return WritePlan(
            drop=drop, drop_first=drop_first, save_to=new_id(self._remember), create=True,
            changed=fields, meta=meta, lifetime_start=lifetime_start(meta, int(now)),
            cookie="set",
        )

    def _late_plan(self, now: float, regenerate: bool) -> WritePlan:
        old = self._sid if self._exists else None
        if self._retired and old is None and not self._invalidate:
            return WritePlan(refused="rotated") if self._values else _UNCHANGED
        if self._invalidate:
            # A logout needs no cookie: the stored session still goes. Values written after
            # invalidate() would start a new session, and its cookie can no longer be sent.
            return WritePlan(
                drop=old if old is not None else self._retired_id, drop_first=True,
                refused="new_session" if self._values else None,
            )
        changed, deleted = self._changes()
        if old is None:
            # Its cookie can no longer be sent: stored, it would be an orphan no browser holds.
            return WritePlan(refused="new_session") if changed or self._meta_changed else _UNCHANGED
        # Moving to a new id now would delete the id the browser holds and send it no other
        # (every app then sees the user signed out): the session keeps its id.
        refused: Literal["regenerate"] | None = "regenerate" if regenerate else None
        if not (changed or deleted or self._meta_changed):
            return WritePlan(refused=refused) if refused else _UNCHANGED
        return WritePlan(
            save_to=old, changed=changed, deleted=tuple(deleted), meta=self._changed_meta(),
            lifetime_start=lifetime_start(self._meta, int(now)), refused=refused,
        )

    def size_after(self, plan: WritePlan) -> int:
        """Bytes of app data (key names and JSON text) the store holds once ``plan`` ran.

        Counted from the record as this request read it: a key another app wrote
        meanwhile is not seen. Metadata is a few small numbers and not counted.
        """
        if plan.save_to is None:
            return 0
        fields = plan.changed if plan.create else {**self._stored, **plan.changed}
        gone = () if plan.create else plan.deleted
        # JSON text is ASCII (ensure_ascii), so its length is its size in bytes.
        return sum(
            len(key.encode("utf-8")) + len(text)
            for key, text in fields.items() if key not in gone
        )

    def mark_written(self, plan: WritePlan) -> None:
        """The store now holds what ``plan`` (this session's own, just run) wrote."""
        if plan.create:
            assert plan.save_to is not None and plan.meta is not None
            self._sid, self._exists, self._had_cookie = plan.save_to, True, True
            self._stored, self._meta = dict(plan.changed), dict(plan.meta)
        elif plan.move_from is not None:
            assert plan.save_to is not None and plan.meta is not None
            self._sid, self._exists, self._had_cookie = plan.save_to, True, True
            self._stored.update(plan.changed)
            for key in plan.deleted:
                self._stored.pop(key, None)
            self._meta.update(plan.meta)
        elif plan.save_to is not None:
            self._stored.update(plan.changed)
            for key in plan.deleted:
                self._stored.pop(key, None)
            self._meta.update(plan.meta or {})
        elif plan.drop is not None or not self._exists:
            self._take(None, {}, {})
            self._had_cookie = False
        self._set = set()
        self._deleted = set()
        self._meta_changed = set()
        self._regenerate = self._invalidate = False
        self._remember = None

    def mark_gone(self, *, moved: bool = False) -> None:
        """An update or a move found no live session (ended elsewhere meanwhile): stay ended.

        The session becomes new and empty; the caller clears the cookie --
        unless ``moved``: another request of this browser gave the session a new
        id meanwhile and sets its cookie, so this one leaves the cookie alone.
        """
        retired = self._sid if moved else None
        self._take(None, {}, {})
        if moved:
            self._retired, self._retired_id = True, retired
        else:
            self._had_cookie = False
        self._meta_changed = set()
        self._regenerate = self._invalidate = False
        self._remember = None

    def _changed_meta(self) -> dict[str, int] | None:
        """The metadata fields this request set, with their values; None for none."""
        if not self._meta_changed:
            return None
        return {name: self._meta[name] for name in self._meta_changed}

    def _changes(self) -> tuple[dict[str, str], list[str]]:
        changed: dict[str, str] = {}
        for key, value in self._values.items():
            # An immutable value that was only read cannot have changed; a list
            # or dict may have been mutated in place, so compare its encoding.
            if key not in self._set and isinstance(value, _IMMUTABLE):
                continue
            text = _encode(key, value)
            if self._stored.get(key) != text:
                changed[key] = text
        deleted = [key for key in self._deleted if key in self._stored]
        return changed, deleted
