"""One app's rules for the shared session: find it, read it, write it -- as store steps.

:class:`Lifecycle` knows this app's cookie, key prefix and timeouts. It finds
the session id in a ``Cookie`` header, reads a session (one round trip that
also slides the idle expiry; the absolute lifetime is enforced here), and
persists one: the session's state decides *what* to write (its
:class:`~sessionshare.core.record.WritePlan`), this module turns the plan into
store commands and ``Set-Cookie`` headers. It does no I/O: each operation is a
step (``core/steps.py``) that a shell drives on its store.

This is the one persist path of every shell and side (:meth:`Lifecycle.persisting`):
settle (nothing to write: the headers at once), write, headers -- and the late
persist after the headers went out, which refuses what would need a cookie and
reports a store failure itself, since no answer can carry it any more.

Security properties kept here:

- A cookie naming a session the store does not hold is ignored: a new
  session always gets a *fresh* id (no fixation through a planted cookie).
- Each app's cookie value is its own, and the store key a digest keyed by the
  sync key (:mod:`sessionshare.core.ids`): a cookie copied from another app,
  another deployment's session and a dump of the store all give nothing.
- The idle and absolute limits are the stricter of this app's and the ones
  the session id carries (the IdP's, for a signed-in session) -- for a
  remembered sign-in too, beyond ``max_remember`` (None: no bound; 0: this
  app's own limits hold).
- A timed cookie (``cookie_max_age``) older than its age reads as no cookie
  here (:mod:`sessionshare.core.ids`), whatever the browser kept; the shared
  session itself is untouched.
- A session past its absolute lifetime is deleted when read, so no app sees
  it again; a session written to a store that no longer holds it (logged out
  elsewhere meanwhile) is not brought back, and its cookie is cleared.
- A move to a new id (a sign-in, ``regenerate()``, ``remember()``) is one
  store step that happens only while the session is live
  (:class:`~sessionshare.core.steps.Move`): a request that read the session
  before a logout or a revocation and moves it after finds it ended, and
  answers signed out (``change_refused reason=ended``) -- a stolen cookie
  kept busy in a request cannot outrun "sign out everywhere".

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
    """The app's response headers with the session's ``added`` ones (cookie, ``Vary``).

    The two ``Vary`` lists are merged into one header, each name once: an app that
    varies on ``Accept-Encoding`` answers ``Vary: Accept-Encoding, Cookie``, as
    with the frameworks' own sessions -- not two headers, which some caches and
    clients read as only the first or the last. Every shell builds its headers here.
    """
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
    """For an adapter: :meth:`Lifecycle.follow_cookie` of the middleware that opened
    ``session``; None for a session no middleware opened."""
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
        # Worked out once: with the defaults (no cookie_max_age) no response is refreshed
        # unless an adapter asked for a persistent cookie, and the read path checks one flag.
        self._refreshing = self.cookie_max_age is not None and self.cookie_refresh
        # Every end of a session takes it out of the deployment's census in the same
        # step, so the O(1) count never goes on counting a logged-out session.
        self.census = census_key(key, key_prefix)
        #: id -> (store key, idle, absolute), for the reads (see _where).
        self._wheres: dict[str, tuple[str, int, int]] = {}
        self._use_cookie(cookie)
        #: The side's checked options (set by the side that built this): what a cookie
        #: that follows a framework's settings is built from (:meth:`follow_cookie`).
        self.options: CheckedOptions | None = None
        self._followed: dict[str, object] = {}

    def follow_cookie(self, asked: Mapping[str, object]) -> CookieSpec:
        """Make the session cookie the one ``asked`` describes (attribute -> value: the
        settings a framework's app made for its own session cookie, e.g. Flask's
        ``SESSION_COOKIE_PATH``), for every answer from now on -- the middleware's own
        too (the sign-out clears it at the same path, the callback sets it so); with
        ``asked`` empty, the options' own cookie again. Raises
        :class:`~sessionshare.errors.ConfigurationError` for what cannot hold
        (:func:`~sessionshare.core.configure.followed_cookie`). The cookie in use.

        Meant for the app's configuration, which is set once: an app that changes it
        later gets a cookie of the new attributes beside the browser's old one.
        """
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
        """The store key of a session id (a keyed digest: a store dump yields no cookie).

        ``sid`` must be made under a configured key (:meth:`SessionIds.is_known`).
        The braces make the digest a cluster hash tag, so keys kept with a
        session can share its slot.
        """
        # The read's memoised lookup when it has the id (every write of a session read in
        # this process): the same digest, without a MAC per write.
        found = self.ids.lookup(sid)
        return self._key(found[0] if found is not None else self.ids.digest(sid))

    def _key(self, digest: str) -> str:
        # record.session_store_key, written out: this runs on every read.
        return f"{self.key_prefix}s:{{{digest}}}"

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
        """What this app's session cookie holds for ``sid`` (its own value, see ``ids``;
        with ``cookie_max_age``, timed from now)."""
        if self.cookie_max_age is None:
            return self.ids.cookie_value(sid)
        return self.ids.timed_cookie_value(sid, int(self.clock()))

    def set_cookie(self, sid: str, started: int, state: SessionState | None = None) -> str:
        """The ``Set-Cookie`` value pointing this app's cookie at ``sid``, whose lifetime
        counts from ``started``.

        A browser-session cookie, unless something asks it to persist: this app's
        ``cookie_max_age`` -- or, for this response, what an adapter asked through
        ``state`` (:meth:`~sessionshare.core.sessionstate.SessionState.ask_cookie`) --
        and a remembered sign-in, which lasts as long as the session may. When both
        ask, the shorter lifetime holds: neither an app's setting nor a sign-in
        outlives what the other allows.
        """
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
        """Whether this response re-sends the cookie the request carried: a persistent
        cookie (``cookie_max_age``) with ``cookie_refresh``, or whatever an adapter asked
        (:meth:`~sessionshare.core.sessionstate.SessionState.ask_cookie`); a genuine
        cookie, and a session not found gone -- a sliding expiry, as Starlette's and
        Flask's own sessions do. Without refresh, a persistent cookie is still set anew
        by an answer that ``changed`` the session, so its life counts from the last
        change (the rule of both when they do not refresh)."""
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
            found = (self._key(looked[0]), looked[1], looked[2])
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
        """This request's session, for the id in this app's cookie in ``cookies`` (a
        ``Cookie`` header) if genuine; None: a new, empty one.

        ``loader`` reads it the first time the app looks (a thread server: WSGI); without
        one, it is read by :meth:`load`'s steps before anything looks. ``direct``: the
        loader reads on the store the shell drives the steps on, so a side may read
        through it instead of yielding the read (see ``SessionState.direct``).
        """
        session = Session(loader, self.session_id_in(cookies))
        state = state_of(session)
        state.cookie, state.audience, state.lifecycle = self.cookie, self.audience, self
        state.direct = direct and loader is not None
        return session

    def read_now(self, session: Session) -> Steps[None] | None:
        """The steps that read ``session`` now, or None when there is nothing to read (no
        cookie): for a shell whose app cannot have it read on its first look (asyncio,
        where that read would block the event loop)."""
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
        (a completed hand-off, so the IdP authorized this origin).

        ``"joined"``; ``"gone"`` when the session no longer lives; ``"again"`` when
        ``handoff`` -- the name of this hand-off's redemption -- joined it already: the
        callback was completed once and this is a replay of it (a retry whose first
        answer was lost never got this far, and joins).

        Each hand-off's join is recorded by a key of its own next to the session
        (``<prefix>j:{<digest>}<handoff>``), kept ``remember_for`` seconds -- as long as its token
        could come back -- and created in the same store command as the join. One
        key per hand-off, not one field per origin: a later hand-off of the same
        session to this app (a second tab, a step-up) must not erase the record of
        the first, or a copy of the first's callback would join again. Nor does it
        grow the session that every app reads on every request.

        One round trip: the record is read in the same store command that
        marks it (:class:`~sessionshare.core.steps.Mark`). The caller sets the cookie.
        """
        state = state_of(session)
        state.point_at(sid)
        found = self.ids.lookup(sid)
        if found is None:
            state.fill(None)
            return "gone"
        digest, idle, absolute = found
        key = self._key(digest)
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
        """The store key recording that the redemption ``handoff`` joined the session named
        ``digest`` (in the session's hash slot)."""
        return f"{self.key_prefix}j:{{{digest}}}{handoff}"

    def time_left(self, session: Session, *, own_ask: bool = True) -> int:
        """Seconds ``session`` has left now if nothing touches it again (0: none): the
        stricter of its idle and absolute limits (this app's, and the ones its id
        carries -- the IdP's, for a signed-in session) and the earliest end an app
        asked for (:meth:`~sessionshare.core.session.Session.expire_at`). A new
        session counts as made now, under this app's limits. ``own_ask=False`` leaves
        this app's own ask out: what the others and the limits allow it."""
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
        """The id ``session`` will have once persisted, or None (new, or ending): for an
        app that names the session before its response (Django's ``session_key`` right
        after ``cycle_key()``). After a :meth:`~sessionshare.core.session.Session.regenerate`
        that moves it, the fresh id is minted now, and the move takes that very id.
        A bearer credential, as every id: never show or log it."""
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
        idle, absolute = self.ids.limits(sid)
        ttl = min(idle, plan.lifetime_start + absolute - now)
        asked = ends_at({**meta, **(plan.meta or {})})
        if asked is not None:
            ttl = min(ttl, asked - now)  # the store forgets it when an app asked it to end
        return max(1, int(ttl))

    def settle(self, session: Session, *, late: bool = False) -> Headers | WritePlan:
        """The response headers when nothing needs writing, else the plan to :meth:`write`.

        The common case -- a session read and left unchanged -- needs no store
        step at all, so a shell can finish it without driving one.

        ``late``: the response's headers are already out (the session changed
        while the body streamed). Nothing can reach the browser any more, so
        the plan only updates or deletes the stored session; a move to a new
        id or a session still to be created is refused and logged
        (``late_change_refused``), and the session stays as it was stored.
        """
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
        """The one persist path: the headers (cookie, ``Vary``) the response needs when
        nothing needs writing -- the common case, no generator to drive -- else the
        steps that write the session's plan and answer them.

        ``late``: after the headers went out (see :meth:`settle`). No answer can
        carry a store failure any more then: the late steps report it themselves
        (``store_unavailable phase=close``) and end, under every shell alike.
        """
        # (No keyword for the common, early persist: this runs on every request.)
        settled = self.settle(session, late=True) if late else self.settle(session)
        if isinstance(settled, list):
            return settled
        if late:
            return self._write_late(session, settled)
        return self.write(session, settled)

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
            # The response is on its way already: nothing can answer 503 any more. The
            # changes are given up, so that no later moment of the same request (ASGI's
            # after the app returned) tries them again and reports the failure twice.
            state_of(session).forget_changes()
            self.events.emit(logging.WARNING, "store_unavailable", {"phase": "close"},
                             "store_unavailable phase=close")
            return []

    def write(self, session: Session, plan: WritePlan) -> Steps[Headers]:
        """Write ``plan`` (from :meth:`settle`); the headers the response needs.

        Raises :class:`~sessionshare.errors.SessionTooLarge` before any store
        step when the session would outgrow ``max_session_bytes`` -- except that
        an :meth:`~sessionshare.core.session.Session.invalidate` still deletes
        the old session first: a logout must not hinge on the write after it.
        """
        state = state_of(session)
        size = state.size_after(plan)
        if size > self.max_session_bytes:
            # Every app pays for every byte on each read of the shared session (a 20 MB
            # session costs Redis 40-80 ms per write): refuse the write whole, so the
            # stored session stays as it was rather than half-updated.
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
        """Persist ``session`` now, before its response
        (:meth:`~sessionshare.core.session.Session.save`): read if unread, then what
        persisting does, by the same rules -- a move only while the session is live.

        The cookie the write sets (or clears) is owed to the response: the response's
        own persist adds it. ``late``: the response's headers are out, so the write
        is the late persist's (no new session, no move: see :meth:`settle`).
        """
        yield from self.load(session)
        settled = self.settle(session, late=late)
        if isinstance(settled, list):
            state = state_of(session)
            if state.retired and state.modified:
                # The id this request read was moved by another request of the browser (a
                # sign-in in another tab): nothing was written (settle refused it), and the
                # app is told so, as when a write finds it moved -- not a silent success.
                state.forget_changes()
                state.gone = "moved"
            return
        headers = yield from self.write(session, settled)
        if not late:
            cookies = [value for name, value in headers if name == "Set-Cookie"]
            if cookies:
                state_of(session).cookie_owed = cookies[-1]

    def _not_written(self, session: Session, sid: str, headers: Headers) -> Steps[Headers]:
        """The session ``sid`` took no write: it ended, or another request moved it.

        One more round trip tells the two apart, only on this rare path. Ended
        (logged out elsewhere, revoked): the request stays signed out and the
        cookie is cleared. Moved (a sign-in in another request of this browser):
        its changes are dropped and the cookie left to the request that moved it.
        """
        record = yield Peek(self.session_key(sid))
        reason = "rotated" if record is not None and META_RETIRED in record.meta else "ended"
        state_of(session).mark_gone(moved=reason == "rotated")
        self.events.emit(logging.WARNING if reason == "rotated" else logging.INFO,
                         "change_refused", {"reason": reason},
                         "change_refused reason=%s hint=%r", reason, _LATE_FIX[reason])
        if reason == "ended":
            headers.append(("Set-Cookie", self.cookie.clear()))
        return headers
