"""What the protocol tracks about one request's session: :class:`SessionState`.

The app holds a :class:`~sessionshare.core.session.Session`: a ``dict`` of the
decoded values and a few verbs. This object keeps the rest -- the id (a bearer
credential, so never on the app's object), the record as stored (the JSON text
changes are measured against), the keys assigned, the verbs asked for, the
metadata set -- and is reached through :func:`~sessionshare.core.session.state_of`.

:meth:`SessionState.write_plan` decides what persisting writes: only changed
top-level keys and the metadata this request set, so that a field another
request wrote since (an operator's withdraw of a remote) stands.

    plan = state_of(session).write_plan(now, new_id=ids.new)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

from ..store.base import SessionRecord, scan_json, unescaped
from .cookies import CookieSpec
from .record import (
    META_AUTHENTICATED,
    META_CREATED,
    META_ENDS,
    META_JOINED,
    META_RETIRED,
    UNCHANGED,
    NewId,
    SessionLoader,
    WritePlan,
    detached_id,
)

__all__ = ["ENDS_FROM", "ENDS_TO", "IMMUTABLE", "CookieFollower", "SessionState", "decode",
           "encode", "ends_at", "lifetime_start"]

#: The values that cannot change in place: one handed to the app is never encoded again.
IMMUTABLE = (str, int, float, bool, type(None))
_ABSENT: Any = object()
#: The names that start with META_ENDS are those in [ENDS_FROM, ENDS_TO).
ENDS_FROM, ENDS_TO = META_ENDS, META_ENDS[:-1] + chr(ord(META_ENDS[-1]) + 1)

#: The latest end an app's ask is kept as: exact in the 14 digits Lua's cjson writes, far
#: inside :data:`~sessionshare.store.base.META_LIMIT` (past it, a record is damaged).
_FAR_ASK = 10**12

# ASCII-only JSON text: a lone surrogate (valid in a Python str, not in UTF-8)
# is stored as its \uXXXX escape instead of failing later on the way to the store.
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
#: The same text, NaN and Infinity allowed: only to tell whether such a value, as stored, changed.
_loose = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode
#: ``unescaped.get`` and ``.set``, bound once: every read's decode asks.
_noted, _note = unescaped.get, unescaped.set


def encode(key: str, value: Any) -> str:
    """``value``'s JSON text, as stored under ``key``; TypeError for a non-JSON value."""
    try:
        if type(value) is int:
            # What the encoder writes for a whole number, without its Python layers (a
            # new C encoder per call: about seven times the cost, on every counter write).
            return int.__repr__(value)
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session[{key!r}]: only JSON values can be stored (str, int, float, bool, None, "
            f"list, dict with str keys); got {type(value).__name__}: {exc}"
        ) from None
    except RecursionError:
        # Hostile input nested thousands deep fails as the documented TypeError, not
        # as a RecursionError -- a 500 wherever the app did not expect one.
        raise TypeError(
            f"session[{key!r}]: the value is nested too deeply to store as JSON"
        ) from None


def decode(text: str) -> Any:
    """A stored value's JSON text, decoded as ``json.loads`` would, by its C scanner without
    the Python layers (every read decodes every value); the rest goes to ``json.loads``."""
    try:
        value, end = scan_json(text, 0)
    except (StopIteration, ValueError, TypeError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def lifetime_start(meta: Mapping[str, int], default: int) -> int:
    """Where the absolute lifetime counts from (``default``: no creation time): the latest
    sign-in, so a session kept alive for hours before it does not end minutes after."""
    return max(meta.get(META_CREATED, default), meta.get(META_AUTHENTICATED, 0))


def ends_at(meta: Mapping[str, int], *, besides: str | None = None) -> int | None:
    """The earliest end an app asked for (``Session.expire_at``), or None; ``besides``
    names a field to leave out (an app's own ask)."""
    # A loop, not a comprehension and min(): this runs twice on every read and write.
    # ``ENDS_FROM <= name < ENDS_TO`` is ``name.startswith(META_ENDS)`` without a call.
    asked: int | None = None
    for name, when in meta.items():
        if (ENDS_FROM <= name < ENDS_TO and when > 0 and name != besides
                and (asked is None or when < asked)):
            asked = when
    return asked


class CookieFollower(Protocol):
    """What a state knows of the ``Lifecycle`` that opened it (which imports this module)."""

    def follow_cookie(self, asked: Mapping[str, object]) -> CookieSpec: ...


class SessionState:
    """One request's session as the protocol sees it (internal: the app holds the
    :class:`~sessionshare.core.session.Session` in front of it).

    :param loader: reads the stored session for an id at the first look; None when the
        lifecycle's steps read it (:meth:`fill`), or with no ``sid``.
    :param sid: the well-formed id the request's cookie named, if any: only a claim.
    :param contents: the dict the values live in: the app's ``Session`` itself, whose
        overrides track changes -- this object uses ``dict``'s own methods.
    """

    __slots__ = (
        "accessed",
        "assigned",
        "audience",
        "contents",
        "cookie",
        "cookie_asked",
        "cookie_owed",
        "direct",
        "exists",
        "gone",
        "had_cookie",
        "handed",
        "handed_all",
        "invalidated",
        "lifecycle",
        "loaded",
        "loader",
        "meta",
        "meta_changed",
        "next_sid",
        "reauthentication_required",
        "regenerating",
        "remembered",
        "retired",
        "retired_id",
        "saver",
        "sid",
        "stored",
        "wanted",
    )

    def __init__(self, loader: SessionLoader | None = None, sid: str | None = None,
                 contents: dict[str, Any] | None = None) -> None:
        self.loader = loader
        #: ``loader`` reads on the store the steps run on (WSGI): a side may read through it.
        self.direct = False
        #: The id this session has (or the cookie claimed, until it is read).
        self.sid = sid
        #: The browser holds a cookie for this session (sent well-formed, or set since).
        self.had_cookie = sid is not None
        #: True once the store was read, or nothing needed reading (no cookie).
        self.loaded = sid is None
        #: The serving app's session cookie, for adapters; None if no middleware made this.
        self.cookie: CookieSpec | None = None
        #: The lifecycle that opened this session (``follow_cookie``); None likewise.
        self.lifecycle: CookieFollower | None = None
        #: An adapter's ``(max_age, refresh)`` for this response's cookie (:meth:`ask_cookie`).
        self.cookie_asked: tuple[int | None, bool] | None = None
        #: The app looked inside (or a user was found in it): ``Vary: Cookie``; ``peek`` doesn't.
        self.accessed = False
        #: True while the store holds this session under :attr:`sid`.
        self.exists = False
        #: Top-level key -> JSON text, as the store held it.
        self.stored: dict[str, str] = {}
        #: Top-level key -> value, as the app sees it (a stored key missing: removed).
        self.contents: dict[str, Any] = {} if contents is None else contents
        #: The keys the app assigned in this request (even to the value they had).
        self.assigned: set[str] = set()
        #: The keys whose mutable values the app was handed, or all of them (``items()``
        #: and the like): only those are encoded again to find a change in place.
        self.handed: set[str] = set()
        self.handed_all = False
        #: Metadata fields as read, with this request's own changes.
        self.meta: dict[str, int] = {}
        #: The metadata fields this request set: only these are written, so that a field
        #: another request wrote since (an operator's withdraw) is not overwritten.
        self.meta_changed: set[str] = set()
        #: ``regenerate()`` (or ``remember()``) was asked for.
        self.regenerating = False
        #: The fresh id a move takes, if named before (``Lifecycle.id_after_persist``).
        self.next_sid: str | None = None
        #: ``invalidate()`` was asked for, and the response is not persisted yet.
        self.invalidated = False
        #: The cookie's id (``retired_id``) was just moved by another request, whose cookie stands.
        self.retired = False
        self.retired_id: str | None = None
        #: A remembered sign-in's (idle, absolute) limits, from ``remember()``.
        self.remembered: tuple[int, int] | None = None
        #: At the IdP: a remote asked for a more recent sign-in than this one (step-up).
        self.reauthentication_required = False
        #: The persisting app's origin: the name its :meth:`expire_at` ask is kept under.
        self.audience = ""
        #: Persists the session now (``Session.save()``), from the shell; None if nothing can.
        self.saver: Callable[[], None] | None = None
        #: ``Session.save()`` was asked for: the session is stored even while empty.
        self.wanted = False
        #: The ``Set-Cookie`` value an early save made that the response still owes, or None.
        self.cookie_owed: str | None = None
        #: What the last write found instead of the live session (see :meth:`mark_gone`).
        self.gone: Literal["ended", "moved"] | None = None

    # -- loading -----------------------------------------------------------
    @property
    def unread_id(self) -> str | None:
        """The id whose record this session still needs, or None once it has it."""
        return None if self.loaded else self.sid

    def fill(self, record: SessionRecord | None) -> None:
        """Take what the store holds for :attr:`unread_id` (None: no such live session)."""
        if self.loaded:
            raise RuntimeError("the session was read already")
        if record is None:
            self.take(None, {}, {})
        elif META_RETIRED in record.meta:
            # Moved to a new id by another request of this browser: no session here, and
            # this request must leave the cookie to the one that moved it. A logout sent
            # with this id still ends it -- and where it went (the store follows).
            retired = self.sid
            self.take(None, {}, {})
            self.retired, self.retired_id = True, retired
        else:
            self.take(self.sid, record.fields, record.meta)

    def ask_cookie(self, max_age: int | None, *, refresh: bool = True) -> None:
        """For an adapter whose framework decides the cookie per session (Flask's
        ``session.permanent``): this response's cookie persists ``max_age`` seconds
        (None: a browser-session cookie), whatever ``cookie_max_age`` says; ``refresh``:
        re-send it unchanged too. The browser's side only: the server's limits hold."""
        self.cookie_asked = (None if max_age is None else int(max_age), bool(refresh))

    def point_at(self, sid: str) -> None:
        """Become the stored session ``sid`` (a completed hand-off), still to be read."""
        self.sid = sid
        self.loaded = False

    def ensure(self) -> None:
        """Read the session through the loader if it was not read yet."""
        if not self.loaded:
            if self.loader is None:
                # Under asyncio this read would block the event loop (Lifecycle.read_now).
                raise RuntimeError("this session is read by the protocol's steps before "
                                   "anything looks inside, and was not read yet")
            assert self.sid is not None
            self.fill(self.loader(self.sid))

    def take(self, sid: str | None, fields: dict[str, str], meta: dict[str, int]) -> None:
        """Become the stored record ``fields``/``meta`` of ``sid`` (None: a new session)."""
        self.retired, self.retired_id = False, None
        self.sid = sid
        self.exists = sid is not None
        self.stored = fields
        self.meta = meta
        self._show_stored()
        if self.assigned:
            self.assigned = set()  # (an empty one is kept: a new set per read saved)
        self.loaded = True

    def _show_stored(self) -> None:
        """Make the contents what the store holds (every value decoded: a dict's readers,
        the JSON encoders among them, read its storage directly)."""
        contents = self.contents
        dict.clear(contents)
        # decode() inlined (on every read, for every key): the C scan, json.loads for
        # whatever it does not take whole. (Filled whole or not at all: a text that does not
        # decode raises before the contents show any of the record.)
        values: dict[str, Any] = {}
        # Long strings the store's read found plain, each for its very text (base.py).
        known = _noted()
        if known is not None:
            _note(None)
        for key, text in self.stored.items():
            if known is not None and known.get(key) is text:
                values[key] = text[1:-1]
                continue
            try:
                value, end = scan_json(text, 0)
            except (StopIteration, ValueError, TypeError):
                value = json.loads(text)
            else:
                if end != len(text):
                    value = json.loads(text)
            values[key] = value
        dict.update(contents, values)
        if self.handed:
            self.handed = set()
        self.handed_all = False

    # -- what happened -----------------------------------------------------
    @property
    def stored_id(self) -> str | None:
        """The stored session's id (to mint a hand-off ticket), None while new; not read
        from the store. A bearer credential: never log or display it."""
        return self.sid if self.exists else None

    @property
    def modified(self) -> bool:
        """True when persisting would write something."""
        if not self.loaded:
            return False
        if self.meta_changed or self.regenerating or self.invalidated:
            return True
        if (not (self.assigned or self.handed or self.handed_all)
                and self.stored.keys() <= dict.keys(self.contents)):
            # Nothing assigned, no list or dict handed out, no key removed: no change to
            # look for (every response's close asks this).
            return False
        changed, deleted = self.changes()
        return bool(changed or deleted)

    def has_joined(self, origin: str) -> bool:
        """True while the canonical ``origin`` joined the session (not withdrawn)."""
        if not self.loaded:
            self.ensure()
        return self.meta.get(META_JOINED + origin, 0) > 0

    def was_assigned(self, key: str) -> bool:
        """True when ``key`` was assigned in this request -- even to the value it had."""
        return key in self.assigned

    def is_changed(self, key: str) -> bool:
        """True when persisting would write or remove the top-level ``key``."""
        if not self.loaded:
            return False
        changed, deleted = self.changes()
        return key in changed or key in deleted

    def changes(self) -> tuple[dict[str, str], list[str]]:
        """The keys to write (key -> JSON text) and the stored keys to remove."""
        changed: dict[str, str] = {}
        contents, stored, assigned = self.contents, self.stored, self.assigned
        keys = dict.keys(contents)
        # Only assigned or handed keys can differ (see ``handed``); no set built for the
        # common read (a handed key the app removed is skipped).
        if self.handed_all:
            candidates: Iterable[str] = keys
        else:
            candidates = assigned | self.handed if assigned else self.handed
        for key in candidates:
            value = dict.get(contents, key, _ABSENT)
            if value is _ABSENT or (key not in assigned and isinstance(value, IMMUTABLE)):
                continue
            try:
                text = encode(key, value)
            except TypeError:
                if key in assigned or key not in stored or (
                    _loose(value) != _loose(decode(stored[key]))
                ):
                    raise
                # Another writer's NaN or 1e999, unchanged: no change -- not a TypeError (a
                # 500) on every request that hands this value out.
                continue
            if stored.get(key) != text:
                changed[key] = text
        if stored.keys() <= keys:
            return changed, []
        return changed, [key for key in stored if key not in keys]

    # -- what the protocol records -------------------------------------------
    def set_meta(self, name: str, value: int) -> None:
        """Set the metadata field ``name`` (written with the session when persisted)."""
        self.ensure()
        self.meta[name] = int(value)
        self.meta_changed.add(name)

    def mark_authenticated(self, now: float) -> None:
        """Record the time of a sign-in (the IdP's side does, on the way out)."""
        self.set_meta(META_AUTHENTICATED, int(now))

    def mark_joined(self, origin: str, now: float) -> None:
        """Record that ``origin`` joined the session at ``now`` (for a session
        :mod:`sessionshare.testing` makes; a hand-off marks it in the store)."""
        self.set_meta(META_JOINED + origin, int(now))

    def expire_at(self, when: float | None) -> None:
        """Ask, as this app, that the session end by ``when`` (None: withdraw the ask)."""
        name = META_ENDS + self.audience
        if when is None and not self.meta.get(name):
            return  # nothing asked: nothing to withdraw, nothing to write
        # An ask centuries away ends nothing: it is kept as _FAR_ASK.
        self.set_meta(name, 0 if when is None else max(1, min(math.ceil(when), _FAR_ASK)))

    @property
    def ends_at(self) -> int | None:
        """The earliest end an app asked for, or None (reading loads the session)."""
        self.ensure()
        return ends_at(self.meta)

    def invalidate(self) -> None:
        """Delete the session from the store when persisted, and empty it."""
        self.ensure()
        self.invalidated = True
        dict.clear(self.contents)
        self.assigned = set()
        self.meta = {}
        self.meta_changed = set()

    # -- persisting ----------------------------------------------------------
    def write_plan(
        self,
        now: float,
        *,
        new_id: NewId = detached_id,
        joined_as: str | None = None,
        late: bool = False,
    ) -> WritePlan:
        """What persisting at ``now`` must do (the state is not changed); run it, then
        report with :meth:`mark_written` or :meth:`mark_gone`. ``new_id`` makes a new
        session's id; ``joined_as``, the persisting app's origin: a ``regenerate()`` of a
        session it joined keeps the id. ``late``: the headers are out, so no cookie can
        change: a move or a new session is left out, named in :attr:`WritePlan.refused`.
        """
        if not self.loaded:
            return UNCHANGED
        if (self.exists and not (self.assigned or self.handed or self.handed_all
                                 or self.meta_changed or self.regenerating or self.invalidated)
                and self.stored.keys() <= dict.keys(self.contents)):
            # The usual request: a stored session read and left as it was (nothing assigned,
            # no list or dict handed out, no key removed, no verb), so nothing to write --
            # unless an end an app asked for has passed since it was read.
            asked = ends_at(self.meta)
            if asked is None or asked > now:
                return UNCHANGED
        old = self.sid if self.exists else None
        regenerate = self.regenerating and not (
            joined_as is not None and old is not None
            and self.meta.get(META_JOINED + joined_as, 0) > 0
        )
        if late:
            return self._late_plan(now, regenerate)
        cookie_gone: Literal["clear", "keep"] = "clear" if self.had_cookie else "keep"
        if self._asked_end_passed(now):
            # An app asked the session to end by now (a Django set_expiry() in the past):
            # it ends as at its limits -- for every app -- and nothing of it is kept.
            return WritePlan(drop=old if old is not None else self.retired_id,
                             drop_first=True, cookie=cookie_gone)
        if self.invalidated:
            # A logout sent with an id another request just moved ends it where it went.
            ending = old if old is not None else self.retired_id
            if not dict.__len__(self.contents):
                return WritePlan(drop=ending, drop_first=True, cookie=cookie_gone)
            # Values written after invalidate() start a new session; metadata alone does not.
            fresh = {key: encode(key, value) for key, value in dict.items(self.contents)}
            return self._creating(fresh, now, new_id, drop=ending, drop_first=True)
        changed, deleted = self.changes()
        if self.retired and old is None:
            # The cookie this request came with names an id another request of the browser
            # just moved (a sign-in): that request sets the new cookie. Clearing it here, or
            # setting a new session's, would sign the browser out if this answer came last.
            return WritePlan(refused="rotated") if changed or self.meta_changed else UNCHANGED
        if old is not None and not regenerate:
            if not (changed or deleted or self.meta_changed):
                return UNCHANGED
            if (deleted and not dict.__len__(self.contents) and not self.meta_changed
                    and not self.wanted):
                # Emptied (``clear()``, the last ``pop()``): it ends, entry and cookie, as in
                # Starlette, Flask and Django -- another app's key since goes too, as at a
                # logout -- unless ``Session.save()`` asked to keep it.
                return WritePlan(drop=old, cookie=cookie_gone)
            return WritePlan(
                save_to=old, changed=changed, deleted=tuple(deleted),
                meta=self._changed_meta(), lifetime_start=lifetime_start(self.meta, int(now)),
            )
        # A new session, or one moving to a fresh id.
        fields = dict(self.stored)
        fields.update(changed)
        for key in deleted:
            fields.pop(key, None)
        if not fields and not self.meta_changed and not self.wanted:
            # Nothing to keep: no entry, no cookie (unless ``Session.save()`` asked).
            return WritePlan(drop=old, cookie=cookie_gone)
        if old is None:
            return self._creating(fields, now, new_id, drop=None, drop_first=False)
        # A move: the store takes the session as it holds it *then* (another app's write
        # since this request read it is kept, metadata included: an operator's withdraw
        # must not be undone by a move that read the session before it) and merges this
        # request's changes in -- only if it is still live, in the same step.
        meta = self._changed_meta() or {}
        if META_CREATED not in self.meta:
            meta[META_CREATED] = int(now)
        return WritePlan(
            move_from=old, save_to=self.next_sid or new_id(self.remembered), changed=changed,
            deleted=tuple(deleted), meta=meta,
            lifetime_start=lifetime_start({**self.meta, **meta}, int(now)), cookie="set",
        )

    def _creating(
        self,
        fields: dict[str, str],
        now: float,
        new_id: NewId,
        *,
        drop: str | None,
        drop_first: bool,
    ) -> WritePlan:
        meta = dict(self.meta)
        meta.setdefault(META_CREATED, int(now))
        return WritePlan(
            drop=drop, drop_first=drop_first, save_to=new_id(self.remembered), create=True,
            changed=fields, meta=meta, lifetime_start=lifetime_start(meta, int(now)),
            cookie="set",
        )

    def _asked_end_passed(self, now: float) -> bool:
        asked = ends_at(self.meta)
        return asked is not None and asked <= now

    def _late_plan(self, now: float, regenerate: bool) -> WritePlan:
        old = self.sid if self.exists else None
        if self.retired and old is None and not self.invalidated:
            return WritePlan(refused="rotated") if dict.__len__(self.contents) else UNCHANGED
        if self._asked_end_passed(now):
            return WritePlan(drop=old if old is not None else self.retired_id, drop_first=True)
        if self.invalidated:
            # A logout needs no cookie: the stored session still goes. Values written after
            # invalidate() would start a new session, and its cookie can no longer be sent.
            return WritePlan(
                drop=old if old is not None else self.retired_id, drop_first=True,
                refused="new_session" if dict.__len__(self.contents) else None,
            )
        changed, deleted = self.changes()
        if old is None:
            # Its cookie can no longer be sent: stored, it would be an orphan no browser holds.
            return WritePlan(refused="new_session") if changed or self.meta_changed else UNCHANGED
        # Moving to a new id now would delete the id the browser holds and send it no other
        # (every app then sees the user signed out): the session keeps its id.
        refused: Literal["regenerate"] | None = "regenerate" if regenerate else None
        if not (changed or deleted or self.meta_changed):
            return WritePlan(refused=refused) if refused else UNCHANGED
        return WritePlan(
            save_to=old, changed=changed, deleted=tuple(deleted), meta=self._changed_meta(),
            lifetime_start=lifetime_start(self.meta, int(now)), refused=refused,
        )

    def _changed_meta(self) -> dict[str, int] | None:
        """The metadata fields this request set, with their values; None for none."""
        if not self.meta_changed:
            return None
        return {name: self.meta[name] for name in self.meta_changed}

    def size_after(self, plan: WritePlan) -> int:
        """Bytes of app data (key names, JSON text) stored once ``plan`` ran, counted from
        the record as read (another app's write since is not seen; metadata is not)."""
        if plan.save_to is None:
            return 0
        fields = plan.changed
        if not plan.create:
            fields = {**self.stored, **fields}
            for key in plan.deleted:
                fields.pop(key, None)
        # JSON text is ASCII (ensure_ascii), so its length is its size in bytes; the names
        # are counted as UTF-8, all at once. (No loop here: this runs on every write.)
        return sum(map(len, fields.values())) + len("".join(fields).encode("utf-8"))

    def mark_written(self, plan: WritePlan) -> None:
        """The store now holds what ``plan`` (this session's own, just run) wrote."""
        if plan.create:
            assert plan.save_to is not None and plan.meta is not None
            self.sid, self.exists, self.had_cookie = plan.save_to, True, True
            self.stored, self.meta = dict(plan.changed), dict(plan.meta)
        elif plan.save_to is not None:
            if plan.move_from is not None:
                self.sid, self.exists, self.had_cookie = plan.save_to, True, True
            self.stored.update(plan.changed)
            for key in plan.deleted:
                self.stored.pop(key, None)
            self.meta.update(plan.meta or {})
        elif plan.drop is not None or not self.exists:
            self.take(None, {}, {})
            self.had_cookie = False
        self._settled()

    def mark_gone(self, *, moved: bool = False) -> None:
        """An update or a move found no live session: ended elsewhere (the caller clears the
        cookie), or ``moved`` by another request of this browser (which sets its own)."""
        retired = self.sid if moved else None
        self.take(None, {}, {})
        self.gone = "moved" if moved else "ended"
        if moved:
            self.retired, self.retired_id = True, retired
        else:
            self.had_cookie = False
        self._settled()

    def forget_changes(self) -> None:
        """Drop what this request changed and could not write (a late persist the store
        failed, which nobody can retry): the session reads as it was stored."""
        self._show_stored()
        self._settled()

    def _settled(self) -> None:
        """Nothing of this request is left to write."""
        # The app still holds what it assigned (``cart = session.setdefault("cart", [])``
        # before a ``save()``): a change it makes in place later must still be found. A
        # value that cannot change in place is not watched (no encoding at the close).
        contents = self.contents
        for key in self.assigned:
            if not isinstance(dict.get(contents, key), IMMUTABLE):
                self.handed.add(key)
        self.assigned = set()
        self.meta_changed = set()
        self.regenerating = self.invalidated = self.wanted = False
        self.remembered = self.next_sid = None
