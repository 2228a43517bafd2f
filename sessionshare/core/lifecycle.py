"""One app's rules for the shared session: find it, read it, write it -- as store steps.

:class:`Lifecycle` knows this app's cookie, key prefix and timeouts. It finds
the session id in a ``Cookie`` header, reads a session (one round trip that
also slides the idle expiry; the absolute lifetime is enforced here), and
persists one: the :class:`~sessionshare.core.session.Session` decides *what* to
write (its :class:`~sessionshare.core.session.WritePlan`), this module turns the
plan into store commands and ``Set-Cookie`` headers. It does no I/O: each
operation is a step (``core/steps.py``) that a shell drives on its store.

Security properties kept here:

- A cookie naming a session the store does not hold is ignored: a new
  session always gets a *fresh* id (no fixation through a planted cookie).
- The store key is a SHA-256 digest of the id: a dump of the store yields no
  usable cookie.
- A session past its absolute lifetime is deleted when read, so no app sees
  it again; a session written to a store that no longer holds it (logged out
  elsewhere meanwhile) is not brought back, and its cookie is cleared.

    rules = Lifecycle(cookie=CookieSpec("sessionshare"), idle_timeout=1800,
                      absolute_timeout=8 * 3600)
    session = Session(sid=rules.session_id_in(cookie_header), loader=...)
    headers = run(rules.persist(session), store)
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from ..errors import ConfigurationError, SessionTooLarge
from ..store.base import SessionRecord, is_well_formed
from .cookies import CookieSpec
from .session import SESSION_ID_PATTERN, Session, WritePlan, lifetime_start
from .steps import Delete, Load, Save, Steps

__all__ = ["Headers", "Lifecycle"]

Headers = list[tuple[str, str]]
# A response that depends on the session cookie must not be cached for another user.
_VARY = ("Vary", "Cookie")

log = logging.getLogger("sessionshare")

# What a late_change_refused warning tells the app's developer to do.
_LATE_FIX = {
    "regenerate": "regenerate() was called after the response started; the session keeps "
    "its id (call regenerate() before start_response)",
    "new_session": "a session first written after the response started gets no cookie and "
    "is not stored (write the session before start_response)",
}


class Lifecycle:
    """Cookie, key names and lifetimes of the shared session, for one app."""

    def __init__(
        self,
        *,
        cookie: CookieSpec,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 8 * 60 * 60,
        key_prefix: str = "sessionshare:",
        max_session_bytes: int = 64 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if idle_timeout <= 0 or absolute_timeout <= 0:
            raise ConfigurationError("idle_timeout and absolute_timeout must be positive seconds")
        if max_session_bytes <= 0:
            raise ConfigurationError("max_session_bytes must be a positive number of bytes")
        self.max_session_bytes = int(max_session_bytes)
        self.cookie = cookie
        self.idle_timeout = int(idle_timeout)
        self.absolute_timeout = int(absolute_timeout)
        self.key_prefix = key_prefix
        self.clock = clock
        self._cookie_re = cookie.pattern(SESSION_ID_PATTERN)
        self._cookie_marker = cookie.name + "="

    # -- names -------------------------------------------------------------
    def session_key(self, sid: str) -> str:
        """The store key of a session id: a digest, so a store dump yields no cookie.

        The braces are part of the stored name (kept for compatibility): a
        session is one key, so no command ever spans two cluster slots anyway.
        """
        return f"{self.key_prefix}s:{{{hashlib.sha256(sid.encode('ascii')).hexdigest()}}}"

    def session_id_in(self, cookies: str | None) -> str | None:
        """The well-formed session id in a ``Cookie`` header, if any."""
        if not cookies or self._cookie_marker not in cookies:
            return None
        match = self._cookie_re.search(cookies)
        return (match.group(1) or match.group(2)) if match else None

    # -- reading -----------------------------------------------------------
    def read(self, sid: str) -> Steps[SessionRecord | None]:
        """The live session ``sid``, or None; one round trip (two when it just expired)."""
        key = self.session_key(sid)
        record: SessionRecord | None = yield Load(key, self.idle_timeout)
        if record is not None and not is_well_formed(record.fields, record.meta):
            # Any backend, not only Redis (whose parser checks too): a damaged record is
            # no session -- the request goes on anonymous and a write gets a fresh id.
            return None
        if record is not None and (
            lifetime_start(record.meta, 0) + self.absolute_timeout <= self.clock()
        ):
            yield Delete(key)
            return None
        return record

    def load(self, session: Session) -> Steps[None]:
        """Read ``session`` if it still needs reading (nothing to do without a cookie)."""
        sid = session.unread_id
        if sid is not None:
            session.fill((yield from self.read(sid)))

    def adopt(self, session: Session, sid: str) -> Steps[bool]:
        """Make ``session`` the stored session ``sid`` (a completed hand-off); False if gone.

        The caller sets the cookie.
        """
        session.point_at(sid)
        yield from self.load(session)
        return session.stored_id is not None

    # -- writing -----------------------------------------------------------
    def _ttl(self, started: int, now: float) -> int:
        remaining = started + self.absolute_timeout - now
        return max(1, int(min(self.idle_timeout, remaining)))

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
        if not session.loaded:
            return []  # never read, so never changed: not even Vary
        plan = session.write_plan(self.clock(), late=late)
        if plan.refused is not None:
            log.warning(
                "late_change_refused reason=%s hint=%r", plan.refused, _LATE_FIX[plan.refused]
            )
        if plan.unchanged:
            return [_VARY]
        return plan

    def persist(self, session: Session, *, late: bool = False) -> Steps[Headers]:
        """Run the session's write plan; the headers (cookie, ``Vary``) the response needs.

        ``late``: after the headers went out (see :meth:`settle`).
        """
        settled = self.settle(session, late=late)
        if isinstance(settled, list):
            return settled
        return (yield from self.write(session, settled))

    def write(self, session: Session, plan: WritePlan) -> Steps[Headers]:
        """Write ``plan`` (from :meth:`settle`); the headers the response needs.

        Raises :class:`~sessionshare.errors.SessionTooLarge` before any store
        step when the session would outgrow ``max_session_bytes`` -- except that
        an :meth:`~sessionshare.core.session.Session.invalidate` still deletes
        the old session first: a logout must not hinge on the write after it.
        """
        size = session.size_after(plan)
        if size > self.max_session_bytes:
            # Every app pays for every byte on each read of the shared session (a 20 MB
            # session costs Redis 40-80 ms per write): refuse the write whole, so the
            # stored session stays as it was rather than half-updated.
            if plan.drop is not None and plan.drop_first:
                yield Delete(self.session_key(plan.drop))
            raise SessionTooLarge(size, self.max_session_bytes)
        now = self.clock()
        headers: Headers = [_VARY]
        if plan.drop is not None and plan.drop_first:
            yield Delete(self.session_key(plan.drop))
        if plan.save_to is not None:
            written = yield Save(
                self.session_key(plan.save_to), changed=plan.changed, deleted=plan.deleted,
                meta=plan.meta, ttl=self._ttl(plan.lifetime_start, now), create=plan.create,
            )
            if not written:
                # Logged out elsewhere while this request ran: stay logged out.
                session.mark_gone()
                headers.append(("Set-Cookie", self.cookie.clear()))
                return headers
        if plan.drop is not None and not plan.drop_first:
            yield Delete(self.session_key(plan.drop))
        session.mark_written(plan)
        if plan.cookie == "set":
            assert plan.save_to is not None
            headers.append(("Set-Cookie", self.cookie.set(plan.save_to)))
        elif plan.cookie == "clear":
            headers.append(("Set-Cookie", self.cookie.clear()))
        return headers
