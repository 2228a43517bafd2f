"""A million sessions in minutes: copies of the records the library wrote for a real one.

Signing a million users in through the apps would take an hour here (a
sign-in with its hand-off is about 2 ms of this machine's CPU). The
benchmark signs in a few users for real (:class:`~.deployment.Browser`) and
then writes the *same records the library wrote* for one of them, under
other names, with pipelined ``SET``/``HSET``/``PEXPIRE`` commands:

- the session key and its record, byte for byte, with the user's name
  replaced and a fresh random digest in the key (a digest is a keyed hash
  of a session id: to the server, indistinguishable from random; no cookie
  exists for a copy, so copies are read only by the admin API, and the
  timed reads go to the real sessions);
- the user's index entry, byte for byte, naming the copy's digest, in an
  index key of the same shape with a fresh random user digest (or in a real
  user's own index key, for the user with a thousand sessions);
- the expiries the library gave the originals;
- each copy's member in the deployment's census (its digest, due for a check
  when its key expires), as the index write enters a real sign-in's.

The template is found through the apps, not by knowing the layout: the
session key is the one the shop's cookie names, the index key the one the
admin API names for the user, and the entry is the field of that index
that names the session's digest (:meth:`Template.of` checks each).
Whether the copies are sessions the library recognises is checked by the
benchmark through the public API: ``SessionAdmin.sessions`` lists every
copy of the heavy user as a live session of that user, and
``count_sessions`` (the census) and ``reconcile_sessions`` (the scan) count
every copy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from .deployment import Browser

#: Commands per pipeline round trip while loading.
BATCH = 2000


def hash_tag(key: str) -> str:
    """The text between a key's first ``{`` and the next ``}`` (its cluster hash tag)."""
    start = key.index("{") + 1
    return key[start:key.index("}", start)]


@dataclass(frozen=True)
class Template:
    """The records the library wrote for one signed-in session, to copy under new names."""

    user: str
    session_key: str
    record: str
    session_ttl_ms: int
    index_key: str
    ref: str
    entry: str
    index_ttl_ms: int
    census_key: str

    @classmethod
    def of(cls, client: redis.Redis, browser: Browser) -> Template:
        """The session ``browser`` holds at the shop, and its entry in its user's index."""
        session_key = browser.session_key()
        index_key = browser.deployment.index_key(browser.user)
        digest = hash_tag(session_key)
        record: Any = client.get(session_key)
        raw: Any = client.hgetall(index_key)
        entries = {k.decode(): v.decode() for k, v in raw.items()}
        naming = [(ref, entry) for ref, entry in entries.items() if digest in entry]
        if record is None or len(naming) != 1:
            raise RuntimeError(f"{browser.user}: no record at {session_key} or no single index "
                               f"entry naming it ({len(naming)} of {len(entries)})")
        text = record.decode()
        if text.count(browser.user) != 1 or not digest.startswith(naming[0][0]):
            raise RuntimeError(f"{browser.user}: the record does not name the user once, or "
                               "the index field is not the digest's start")
        return cls(
            user=browser.user, session_key=session_key, record=text,
            session_ttl_ms=int(client.pttl(session_key)), index_key=index_key,
            ref=naming[0][0], entry=naming[0][1], index_ttl_ms=int(client.pttl(index_key)),
            census_key=browser.deployment.admin.census.key,
        )

    @property
    def digest(self) -> str:
        return hash_tag(self.session_key)

    def copy(self, user: str) -> tuple[str, str, str, str]:
        """A new session of ``user``: its key, its record, its index field and entry."""
        digest = os.urandom(len(self.digest) // 2).hex()
        return (self.session_key.replace(self.digest, digest),
                self.record.replace(self.user, user),
                digest[:len(self.ref)], self.entry.replace(self.digest, digest))

    def check_time(self) -> float:
        """A copy's score in the census: when its key expires (the clock is the apps')."""
        return time.time() + self.session_ttl_ms / 1000

    def index_key_for(self) -> str:
        """A new user's index key: the template's, with a fresh random user digest."""
        user_digest = hash_tag(self.index_key)
        return self.index_key.replace(user_digest, os.urandom(len(user_digest) // 2).hex())


def _user_groups(template: Template, users: int, per_user: int, sessions: int,
                 prefix: str) -> Iterator[tuple[str, str, int]]:
    """(user, index key, sessions) for ``sessions`` spread over users ``per_user`` each."""
    width = len(template.user) - len(prefix)
    left = sessions
    for number in range(users):
        count = min(per_user, left)
        if count <= 0:
            return
        yield f"{prefix}{number:0{width}d}", template.index_key_for(), count
        left -= count


def load_users(client: redis.Redis, template: Template, *, sessions: int, per_user: int,
               prefix: str = "user-b") -> int:
    """Write ``sessions`` copies of ``template``, ``per_user`` to a user; how many written."""
    users = -(-sessions // per_user)
    if len(prefix) >= len(template.user):
        raise ValueError("the copies' names must fit the template's name length")
    written = 0
    pipe = client.pipeline(transaction=False)
    queued = 0
    for user, index_key, count in _user_groups(template, users, per_user, sessions, prefix):
        fields: dict[str, str] = {}
        members: dict[str, float] = {}
        for _ in range(count):
            key, record, ref, entry = template.copy(user)
            pipe.set(key, record, px=template.session_ttl_ms)
            fields[ref] = entry
            members[hash_tag(key)] = template.check_time()
        pipe.hset(index_key, mapping=fields)  # type: ignore[arg-type]
        pipe.pexpire(index_key, template.index_ttl_ms)
        pipe.zadd(template.census_key, members)  # type: ignore[arg-type]
        written += count
        queued += count + 3
        if queued >= BATCH:
            pipe.execute()
            queued = 0
    if queued:
        pipe.execute()
    pipe.reset()
    return written


def add_sessions(client: redis.Redis, template: Template, count: int) -> list[str]:
    """``count`` more sessions of the template's own user, entered in its real index key;
    their session keys."""
    keys: list[str] = []
    pipe = client.pipeline(transaction=False)
    fields: dict[str, str] = {}
    for _ in range(count):
        key, record, ref, entry = template.copy(template.user)
        pipe.set(key, record, px=template.session_ttl_ms)
        pipe.zadd(template.census_key, {hash_tag(key): template.check_time()})
        fields[ref] = entry
        keys.append(key)
        if len(fields) >= BATCH // 2:
            pipe.hset(template.index_key, mapping=fields)  # type: ignore[arg-type]
            pipe.execute()
            fields = {}
    if fields:
        pipe.hset(template.index_key, mapping=fields)  # type: ignore[arg-type]
    pipe.pexpire(template.index_key, template.index_ttl_ms)
    pipe.execute()
    pipe.reset()
    return keys
