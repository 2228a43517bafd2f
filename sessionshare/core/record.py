"""The stored session's metadata names, and what persisting one does: :class:`WritePlan`.

A session is stored as a mapping of top-level key -> JSON text (the values'
encoding is :func:`~sessionshare.core.sessionstate.encode`) plus a few integer
metadata fields kept apart from app keys (:data:`META_CREATED`,
:data:`META_AUTHENTICATED`, one :data:`META_JOINED` field per remote origin).
Apps of every version sharing one store read these very names, so none of
them is ever renamed.

A :class:`WritePlan` is the decision of one persist -- the id to drop, the
move or the save, the changed and deleted keys, the metadata fields this
request set, the cookie to set or clear -- made by
:meth:`~sessionshare.core.sessionstate.SessionState.write_plan` and run by
:meth:`~sessionshare.core.lifecycle.Lifecycle.write`. Neither its ``repr()``
nor any error shows an id or a value: plans end up in logs.

    plan = state.write_plan(now, new_id=ids.new)
    if not plan.unchanged:
        headers = run(lifecycle.write(session, plan), store)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..store.base import RETIRED, SessionRecord

__all__ = [
    "META_AUTHENTICATED", "META_CREATED", "META_ENDS", "META_JOINED", "META_RETIRED", "UNCHANGED",
    "NewId", "SessionLoader", "WritePlan", "detached_id", "session_store_key",
]

#: Metadata field names, as stored. They are part of the wire format: apps of
#: an older version sharing the store read these very letters, so never rename them.
META_CREATED = "c"
META_AUTHENTICATED = "a"
#: Prefix of the metadata field recording that a remote origin joined the session
#: through a hand-off the IdP authorized: ``"o:" + origin`` -> when (0: withdrawn).
META_JOINED = "o:"
#: Prefix of the metadata field holding an app's request that the session end by a time
#: (``Session.expire_at``): ``"e:" + origin`` -> when, in seconds since the epoch (0: no
#: request). Every app ends the session at the earliest of them, as at its own limits.
META_ENDS = "e:"
#: Metadata field of a *retired* id: one that a sign-in (or ``regenerate()``) moved to a new
#: id a moment ago. Its record stays a short while as a marker holding no data, so that a
#: request of the same browser that read the old id and is still running does not clear or
#: replace the cookie the moving request sets, and a logout sent with it still ends the
#: session where it went (:meth:`~sessionshare.store.base.SessionStore.move`).
META_RETIRED = RETIRED

#: Reads the stored session with this id: its record, or None when the store
#: holds no live session under it (lifetimes enforced: see ``Lifecycle.read``).
SessionLoader = Callable[[str], "SessionRecord | None"]


def session_store_key(key_prefix: str, digest: str) -> str:
    """The store key of the session whose keyed digest is ``digest`` (core/ids.py): the
    braces make the digest a cluster hash tag, so the keys kept with a session share its
    slot. Part of the wire format, like the metadata names."""
    return f"{key_prefix}s:{{{digest}}}"


def detached_id(limits: tuple[int, int] | None = None) -> str:
    """256 random bits, URL-safe (43 characters): the :data:`NewId` of a session no app
    persists (in tests). It names no key and carries no ``limits``; an app's ids come
    from :meth:`~sessionshare.core.ids.SessionIds.new`, which holds them."""
    return secrets.token_urlsafe(32)


#: Makes the id of a new session, given a remembered sign-in's (idle, absolute) limits.
NewId = Callable[[tuple[int, int] | None], str]


@dataclass(frozen=True, repr=False, init=False)
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
    #: Metadata fields to write -- every one for a new entry, else only those this
    #: request set -- or None to leave them alone.
    meta: Mapping[str, int] | None = None
    #: Where the absolute lifetime counts from (seconds since the epoch).
    lifetime_start: int = 0
    #: What the response does to the session cookie.
    cookie: Literal["set", "clear", "keep"] = "keep"
    #: What a late plan (``write_plan(late=True)``) leaves out, or None:
    #: ``"regenerate"`` (the session keeps its id) or ``"new_session"`` (no
    #: session is created); ``"rotated"``: another request of the browser moved the
    #: session meanwhile, and this one's changes are dropped. The plan still does
    #: everything else it lists.
    refused: Literal["regenerate", "new_session", "rotated"] | None = None
    #: True when the plan touches neither the store nor the cookie (worked out once:
    #: every persist asks).
    unchanged: bool = field(init=False, compare=False)

    def __init__(
        self, *, drop: str | None = None, drop_first: bool = False,
        move_from: str | None = None, save_to: str | None = None, create: bool = False,
        changed: Mapping[str, str] | None = None, deleted: tuple[str, ...] = (),
        meta: Mapping[str, int] | None = None, lifetime_start: int = 0,
        cookie: Literal["set", "clear", "keep"] = "keep",
        refused: Literal["regenerate", "new_session", "rotated"] | None = None,
    ) -> None:
        # Filled in one step: the frozen dataclass's own __init__ sets each field through
        # object.__setattr__, about 3 us a plan, and every write makes one.
        vars(self).update(
            drop=drop, drop_first=drop_first, move_from=move_from, save_to=save_to,
            create=create, changed={} if changed is None else changed, deleted=deleted,
            meta=meta, lifetime_start=lifetime_start, cookie=cookie, refused=refused,
            unchanged=drop is None and save_to is None and cookie == "keep",
        )

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


#: The plan of most requests, which write nothing: shared, so they build none.
UNCHANGED = WritePlan()
