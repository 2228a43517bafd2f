"""The per-user index: each user's live shared sessions, so they can be listed and ended.

The IdP records a session in its user's index when the user signs in (and
when the session moves to a new id); :class:`~sessionshare.admin.SessionAdmin` and ``python -m
sessionshare sessions`` read it, and end one session or all of them. Ending
a session deletes it from the store, so every app -- IdP and remotes, WSGI
or ASGI -- sees it gone on its very next request.

Layout (every command touches one key, so it works unchanged on a cluster)::

    index key = <prefix> "u:" <key id> ":{" hex(BLAKE2b-128(key=user-index subkey, user)) "}"
    field     = ref: the first 16 hex characters of the session's store digest
    value     = {"k": store digest, "c": created, "l": last seen, "e": expires,
                 "u": user agent (at most 200 characters)}

- **No cookie in a dump.** An entry names its session by the keyed digest
  its store key is made of (:mod:`sessionshare.core.ids`), never by its id,
  which a cookie needs and a digest cannot be turned back into. The user's
  name is a keyed digest too.
- **Free on reads.** "Last seen" is the latest sign-in or hand-off (the time
  each origin joined is in the session already): the authenticated read and
  the hand-off write nothing here.
- **Pruned lazily.** Each write drops entries past their absolute expiry; a
  listing, and a sign-in that finds more than :data:`PRUNE_AT` entries (or
  ``max_sessions_per_user``), checks the others against the store.
- **Per deployment.** An index key names the sync key it is written under
  (its public key id), so another deployment on the same store and prefix --
  staging next to production -- neither lists nor counts this one's sessions.
  Indexes are written under the newest key and read (and capped) under every
  configured one, so a rotation loses no session.
- **Never an ended session.** An entry is set in the same store step that
  checks its session is live (``IndexPut(live=...)``): a request that wrote
  a session before a logout or a revocation cannot enter it again after.
- **One order.** The index is walked in the order of its references, whatever
  order the store hands the entries in, so every store is asked the same steps.

    index = UserIndex(key, key_prefix="sessionshare:")
    infos = run(index.sessions("alice"), store)
    run(index.revoke_all("alice", except_ref=infos[0].ref), store)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from ..crypto import SyncKey
from .census import census_key
from .events import Events
from .ids import SessionIds
from .record import META_JOINED, META_RETIRED, session_store_key
from .session import Session, state_of
from .side import Side, is_signed_in_user
from .steps import Delete, IndexDrop, IndexPut, IndexRead, Peek, Save, Steps

__all__ = ["PRUNE_AT", "REF_CHARS", "SessionInfo", "UserIndex", "record_session"]

#: Passes of :meth:`UserIndex.withdraw` over the index when a session moved under it.
_WITHDRAW_PASSES = 3

#: Hex characters of a session reference (64 bits: unique among one user's sessions).
REF_CHARS = 16
#: Entries an index may hold before a sign-in checks them against the store.
PRUNE_AT = 16
USER_AGENT_CHARS = 200
_USER_PURPOSE = "user index"


@dataclass(frozen=True)
class SessionInfo:
    """One live session of a user, as the index and the session itself say."""

    #: The reference that names it to :meth:`UserIndex.revoke` (16 hex characters).
    ref: str
    #: When it was created, and when it was last signed in or handed off (epoch seconds).
    created: int
    last_seen: int
    #: When it ends at the latest (its absolute timeout).
    expires: int
    #: The browser's ``User-Agent`` at its sign-in, truncated.
    user_agent: str
    #: The remote origins that joined it.
    apps: tuple[str, ...]


def _parse(text: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("k"), str):
        return None
    return entry


def _number(entry: dict[str, Any], name: str) -> int:
    value = entry.get(name)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class UserIndex:
    """Reads and writes the per-user index of one deployment (its sync key and prefix).

    :param user_key: the session key naming the user (the middlewares' ``user_key``):
        an entry whose session no longer names that user is dropped.
    """

    def __init__(
        self, key: SyncKey, *, key_prefix: str = "sessionshare:", user_key: str = "user",
        events: Events | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self._user_subkeys = key.derive(_USER_PURPOSE)
        self._key_ids = [fingerprint.hex() for fingerprint in key.fingerprint_bytes()]
        # Only the store digest is used: audience and limits play no part in it.
        self._ids = SessionIds(key, audience="", idle_timeout=1, absolute_timeout=1)
        self.key_prefix = key_prefix
        # The deployment's census (core/census.py): kept by the same steps as the index.
        self.census = census_key(key, key_prefix)
        self.user_key = user_key
        self.events = events if events is not None else Events()
        self.clock = clock

    # -- names -----------------------------------------------------------------
    def index_keys(self, user: str) -> list[str]:
        """The index keys of ``user`` (as ``REMOTE_USER`` spells it), newest key first."""
        data = user.encode("utf-8", "surrogatepass")
        return [
            f"{self.key_prefix}u:{key_id}:{{{blake2b(data, key=sub, digest_size=16).hexdigest()}}}"
            for key_id, sub in zip(self._key_ids, self._user_subkeys, strict=True)
        ]

    def session_key(self, digest: str) -> str:
        """The store key of the session whose digest is ``digest``."""
        return session_store_key(self.key_prefix, digest)

    def ref_of(self, session: Session) -> str | None:
        """The reference of a stored session (for ``except_ref``); None while it is new."""
        sid = state_of(session).stored_id
        if sid is None or not self._ids.is_known(sid):
            return None
        return self._ids.digest(sid)[:REF_CHARS]

    def _belongs(self, record: Any, user: str) -> bool:
        """True when a peeked record is a live session signed in as ``user``."""
        if record is None or META_RETIRED in record.meta:
            return False
        text = record.fields.get(self.user_key)
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            return False
        return is_signed_in_user(value) and Side.remote_user(value) == user

    # -- the IdP's writes --------------------------------------------------------
    def record(
        self, user: str, digest: str, *, created: int, expires: int, user_agent: str,
        drop_digest: str | None = None, max_sessions: int | None = None,
    ) -> Steps[None]:
        """Enter (or refresh) a session in ``user``'s index; end the oldest past
        ``max_sessions``. One round trip, more only when the index holds many entries."""
        now = int(self.clock())
        ref = digest[:REF_CHARS]
        agent = "".join(ch for ch in user_agent if " " <= ch <= "~")[:USER_AGENT_CHARS]
        entry = json.dumps({"k": digest, "c": created, "l": now, "e": expires, "u": agent},
                           separators=(",", ":"))
        drop = () if drop_digest is None else (drop_digest[:REF_CHARS],)
        key, *older = self.index_keys(user)
        # Only while the session is live, in the same step: a logout or a revocation that
        # ended it since this request wrote it must not see it entered again.
        left = yield IndexPut(key, ref, entry, max(1, expires - now), now, drop,
                              live=self.session_key(digest), census=self.census)
        if ref not in left:
            return  # ended meanwhile: nothing to count it against
        # During a key rotation the user's other sessions may sit in the older keys'
        # indexes: the cap counts them all (one read per older key, only with a cap).
        found = {(key, other): text for other, text in sorted(left.items())}
        if max_sessions is not None:
            for old_key in older:
                for other, text in sorted((yield IndexRead(old_key)).items()):
                    found[(old_key, other)] = text
        if len(found) <= (max_sessions or PRUNE_AT):
            return
        dead: list[tuple[str, str]] = []
        alive: list[tuple[int, int, str, str, str]] = []
        for (index_key, other), text in found.items():
            parsed = _parse(text)
            if index_key == key and other == ref:
                continue
            if parsed is None or not self._belongs((yield Peek(self.session_key(parsed["k"]))),
                                                   user):
                dead.append((index_key, other))
            else:
                alive.append((_number(parsed, "c"), _number(parsed, "l"), index_key, other,
                              parsed["k"]))
        ended: list[tuple[str, str]] = []
        if max_sessions is not None and len(alive) + 1 > max_sessions:
            alive.sort()
            for _, _, index_key, other, other_digest in alive[: len(alive) + 1 - max_sessions]:
                yield Delete(self.session_key(other_digest), self.census)
                ended.append((index_key, other))
        gone = dead + ended
        for index_key in dict.fromkeys(k for k, _ in gone):
            yield IndexDrop(index_key, tuple(r for k, r in gone if k == index_key))
        if ended:
            self._revoked("max_sessions", len(ended), user)

    # -- listing and ending --------------------------------------------------------
    def sessions(self, user: str) -> Steps[list[SessionInfo]]:
        """``user``'s live sessions, oldest first; dead entries are dropped on the way."""
        now = int(self.clock())
        found: list[SessionInfo] = []
        for key in self.index_keys(user):
            entries = yield IndexRead(key)
            dead: list[str] = []
            for ref, text in sorted(entries.items()):
                entry = _parse(text)
                record = None
                if entry is not None and _number(entry, "e") > now:
                    record = yield Peek(self.session_key(entry["k"]))
                if entry is None or not self._belongs(record, user):
                    dead.append(ref)
                    continue
                assert record is not None
                start = len(META_JOINED)
                joined = {name[start:]: int(when) for name, when in record.meta.items()
                          if name.startswith(META_JOINED) and when > 0}
                found.append(SessionInfo(
                    ref=ref, created=_number(entry, "c"),
                    last_seen=max([_number(entry, "l"), *joined.values()]),
                    expires=_number(entry, "e"),
                    user_agent=str(entry.get("u", ""))[:USER_AGENT_CHARS],
                    apps=tuple(sorted(joined)),
                ))
            if dead:
                yield IndexDrop(key, tuple(dead))
        found.sort(key=lambda info: (info.created, info.ref))
        return found

    def revoke(self, user: str, ref: str) -> Steps[bool]:
        """End the session ``ref`` of ``user`` everywhere; False when there is none."""
        for key in self.index_keys(user):
            entries = yield IndexRead(key)
            entry = _parse(entries[ref]) if ref in entries else None
            if ref in entries:
                if entry is not None:
                    yield Delete(self.session_key(entry["k"]), self.census)
                yield IndexDrop(key, (ref,))
                if entry is not None:
                    self._revoked("revoked", 1, user)
                    return True
        return False

    def revoke_all(self, user: str, except_ref: str | None = None) -> Steps[int]:
        """End every session of ``user`` but ``except_ref``; how many were in the index."""
        count = 0
        for key in self.index_keys(user):
            entries = yield IndexRead(key)
            gone: list[str] = []
            for ref, text in sorted(entries.items()):
                if ref == except_ref:
                    continue
                entry = _parse(text)
                if entry is not None:
                    yield Delete(self.session_key(entry["k"]), self.census)
                    count += 1
                gone.append(ref)
            if gone:
                yield IndexDrop(key, tuple(gone))
        if count:
            self._revoked("revoked_all", count, user)
        return count

    def withdraw(self, user: str, origin: str) -> Steps[int]:
        """Take ``origin`` (canonical) out of every live session of ``user``; how many
        sessions it had joined.

        That remote stops serving those sessions at its very next request (it checks
        the joined origins on each one) and sends the user through the hand-off
        again, where the IdP's ``authorize`` hook decides anew. The write keeps each
        session's expiry as it is. A session moving to a new id at that moment
        (a sign-in, ``regenerate()``) is looked for again under its new entry.
        """
        field = META_JOINED + origin
        count = 0
        for _ in range(_WITHDRAW_PASSES):
            moved = False
            for key in self.index_keys(user):
                for _, text in sorted((yield IndexRead(key)).items()):
                    entry = _parse(text)
                    if entry is None:
                        continue
                    session_key = self.session_key(entry["k"])
                    record = yield Peek(session_key)
                    if not self._belongs(record, user):
                        continue
                    assert record is not None
                    if record.meta.get(field, 0) <= 0:
                        continue
                    written = yield Save(session_key, changed={}, deleted=(),
                                         meta={field: 0}, ttl=0)
                    if written:
                        count += 1
                    else:
                        moved = True  # ended, or moved: its new entry is read next pass
            if not moved:
                break
        if count:
            self.events.emit(
                logging.INFO, "session_withdrawn",
                {"origin": origin, "count": count, "user": user[:200]},
                "session_withdrawn origin=%s count=%d", origin, count,
            )
        return count

    # -- every user at once (SessionAdmin.count_sessions) -------------------------
    @property
    def index_prefixes(self) -> list[str]:
        """What the index keys of this deployment start with, one per configured key
        (another deployment's key ids differ, so a scan of these never meets its keys)."""
        return [f"{self.key_prefix}u:{key_id}:{{" for key_id in self._key_ids]

    def live_session_keys(self, entries: dict[str, str]) -> list[str]:
        """The store keys of the sessions an index's ``entries`` name, those not past
        their absolute timeout (whether each is still stored is the store's to say)."""
        now = int(self.clock())
        keys = []
        for text in entries.values():
            entry = _parse(text)
            if entry is not None and _number(entry, "e") > now:
                keys.append(self.session_key(entry["k"]))
        return keys

    def _revoked(self, reason: str, count: int, user: str) -> None:
        self.events.emit(
            logging.INFO, "session_revoked",
            {"reason": reason, "count": count, "user": user[:200]},
            "session_revoked reason=%s count=%d", reason, count,
        )


def record_session(
    index: UserIndex, session: Session, user: str, *, ids: SessionIds, user_agent: str,
    moved_from: str | None = None, max_sessions: int | None = None,
) -> Steps[None]:
    """Enter the stored, signed-in ``session`` in ``user``'s index (the IdP's step).

    ``moved_from``: the id the session had before this request, if it moved
    (a sign-in, ``regenerate()``); its entry is dropped in the same command.
    ``ids`` is the IdP's, for the session's digest and absolute limit.
    """
    sid = state_of(session).stored_id
    if sid is None:
        return
    now = int(index.clock())
    created = int(session.created or now)
    started = max(created, int(session.authenticated_at or 0))
    old = moved_from if moved_from is not None and moved_from != sid else None
    yield from index.record(
        user, ids.digest(sid), created=created, expires=started + ids.limits(sid)[1],
        user_agent=user_agent,
        drop_digest=ids.digest(old) if old is not None and ids.is_known(old) else None,
        max_sessions=max_sessions,
    )
