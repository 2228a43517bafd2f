"""The census: how many signed-in sessions are live, in one round trip, for the deployment.

The census is a sorted set the store keeps as sessions start and end, so a
count reads its size (``ZCARD``): one round trip whatever the number of
sessions, and the same figure for every process (not a scan of every user's
index).

Layout (one key per deployment, named by its newest sync key's public
fingerprint, as the index keys are; the lock shares its hash tag)::

    census = <prefix> "n:{" <key id> "}"          member: a session's store digest
    lock   = <prefix> "n:{" <key id> "}:sweep"    score: when to check that session next

- **Entered** by the step that enters a session in its user's index
  (:class:`~sessionshare.core.steps.IndexPut`), in the same script, only while
  the session is live, scored with when its key would expire now. The entries
  that step drops leave it.
- **Left** by every end of a session (:class:`~sessionshare.core.steps.Delete`),
  in the same script.
- **Swept** for the ends nothing runs (idle or absolute expiry in the store).
  A read slides a session's expiry without touching the census -- the
  authenticated read stays one ``GETEX`` -- so a score is a lower bound of
  its end: the sweep looks only at members whose score has passed and asks
  the store how long each key has left (``PTTL``): gone, it leaves; live, it
  is due again when that runs out. One process sweeps at a time (a lock held
  ``sweep_every`` seconds).

**The bound.** With a count every ``sweep_every`` seconds, the figure is
never below the live signed-in sessions, and above them by at most the
sessions that ended silently since the sweep before. Exceptions: a write in
a session's last idle period before its absolute timeout can end it before
its score (counted up to ``idle_timeout`` longer); a sweep checks at most
:data:`SWEEP_BATCHES` x :data:`SWEEP_BATCH` sessions; a deployment that never
counts keeps idled-out members until a count sweeps them. On a cluster the
census has a slot of its own, so it is kept by a command right after each
script; a process that dies between the two leaves it off by one session until
:meth:`Census.reconcile` (``python -m sessionshare sessions reconcile``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from ..crypto import SyncKey
from .record import session_store_key
from .steps import CensusAdd, CensusCheck, CensusDue, CensusMembers, CensusRead, Steps

__all__ = ["SWEEP_BATCH", "SWEEP_BATCHES", "Census", "census_key"]

#: Sessions one sweep step checks (one script on a single Redis).
SWEEP_BATCH = 500
#: Sweep steps in one count at most: 100,000 sessions; the rest wait for the next count.
SWEEP_BATCHES = 200


def census_key(key: SyncKey, key_prefix: str) -> str:
    """The census of the deployment of ``key`` (its newest key) under ``key_prefix``."""
    return f"{key_prefix}n:{{{key.fingerprint_bytes()[0].hex()}}}"


class Census:
    """Counts, sweeps and repairs one deployment's census.

    :param key: the deployment's sync key(s): the newest names the census.
    :param key_prefix: the apps' ``key_prefix``.
    :param clock: the time source (the same as the apps', on every host).
    """

    def __init__(
        self, key: SyncKey, *, key_prefix: str = "sessionshare:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = census_key(key, key_prefix)
        self.lock = self.key + ":sweep"
        self.key_prefix = key_prefix
        self.clock = clock

    def session_key(self, member: str) -> str:
        """The store key of the session a member names."""
        return session_store_key(self.key_prefix, member)

    def count(self, *, sweep_every: float) -> Steps[int]:
        """The live signed-in sessions (within the bound above): one round trip, and
        a sweep when no other process swept in the last ``sweep_every`` seconds."""
        members, won = yield CensusRead(self.key, self.lock, sweep_every)
        if not won:
            return int(members)
        return int(members) - (yield from self.sweep())

    def sweep(self) -> Steps[int]:
        """Check the members whose check time has passed (at most :data:`SWEEP_BATCHES`
        batches); how many left (their session had expired)."""
        now = int(self.clock())
        left = 0
        for _ in range(SWEEP_BATCHES):
            due: list[str] = yield CensusDue(self.key, now, SWEEP_BATCH)
            if due:
                left += yield self._check(due, now)
            if len(due) < SWEEP_BATCH:
                break
        return left

    def _check(self, members: Collection[str], now: int) -> CensusCheck:
        return CensusCheck(self.key, tuple((m, self.session_key(m)) for m in members), now)

    def reconcile(self, named: Collection[str]) -> Steps[tuple[int, int]]:
        """Repair the census from ``named`` -- the digests of the sessions a scan of the
        indexes found named there: each it lacks is added if the store holds it, and
        every member is checked, whatever its check time (one the store no longer holds
        leaves; one it holds stays, even if named nowhere: a session signed in during
        the scan). Answers (members added, members taken out). O(all sessions)."""
        now = int(self.clock())
        members = sorted(set((yield CensusMembers(self.key))))
        missing = sorted(set(named).difference(members))
        for start in range(0, len(missing), SWEEP_BATCH * 2):
            yield CensusAdd(self.key, tuple(missing[start:start + SWEEP_BATCH * 2]), now)
        found = [0, 0]
        for which, group in enumerate((missing, members)):
            for start in range(0, len(group), SWEEP_BATCH):
                found[which] += yield self._check(group[start:start + SWEEP_BATCH], now)
        return len(missing) - found[0], found[1]
