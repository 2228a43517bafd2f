"""One app's rules for the shared session: find it, read it, write it -- as store steps.

:class:`Lifecycle` knows this app's cookie, key prefix and timeouts: it finds the
session id in a ``Cookie`` header, reads the session in one round trip, and turns
the state's :class:`~sessionshare.core.record.WritePlan` into store steps and
``Set-Cookie`` headers. :meth:`Lifecycle.persisting` is every shell's persist path.

Security properties kept here:

- A cookie naming a session the store does not hold is ignored: a new session
  always gets a fresh id (no fixation through a planted cookie).
- Cookie values are per app, store keys a digest keyed by the sync key
  (:mod:`sessionshare.core.ids`): a copied cookie, another deployment's session
  or a store dump gives nothing.
- The limits are the stricter of this app's and the ones the id carries (the
  IdP's); a session past its absolute lifetime is deleted when read.
- A write or a move to a new id happens only while the session is live, in one
  store step: a request that read it before a logout or a revocation finds it
  ended and answers signed out (``change_refused reason=ended``) -- a stolen
  cookie kept busy in a request cannot outrun "sign out everywhere".

    rules = Lifecycle(cookie=CookieSpec("sessionshare"), key=key,
                      audience="https://shop.example", idle_timeout=1800,
                      absolute_timeout=8 * 3600, key_prefix="sessionshare:",
                      max_session_bytes=64 * 1024)
    session = rules.open(cookie_header, loader=lambda sid: run(rules.read(sid), store))
    headers = run(rules.persist(session), store)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Literal

from ..crypto import SyncKey
from ..errors import SessionTooLarge, StoreUnavailable
from ..store.base import MARKED_BEFORE, META_LIMIT, SessionRecord, SessionStore
from .census import census_key
from .configure import CheckedOptions, followed_cookie
from .cookies import CookieSpec
from .events import EventName, Events
from .ids import COOKIE_VALUE_PATTERN, TIMED_COOKIE_VALUE_PATTERN, SessionIds
from .record import (
    META_AUTHENTICATED,
    META_CREATED,
    META_ENDS,
    META_JOINED,
    META_RETIRED,
    SessionLoader,
    WritePlan,
    session_store_key,
)
from .session import Session, state_of
from .sessionstate import ENDS_FROM, ENDS_TO, SessionState, ends_at, lifetime_start
from .steps import Delete, Load, Mark, Move, Peek, Save, Steps, run

__all__ = ["Headers", "Joined", "Lifecycle", "follow_cookie", "response_headers"]

Headers = list[tuple[str, str]]
#: What :meth:`Lifecycle.join` found.
Joined = Literal["joined", "gone", "again"]
# A response that depends on the session cookie must not be cached for another user.
_VARY = ("Vary", "Cookie")

log = logging.getLogger("sessionshare")

# What a late_change_refused (or change_refused) warning tells the app's developer.
_LATE_FIX = {
    "regenerate": "regenerate() was called after the response started; the session keeps "
    "its id (call regenerate() before start_response)",
    "new_session": "a session first written after the response started gets no cookie and "
    "is not stored (write the session before start_response)",
    "rotated": "this request read a session id that a sign-in in another request of the "
    "same browser had just moved; its changes are dropped and its cookie left alone, so "
    "that the sign-in's new cookie stands (the user repeats the action if needed)",
    "ended": "the session was ended (a logout or a revocation) while this request ran; "
    "its changes are dropped and it answers signed out, so that the end stands",
}
#: Ids whose store key a lifecycle keeps at most (as SessionIds keeps their lookups).
_WHERES_KEPT = 4096
#: -META_LIMIT, made once (not a new int per metadata field of every read).
_META_FLOOR = -META_LIMIT
#: Seconds a moved id stays a marker (see ``META_RETIRED``): longer than any request that
#: read it before the move can still be running.
ROTATION_GRACE = 30


def response_headers(app_headers: Headers, added: Headers) -> Headers:
    """The app's response headers with the session's ``added`` ones (cookie, ``Vary``):
    one ``Vary`` naming each name once, since some caches read only one of two."""
    if not added:
        return app_headers
    # Loops, not any() over generators: this runs on every response.
    for name, _ in added:
        if name == "Vary":
            break
    else:
        return [*app_headers, *added]
    for name, _ in app_headers:
        if name.lower() == "vary":
            break
    else:
        return [*app_headers, *added]
    names: list[str] = []
    for values in [value for name, value in app_headers if name.lower() == "vary"] + [
        value for name, value in added if name == "Vary"
    ]:
        for token in values.split(","):
            token = token.strip()
            if token and token.lower() not in (seen.lower() for seen in names):
                names.append(token)
    # "*" already varies on everything: a list beside it says nothing more.
    merged = "*" if "*" in names else ", ".join(names)
    headers: Headers = []
    for name, value in app_headers:
        if name.lower() != "vary":
            headers.append((name, value))
        elif merged:
            headers.append((name, merged))  # where the app's first Vary stood
            merged = ""
    headers += [(name, value) for name, value in added if name != "Vary"]
    return headers


def follow_cookie(session: Session, asked: Mapping[str, object]) -> CookieSpec | None:
    """For an adapter: :meth:`Lifecycle.follow_cookie` of ``session``'s opener, or None."""
    lifecycle = state_of(session).lifecycle
    return None if lifecycle is None else lifecycle.follow_cookie(asked)


class Lifecycle:
    """Cookie, key names and lifetimes of the shared session, for one app."""

    def __init__(
        self,
        *,
        cookie: CookieSpec,
        key: SyncKey,
        audience: str,
        idle_timeout: int,
        absolute_timeout: int,
        max_remember: int | None = None,
        key_prefix: str,
        max_session_bytes: int,
        clock: Callable[[], float] = time.time,
        events: Events | None = None,
        cookie_max_age: int | None = None,
        cookie_refresh: bool = True,
    ) -> None:
        # The values are a side's checked options (core/configure.py): checked there, once.
        self.events = events if events is not None else Events()
        self.max_session_bytes = int(max_session_bytes)
        self.idle_timeout = int(idle_timeout)
        self.absolute_timeout = int(absolute_timeout)
        self.key_prefix = key_prefix
        self.clock = clock
        self.audience = audience
        self.ids = SessionIds(
            key, audience=audience, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
            max_remember=max_remember, cookie_max_age=cookie_max_age,
        )
        #: Seconds this app's session cookie lasts (its values are timed then), or None:
        #: a browser-session cookie, unless a remembered sign-in or an adapter asks longer.
        self.cookie_max_age = self.ids.cookie_max_age
        #: Re-send a persistent cookie on every request that carries a valid one.
        self.cookie_refresh = bool(cookie_refresh)
        # Worked out once: the read path checks one flag.
        self._refreshing = self.cookie_max_age is not None and self.cookie_refresh
        # Every end of a session leaves the census in the same step: the count stays true.
        self.census = census_key(key, key_prefix)
        #: id -> (store key, idle, absolute), for the reads (see _where).
        self._wheres: dict[str, tuple[str, int, int]] = {}
        self._use_cookie(cookie)
        #: The side's checked options (set by the side): what :meth:`follow_cookie` builds on.
        self.options: CheckedOptions | None = None
        self._followed: dict[str, object] = {}

    def follow_cookie(self, asked: Mapping[str, object]) -> CookieSpec:
        """Make the session cookie, in every answer from now on, the one ``asked`` describes
        (a framework's settings, e.g. Flask's ``SESSION_COOKIE_PATH``; empty: the options');
        the cookie in use. Raises :class:`~sessionshare.errors.ConfigurationError` for what
        cannot hold. For settings made once: a later change leaves the old cookie behind."""
        if dict(asked) == self._followed:
            return self.cookie  # the common case: the same settings as last time
        if self.options is None:
            raise RuntimeError("this lifecycle was not built by a side: it has no options")
        cookie = followed_cookie(self.options, asked)
        self._use_cookie(cookie)
        self._followed = dict(asked)
        return cookie

    def _use_cookie(self, cookie: CookieSpec) -> None:
        """Set and read ``cookie`` from now on."""
        self.cookie = cookie
        # An app reads only its own form of value: with cookie_max_age, only timed ones
        # (an untimed value could not show its age, and would outlive the limit).
        self._cookie_re = cookie.pattern(COOKIE_VALUE_PATTERN if self.cookie_max_age is None
                                         else TIMED_COOKIE_VALUE_PATTERN)
        self._cookie_marker = cookie.name + "="

    # -- names -------------------------------------------------------------
    def session_key(self, sid: str) -> str:
        """The store key of ``sid`` (made under a configured key): a keyed digest, so a
        store dump yields no cookie, in braces: a cluster hash tag, one slot for its keys."""
        # The read's memoised key when it has one: no MAC, no string per write.
        found = self._where(sid)
        if found is not None:
            return found[0]
        return session_store_key(self.key_prefix, self.ids.digest(sid))

    def session_id_in(self, cookies: str | None) -> str | None:
        """The session id in this app's own cookie in a ``Cookie`` header, if genuine."""
        if not cookies or self._cookie_marker not in cookies:
            return None
        match = self._cookie_re.search(cookies)
        if match is None:
            return None
        if self.cookie_max_age is None:
            return self.ids.from_cookie(match.group(1) or match.group(2))
        timed = self.ids.from_timed_cookie(match.group(1) or match.group(2), self.clock())
        return None if timed is None else timed[0]

    def cookie_value(self, sid: str) -> str:
        """This app's own cookie value for ``sid`` (with ``cookie_max_age``: timed now)."""
        if self.cookie_max_age is None:
            return self.ids.cookie_value(sid)
        return self.ids.timed_cookie_value(sid, int(self.clock()))

    def set_cookie(self, sid: str, started: int, state: SessionState | None = None) -> str:
        """The ``Set-Cookie`` value pointing this app's cookie at ``sid`` (lifetime from
        ``started``): a browser-session cookie unless ``cookie_max_age``, an adapter's ask
        in ``state`` or a remembered sign-in makes it persist -- the shortest holds."""
        now = self.clock()
        asked = self.cookie_max_age
        if state is not None and state.cookie_asked is not None:
            asked = state.cookie_asked[0]
        if self.ids.is_remembered(sid):
            left = max(started + self.ids.limits(sid)[1] - int(now), 1)
            asked = left if asked is None else min(left, asked)
        if asked is None:
            return self.cookie.set(self.cookie_value(sid))
        return self.cookie.set(self.cookie_value(sid), max_age=asked, now=now)

    def _refreshes(self, state: SessionState, *, changed: bool = False) -> bool:
        """Whether this response re-sends the request's genuine cookie (a sliding expiry,
        as Starlette's and Flask's): with ``cookie_refresh`` or an adapter's ask; else a
        persistent one only when ``changed``. Never for a session found gone."""
        asked = state.cookie_asked
        if asked is None:
            if not (self._refreshing or changed and self.cookie_max_age is not None):
                return False
        elif not (asked[1] or changed and asked[0] is not None):
            return False
        return (state.sid is not None and not state.retired
                and (not state.loaded or state.exists))

    def _refreshed(self, state: SessionState, headers: Headers, *,
                   changed: bool = False) -> Headers:
        """``headers`` with the refreshed cookie and ``Vary`` when :meth:`_refreshes`."""
        if not self._refreshes(state, changed=changed):
            return headers
        assert state.sid is not None
        if _VARY not in headers:
            headers.append(_VARY)  # an answer that re-sends the cookie depends on it
        started = lifetime_start(state.meta, int(self.clock()))
        headers.append(("Set-Cookie", self.set_cookie(state.sid, started, state)))
        return headers

    # -- reading -----------------------------------------------------------
    def read(self, sid: str) -> Steps[SessionRecord | None]:
        """The live session ``sid``, or None; one round trip (two when it just expired)."""
        found = self._where(sid)
        if found is None:
            return None  # made under a key this app does not hold: not this deployment's
        key, idle, absolute = found
        record: SessionRecord | None = yield Load(key, idle)
        if self._ended(record, absolute) is None:
            return record  # the usual read: no second generator for it
        return (yield from self._live(key, record, absolute))

    def read_on(self, sid: str, store: SessionStore) -> SessionRecord | None:
        """:meth:`read` on a thread store, called directly: the same read, the same one
        round trip, without a generator to drive (a thread shell's session loader runs
        this on every authenticated request; driving steps costs about a tenth of it)."""
        found = self._where(sid)
        if found is None:
            return None  # made under a key this app does not hold: not this deployment's
        key, idle, absolute = found
        record: SessionRecord | None = store.load(key, idle)
        if self._ended(record, absolute) is None:
            return record
        return run(self._live(key, record, absolute), store)  # ended: its delete, as read's

    def _where(self, sid: str) -> tuple[str, int, int] | None:
        """The store key and the (idle, absolute) limits of ``sid``; None unless it is known
        (:meth:`SessionIds.lookup`). Kept per id, as the lookup is: every request of a
        session reads the same key, so it is one string made once (whose hash the store's
        packed-read memo then finds already computed)."""
        found = self._wheres.get(sid)
        if found is None:
            looked = self.ids.lookup(sid)
            if looked is None:
                return None
            found = (session_store_key(self.key_prefix, looked[0]), looked[1], looked[2])
            if len(self._wheres) >= _WHERES_KEPT:
                self._wheres.clear()  # starts over: bounded, whatever the number of sessions
            self._wheres[sid] = found
        return found

    def _live(
        self, key: str, record: SessionRecord | None, absolute: int
    ) -> Steps[SessionRecord | None]:
        """``record``, or None when it is damaged or ended -- an ended one is deleted."""
        reason = self._ended(record, absolute)
        if reason is None:
            return record
        if reason != "damaged":
            yield Delete(key, self.census)
            self.events.emit(logging.INFO, "session_expired", {"reason": reason},
                             "session_expired reason=%s", reason)
        return None

    def _ended(
        self, record: SessionRecord | None, absolute: int
    ) -> Literal["damaged", "absolute", "asked"] | None:
        """Why ``record`` is no session to serve, or None for a live one (or none at all,
        or a marker)."""
        if record is None:
            return None
        fields, meta = record
        # Any backend, not only Redis (whose parser checks too): a damaged record is no
        # session -- the request goes on anonymous and a write gets a fresh id. This is
        # is_well_formed(fields, meta) and ends_at(meta) in one pass over the metadata,
        # on every read (a property test holds it to both).
        if type(fields) is not dict or type(meta) is not dict:
            return "damaged"
        for key, text in fields.items():
            if type(key) is not str or type(text) is not str:
                return "damaged"
        asked: float | None = None
        for name, when in meta.items():
            if type(name) is not str or (type(when) is not int and type(when) is not float):
                return "damaged"
            if not _META_FLOOR <= when <= META_LIMIT:
                return "damaged"  # past any clock: see is_well_formed
            if (ENDS_FROM <= name < ENDS_TO and when > 0
                    and (asked is None or when < asked)):
                asked = when
        if META_RETIRED in meta:
            # A marker (an id just moved) lives its few seconds, not a session's lifetime:
            # ending it as expired would follow it and end the session it moved to.
            return None
        now = self.clock()
        # lifetime_start(meta, 0), inline.
        if max(meta.get(META_CREATED, 0), meta.get(META_AUTHENTICATED, 0)) + absolute <= now:
            return "absolute"
        if asked is not None and asked <= now:
            return "asked"  # an app asked it to end by now (Session.expire_at)
        return None

    def open(self, cookies: str | None, loader: SessionLoader | None = None, *,
             direct: bool = False) -> Session:
        """This request's session, for the genuine id in the ``Cookie`` header ``cookies``,
        else a new one. ``loader`` reads it at the app's first look (WSGI); without one,
        :meth:`load`'s steps read it first. ``direct``: see ``SessionState.direct``."""
        session = Session(loader, self.session_id_in(cookies))
        state = state_of(session)
        state.cookie, state.audience, state.lifecycle = self.cookie, self.audience, self
        state.direct = direct and loader is not None
        return session

    def read_now(self, session: Session) -> Steps[None] | None:
        """The steps that read ``session`` now, or None (nothing to read): under asyncio,
        where a read at the app's first look would block the event loop."""
        return None if state_of(session).loaded else self.load(session)

    def load(self, session: Session) -> Steps[None]:
        """Read ``session`` if it still needs reading (nothing to do without a cookie)."""
        state = state_of(session)
        if not state.loaded:
            assert state.sid is not None  # a session without an id needs no reading
            state.fill((yield from self.read(state.sid)))

    def join(
        self, session: Session, sid: str, *, handoff: str | None = None, remember_for: int = 0
    ) -> Steps[Joined]:
        """Make ``session`` the stored session ``sid`` and record that this app joined it
        (a completed hand-off), in one round trip; the caller sets the cookie.
        ``"joined"``; ``"gone"`` when the session no longer lives; ``"again"`` when the
        redemption ``handoff`` joined it already: a replay of a completed callback.
        Each join is a key of its own beside the session, kept ``remember_for`` seconds
        (while its token could come back), not a field per origin: a later hand-off
        (a second tab, a step-up) must not erase the first's, or a copy of the first
        callback would join again."""
        state = state_of(session)
        state.point_at(sid)
        found = self.ids.lookup(sid)
        if found is None:
            state.fill(None)
            return "gone"
        digest, idle, absolute = found
        key = session_store_key(self.key_prefix, digest)
        meta = {META_JOINED + self.audience: int(self.clock())}
        once = None if handoff is None else self._handoff_key(digest, handoff)
        before: SessionRecord | None = yield Mark(key, meta, idle, once, remember_for)
        if before is MARKED_BEFORE:
            state.fill(None)
            return "again"
        record = before
        if before is not None and META_RETIRED not in before.meta:
            # What the store holds now; a marker (moved meanwhile) took nothing.
            record = SessionRecord(before.fields, {**before.meta, **meta})
        state.fill((yield from self._live(key, record, absolute)))
        return "joined" if state.stored_id is not None else "gone"

    def _handoff_key(self, digest: str, handoff: str) -> str:
        """The key recording that redemption ``handoff`` joined session ``digest`` (its slot)."""
        return f"{self.key_prefix}j:{{{digest}}}{handoff}"

    def time_left(self, session: Session, *, own_ask: bool = True) -> int:
        """Seconds ``session`` has left if untouched (0: none; a new one: made now), by its
        limits and the apps' ``expire_at`` asks (``own_ask=False``: not this app's)."""
        state = state_of(session)
        state.ensure()
        now = self.clock()
        if state.exists:
            assert state.sid is not None
            idle, absolute = self.ids.limits(state.sid)
        elif state.remembered is None:
            idle, absolute = self.idle_timeout, self.absolute_timeout
        else:  # the limits its id will carry, as remember() asked and max_remember allows
            idle, absolute = self.ids.limits(self.ids.new(state.remembered))
        left = min(idle, lifetime_start(state.meta, int(now)) + absolute - now)
        asked = ends_at(state.meta, besides=None if own_ask else META_ENDS + self.audience)
        if asked is not None:
            left = min(left, asked - now)
        return max(0, int(left))

    def id_after_persist(self, session: Session) -> str | None:
        """The id ``session`` has once persisted (a move's is minted now) or None, as Django's
        ``session_key`` after ``cycle_key()``. A bearer credential: never show or log it."""
        state = state_of(session)
        state.ensure()
        if not state.exists or state.invalidated:
            return None
        if not state.regenerating or state.has_joined(self.audience):
            return state.sid  # a session this app joined keeps its id (see write_plan)
        if state.next_sid is None:
            state.next_sid = self.ids.new(state.remembered)
        return state.next_sid

    # -- writing -----------------------------------------------------------
    def _ttl(self, sid: str, plan: WritePlan, meta: dict[str, int], now: float) -> int:
        # The read's memoised limits when it has them (the id is parsed once per request).
        found = self._where(sid)
        idle, absolute = (found[1], found[2]) if found is not None else self.ids.limits(sid)
        ttl = min(idle, plan.lifetime_start + absolute - now)
        asked = ends_at({**meta, **plan.meta} if plan.meta else meta)
        if asked is not None:
            ttl = min(ttl, asked - now)  # the store forgets it when an app asked it to end
        return max(1, int(ttl))

    def settle(self, session: Session, *, late: bool = False) -> Headers | WritePlan:
        """The response headers when nothing needs writing (no store step), else the
        plan to :meth:`write`. ``late``: the headers are out, so a move or a new
        session is refused (``late_change_refused``); updates and deletes still run."""
        state = state_of(session)
        if not state.loaded:
            # Never read, so never changed. Vary only if the app said it looked (Flask's
            # ``session.accessed = True``, which an extension may set to force it).
            if state.cookie_asked is None and not self._refreshing:
                return [_VARY] if state.accessed else []
            return self._refreshed(state, [_VARY] if state.accessed else [])
        plan = state.write_plan(
            self.clock(), new_id=self.ids.new, joined_as=self.audience, late=late
        )
        if plan.refused is not None:
            event: EventName = (
                "change_refused" if plan.refused == "rotated" else "late_change_refused"
            )
            self.events.emit(logging.WARNING, event, {"reason": plan.refused},
                             "%s reason=%s hint=%r", event, plan.refused, _LATE_FIX[plan.refused])
        if plan.unchanged:
            # Vary only for an answer that depends on the cookie: the app looked inside,
            # or a signed-in user was published to it. A public page that never touched
            # the session stays cacheable, as with the frameworks' own sessions.
            headers: Headers = [_VARY] if state.accessed else []
            if state.cookie_asked is not None or self._refreshing:
                headers = self._refreshed(state, headers)
            return headers if state.cookie_owed is None else self._owed(headers, state)
        return plan

    @staticmethod
    def _owed(headers: Headers, state: SessionState) -> Headers:
        """``headers``, with the cookie an early save made if none of them sets one."""
        if state.cookie_owed is not None and not any(k == "Set-Cookie" for k, _ in headers):
            headers.append(("Set-Cookie", state.cookie_owed))
        return headers

    def persisting(self, session: Session, *, late: bool = False) -> Headers | Steps[Headers]:
        """The one persist path: the headers when nothing needs writing (no generator to
        drive), else the steps that write and answer them. ``late`` (see :meth:`settle`):
        the steps report a store failure (``store_unavailable phase=close``) themselves."""
        if not late:
            state = state_of(session)
            if not state.loaded and state.sid is not None and self._refreshes(state):
                return self._read_then_persist(session)
        # (No keyword for the common, early persist: this runs on every request.)
        settled = self.settle(session, late=True) if late else self.settle(session)
        if isinstance(settled, list):
            return settled
        if late:
            return self._write_late(session, settled)
        return self.write(session, settled)

    def _read_then_persist(self, session: Session) -> Steps[Headers]:
        # A refresh re-sends a cookie only for a session found live: one the app never
        # read is read first (as the ASGI shell always does), so a public page cannot keep
        # alive the cookie of a session a logout or a revocation ended.
        try:
            yield from self.load(session)
        except StoreUnavailable:
            state = state_of(session)
            return [_VARY] if state.accessed else []  # the page, without the refresh
        return (yield from self.persist(session))

    def persist(self, session: Session, *, late: bool = False) -> Steps[Headers]:
        """:meth:`persisting` as steps, for use inside other steps (``yield from``)."""
        work = self.persisting(session, late=late)
        if isinstance(work, list):
            return work
        return (yield from work)

    def _write_late(self, session: Session, plan: WritePlan) -> Steps[Headers]:
        try:
            return (yield from self.write(session, plan))
        except StoreUnavailable:
            # No 503 now: give the changes up, or a later moment (ASGI's) reports it twice.
            state_of(session).forget_changes()
            self.events.emit(logging.WARNING, "store_unavailable", {"phase": "close"},
                             "store_unavailable phase=close")
            return []

    def write(self, session: Session, plan: WritePlan) -> Steps[Headers]:
        """Write ``plan`` (from :meth:`settle`); the response's headers. Raises
        :class:`~sessionshare.errors.SessionTooLarge` past ``max_session_bytes``, before any
        store step but an invalidate's delete: a logout must not hinge on the write after it."""
        state = state_of(session)
        size = state.size_after(plan)
        if size > self.max_session_bytes:
            # Every app pays for every byte on each read: refuse the write whole, not half.
            if plan.drop is not None:
                yield Delete(self.session_key(plan.drop), self.census)
            raise SessionTooLarge(size, self.max_session_bytes)
        now = self.clock()
        headers: Headers = [_VARY]
        if plan.drop is not None:
            yield Delete(self.session_key(plan.drop), self.census)
        if plan.move_from is not None:
            assert plan.save_to is not None
            moved = yield Move(
                self.session_key(plan.move_from), self.session_key(plan.save_to),
                changed=plan.changed, deleted=plan.deleted, meta=plan.meta,
                ttl=self._ttl(plan.save_to, plan, state.meta, now), retired_at=int(now),
                grace=ROTATION_GRACE,
            )
            if not moved:
                # Ended (or moved by another request) since this request read it: moving it
                # now would bring back what a logout or a revocation ended.
                return (yield from self._not_written(session, plan.move_from, headers))
        elif plan.save_to is not None:
            written = yield Save(
                self.session_key(plan.save_to), changed=plan.changed, deleted=plan.deleted,
                meta=plan.meta, ttl=self._ttl(plan.save_to, plan, state.meta, now),
                create=plan.create,
            )
            if not written:
                return (yield from self._not_written(session, plan.save_to, headers))
        state.mark_written(plan)
        if plan.cookie == "set":
            assert plan.save_to is not None
            headers.append(("Set-Cookie", self.set_cookie(plan.save_to, plan.lifetime_start,
                                                          state)))
        elif plan.cookie == "clear":
            headers.append(("Set-Cookie", self.cookie.clear()))
        elif (state.cookie_asked is not None or self._refreshing
              or self.cookie_max_age is not None):
            headers = self._refreshed(state, headers, changed=True)
        return self._owed(headers, state)

    def save_now(self, session: Session, *, late: bool = False) -> Steps[None]:
        """Persist ``session`` now, before its response (``Session.save()``), by the
        persist rules; the cookie it sets or clears is owed to the response's own
        persist. ``late``: as in :meth:`settle`."""
        yield from self.load(session)
        settled = self.settle(session, late=late)
        if isinstance(settled, list):
            state = state_of(session)
            if state.retired and state.modified:
                # Moved by another request (settle refused the write): told, not a silent success.
                state.forget_changes()
                state.gone = "moved"
            return
        headers = yield from self.write(session, settled)
        if not late:
            cookies = [value for name, value in headers if name == "Set-Cookie"]
            if cookies:
                state_of(session).cookie_owed = cookies[-1]

    def _not_written(self, session: Session, sid: str, headers: Headers) -> Steps[Headers]:
        """The session ``sid`` took no write (one round trip more says why): ended, it stays
        signed out, cookie cleared; moved by another request, the cookie is that one's."""
        record = yield Peek(self.session_key(sid))
        reason = "rotated" if record is not None and META_RETIRED in record.meta else "ended"
        state_of(session).mark_gone(moved=reason == "rotated")
        self.events.emit(logging.WARNING if reason == "rotated" else logging.INFO,
                         "change_refused", {"reason": reason},
                         "change_refused reason=%s hint=%r", reason, _LATE_FIX[reason])
        if reason == "ended":
            headers.append(("Set-Cookie", self.cookie.clear()))
        return headers
