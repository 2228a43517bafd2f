"""List a user's shared sessions and end them everywhere: :class:`SessionAdmin`.

The IdP keeps, for each user, an index of the live shared sessions
(:mod:`sessionshare.core.index`). This is its API, for an operator's tool,
an admin page, or a user's own "log out my other devices" button. Ending a
session deletes it from the shared store, so the IdP and every remote app
-- WSGI or ASGI -- see the user signed out on their very next request.
``SessionAdmin`` needs only the store and the apps' sync key (and their
``key_prefix`` and ``user_key``, when not the defaults);
:class:`AsyncSessionAdmin` is the same for an asyncio store. Each operation is
written once, as a protocol step (:mod:`sessionshare.core.steps`), and run on
the admin's store.

    admin = SessionAdmin(RedisStore.from_url(url), os.environ["SESSIONSHARE_SYNC_KEY"])
    for info in admin.sessions("alice"):
        print(info.ref, info.user_agent, info.apps)
    admin.revoke("alice", "3f9ac21b77e04d51")
    admin.withdraw("alice", "https://blog.example")  # the blog stops serving her now
    # in the IdP app, "log out my other devices":
    admin.revoke_all(environ["REMOTE_USER"], except_current=environ["sessionshare.session"])

References are the first 16 hex characters of the keyed digest that names
a session in the store: they can be shown and logged, and no cookie can be
made from one.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, TypeVar

from .core.census import Census
from .core.events import EventHook, Events
from .core.index import REF_CHARS, SessionInfo, UserIndex
from .core.session import Session
from .core.steps import Steps, run, run_async
from .crypto import SyncKey, canonical_origin
from .errors import ConfigurationError
from .store.base import AsyncSessionStore, SessionStore, member_of

__all__ = ["AsyncSessionAdmin", "Reconciled", "SessionAdmin", "SessionInfo", "is_ref"]

S = TypeVar("S", SessionStore, AsyncSessionStore)
T = TypeVar("T")
P = ParamSpec("P")

_REF = re.compile(f"[0-9a-f]{{{REF_CHARS}}}")


def is_ref(text: str) -> bool:
    """True when ``text`` is shaped like a session reference (16 lower-case hex characters)."""
    return _REF.fullmatch(text) is not None


class _Admin(Generic[S]):
    """The admin's operations, each a protocol step (:mod:`sessionshare.core.steps`):
    written once, driven by :class:`SessionAdmin` on a thread store and by
    :class:`AsyncSessionAdmin` on an asyncio one."""

    def __init__(
        self,
        store: S,
        key: SyncKey | str,
        *,
        key_prefix: str = "sessionshare:",
        user_key: str = "user",
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            sync_key = SyncKey.parse(key) if isinstance(key, str) else key
        except ConfigurationError as exc:
            raise ConfigurationError(f"key: {exc}") from None
        self.store: S = store
        self.index = UserIndex(sync_key, key_prefix=key_prefix, user_key=user_key,
                               events=Events(on_event), clock=clock)
        self.census = Census(sync_key, key_prefix=key_prefix, clock=clock)

    def ref_of(self, session: Session) -> str | None:
        """The reference of the stored ``session`` (the current one, in an app)."""
        return self.index.ref_of(session)

    @staticmethod
    def canonical(origin: str) -> str:
        """``origin`` as :meth:`withdraw` names it (``https://Shop.Example:443`` ->
        ``https://shop.example``); ConfigurationError for anything else, naming what to
        pass."""
        try:
            canonical = canonical_origin(origin, setting="origin")
        except ConfigurationError:
            raise ConfigurationError(
                f"origin must be a remote app's origin such as https://shop.example, "
                f"not {origin[:100]!r}"
            ) from None
        return canonical

    def _sessions(self, user: str) -> Steps[list[SessionInfo]]:
        """``user``'s live sessions, oldest first (dead index entries are dropped)."""
        return self.index.sessions(user)

    def _revoke(self, user: str, ref: str) -> Steps[bool]:
        """End session ``ref`` of ``user`` in every app; False when the user has no such one."""
        return self.index.revoke(user, ref)

    def _revoke_all(self, user: str, except_current: str | Session | None = None) -> Steps[int]:
        """End every session of ``user`` in every app, except ``except_current`` (a
        reference, or the current request's session); how many were ended."""
        if isinstance(except_current, Session):
            except_current = self.ref_of(except_current)
        return self.index.revoke_all(user, except_current)

    def _withdraw(self, user: str, origin: str) -> Steps[int]:
        """Take the remote ``origin`` out of every live session of ``user``: that app
        stops serving them at its next request and sends the user through the
        hand-off again, where the IdP's ``authorize`` hook decides anew (call it when
        the user loses the right to use that site). How many sessions had joined it."""
        return self.index.withdraw(user, self.canonical(origin))


def _driven(step: Callable[Concatenate[Any, P], Steps[T]]
         ) -> Callable[Concatenate[SessionAdmin, P], T]:
    """``step`` run to its end on the admin's thread store: a method of :class:`SessionAdmin`."""

    def method(self: SessionAdmin, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run(step(self, *args, **kwargs), self.store)

    _name(method, step, "SessionAdmin")
    return method


def _driven_async(step: Callable[Concatenate[Any, P], Steps[T]]
               ) -> Callable[Concatenate[AsyncSessionAdmin, P], Coroutine[Any, Any, T]]:
    """``step`` run to its end on the admin's asyncio store: a coroutine method of
    :class:`AsyncSessionAdmin`."""

    async def method(self: AsyncSessionAdmin, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_async(step(self, *args, **kwargs), self.store)

    _name(method, step, "AsyncSessionAdmin")
    return method


def _name(method: Any, step: Callable[..., Any], owner: str) -> None:
    """Name and document ``method`` of ``owner`` as the operation ``step`` is (``_revoke``
    -> ``revoke``), with its signature: what ``help()`` and the API docs show."""
    signature = inspect.signature(step)
    answer = signature.return_annotation  # "Steps[X]": the method answers X
    method.__name__ = step.__name__.lstrip("_")
    method.__qualname__ = f"{owner}.{method.__name__}"
    method.__doc__ = step.__doc__
    method.__signature__ = signature.replace(
        return_annotation=answer[len("Steps["):-1] if isinstance(answer, str) else answer)


class SessionAdmin(_Admin[SessionStore]):
    """Lists and ends a user's shared sessions, on a thread store.

    :param store: the store the apps share.
    :param key: their sync key(s) (a :class:`~sessionshare.SyncKey` or its text).
    :param key_prefix: their ``key_prefix``.
    :param user_key: their ``user_key``.
    :param on_event: called with ``session_revoked`` events, as the middlewares' hook.
    :param clock: the time source (tests inject one).

    Users are named as ``REMOTE_USER`` shows them. Store failures raise
    :class:`~sessionshare.StoreUnavailable`.
    """

    sessions = _driven(_Admin._sessions)
    revoke = _driven(_Admin._revoke)
    revoke_all = _driven(_Admin._revoke_all)
    withdraw = _driven(_Admin._withdraw)

    def count_sessions(self, *, sweep_every: float = 60.0) -> int:
        """How many shared sessions are live, all users together: a gauge for operators.

        One round trip, whatever the number of sessions: it reads the size of the
        deployment's *census* (:mod:`sessionshare.core.census`), which the steps that
        start and end sessions keep; every process reads the same figure. When no
        process swept the census in the last ``sweep_every`` seconds, this one does
        first: it checks the sessions whose recorded expiry has passed (one script per
        500), so that those that idled out leave the count.

        The bound: never fewer than the live signed-in sessions; more by at most those
        that expired in the store unread since the sweep before (each is out within
        ``sweep_every`` seconds of its end, when something counts that often). A
        logout or a revocation is out at once. Another deployment on the same store and
        prefix (another sync key) has a census of its own. After a crash between a
        cluster's two steps, or an upgrade from a version without the census, run
        :meth:`reconcile_sessions` once. The store must offer the census methods
        (``MemoryStore`` and ``RedisStore`` do; raises ConfigurationError otherwise).
        """
        self.check_counting()
        return run(self.census.count(sweep_every=sweep_every), self.store)

    def reconcile_sessions(self) -> Reconciled:
        """Count by scanning every user's index, and repair the census from it.

        A ``SCAN`` over this deployment's index keys, one read per user and one
        ``EXISTS`` per 500 sessions (on a cluster, one per session) -- O(all
        sessions), minutes at millions: run it by hand (``python -m sessionshare
        sessions reconcile``) after a crash on a cluster, an upgrade or a key rotation,
        never for a gauge. The census then gains the sessions found that it lacked
        and loses every member the store no longer holds. A session that idled out is
        not counted, though its index entry waits to be pruned.
        """
        self.check_counting()
        before = run(self.census.count(sweep_every=0), self.store)
        stored, found = self._scan()
        added, removed = run(self.census.reconcile(found), self.store)
        after = run(self.census.count(sweep_every=0), self.store)
        return Reconciled(sessions=stored, counted_before=before, counted=after,
                          added=added, removed=removed)

    def scan_sessions(self) -> int:
        """The live sessions, counted the slow way and nothing repaired: the scan of
        :meth:`reconcile_sessions` alone (O(all sessions); to compare with
        :meth:`count_sessions` before a repair)."""
        self.check_counting()
        return self._scan()[0]

    def _scan(self) -> tuple[int, set[str]]:
        """The live sessions the indexes name and the store holds (how many), and the
        digests of the sessions the indexes name (not past their absolute timeout)."""
        store: Any = self.store  # checked by check_counting: it has both
        index_keys, count_stored = store.index_keys, store.count_stored
        # Sets: SCAN may return a key twice, and during a key rotation one session is
        # named in its user's index under the old key and under the new one.
        seen: set[str] = set()
        stored = 0
        batch: list[str] = []
        keys = {key for prefix in self.index.index_prefixes for key in index_keys(prefix)}
        for key in keys:
            for session_key in self.index.live_session_keys(self.store.index_read(key)):
                if session_key not in seen:
                    seen.add(session_key)
                    batch.append(session_key)
            if len(batch) >= 500:
                stored += int(count_stored(batch))
                batch = []
        stored += int(count_stored(batch)) if batch else 0
        return stored, {member_of(key) for key in seen}

    def check_counting(self) -> None:
        """Raise ConfigurationError now if :meth:`count_sessions` cannot work on this store
        (it lacks what counting and reconciling need)."""
        missing = [name for name in _COUNTING if getattr(self.store, name, None) is None]
        if missing:
            raise ConfigurationError(
                f"{type(self.store).__name__} cannot count every user's sessions: it has no "
                f"{'/'.join(missing)} (MemoryStore and RedisStore have them)"
            )


#: The store methods (beyond the contract) that counting and reconciling use.
_COUNTING = ("census_read", "census_due", "census_check", "census_add", "census_members",
             "index_keys", "count_stored")


class Reconciled(NamedTuple):
    """What :meth:`SessionAdmin.reconcile_sessions` found and repaired."""

    #: Live sessions, by the scan of every index (the truth, as of the scan).
    sessions: int
    #: What the census counted before the repair, and after it.
    counted_before: int
    counted: int
    #: Members the census lacked, added; members whose session was gone, taken out.
    added: int
    removed: int


class AsyncSessionAdmin(_Admin[AsyncSessionStore]):
    """:class:`SessionAdmin` for an asyncio store (``AsyncRedisStore``): the same
    operations, each a coroutine."""

    sessions = _driven_async(_Admin._sessions)
    revoke = _driven_async(_Admin._revoke)
    revoke_all = _driven_async(_Admin._revoke_all)
    withdraw = _driven_async(_Admin._withdraw)
