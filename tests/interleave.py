"""Many requests in flight at once, their store steps interleaved one by one: a harness.

The protocol core does no I/O: every store operation it needs is a command
it yields (``core/steps.py``). So a request is a generator of commands, and
several requests can be run *side by side*, one command at a time, in any
order a test chooses -- every interleaving a real server could produce
between two store calls, made on purpose instead of hoped for.

:class:`World` is one deployment (an IdP and a remote, ``IdpSide`` and
``RemoteSide``, over one real store), a few browsers with a cookie jar per
site, and the requests in flight. A test starts requests
(:meth:`World.start`), advances any of them by one store command
(:meth:`World.advance`) and, after each command, checks the invariants of
the session's lifecycle against a small reference model kept here:

- **ended stays ended.** When a logout completes, the session its cookie
  named is ended, and so is every session a request *moved* it to (a sign-in
  over it, ``regenerate()``, ``remember()``), whenever that move runs. When
  ``revoke_all(user)`` completes, every session of the user whose creating
  request had completed before the revocation started is ended, and so is
  everything moved from it. When an operator's ``revoke(user, ref)`` of the
  session a browser holds completes and finds it, that session is ended
  likewise. No ended session is ever live in the store again, nor entered
  in a user's index again (:attr:`World.violations`).
- **withdrawn stays withdrawn.** Once an operator's ``withdraw(user, shop)``
  took the shop out of a session (its write acknowledged), neither that
  session nor any id it is moved to holds the shop as joined again -- unless
  a hand-off joined it anew since.
- **no acknowledged write is lost.** Requests write keys no other request
  writes (``w1``, ``w2``, ...). A write the store acknowledged is in the
  session it went to, or in every live session that session was moved to
  after the write; it never lands in an id that was moved before it
  (checked by :meth:`World.check_writes`, once every request is done).
- **nobody reads another user's session.** A request only ever sees its
  browser's own user signed in, or nobody.
- **a retried callback is no replay.** A hand-off whose redemption ran in the
  store but whose answer was lost (the shell answered 503) is repeated by its
  browser; that retry is the same redemption -- it signs in, or finds the
  session ended or moved meanwhile -- and is never refused as ``replayed``.

The lineage -- which session a request moved to which new id -- is read
off the commands themselves: a request's move goes from the session it read
to the id it creates.

    world = World(MemoryStore(clock=clock), clock)
    world.run_now("alice", "sign_in")
    regen = world.start("alice", "regenerate")
    world.advance(regen)                      # it reads the session
    world.run_now("alice", "logout_idp")      # another tab signs out meanwhile
    world.finish(regen)                       # ...and then it moves the session
    assert not world.violations
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sessionshare import StoreUnavailable, SyncKey
from sessionshare.core.idp import IdpSide
from sessionshare.core.record import META_JOINED, META_RETIRED
from sessionshare.core.remote import RemoteSide
from sessionshare.core.reply import Reply
from sessionshare.core.request import Request
from sessionshare.core.session import Session
from sessionshare.core.side import PassThrough, Side
from sessionshare.store.base import SessionRecord, SessionStore

IDP = "http://id.test"
SHOP = "http://shop.test"

#: Browser name -> the user who owns it (two devices of alice, one of bob).
BROWSERS = {"alice": "alice", "alice2": "alice", "bob": "bob"}

#: What a request can do: the app's action at the IdP or the shop, or an operator's.
KINDS = (
    "sign_in", "sign_in_remember", "regenerate", "remember", "write_idp", "write_shop",
    "read_shop", "handoff", "handoff_answer_lost", "logout_idp", "logout_shop", "revoke_all",
    "revoke_one", "withdraw_shop",
)

Flow = Generator[Any, Any, None]


def _live(record: SessionRecord | None) -> bool:
    return record is not None and META_RETIRED not in record.meta


@dataclass
class Browser:
    name: str
    owner: str
    #: site -> cookie name -> value
    jars: dict[str, dict[str, str]] = field(default_factory=lambda: {"idp": {}, "shop": {}})

    def header(self, site: str) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.jars[site].items())

    def take(self, site: str, headers: Iterable[tuple[str, str]]) -> None:
        for name, value in headers:
            if name.lower() != "set-cookie":
                continue
            pair, _, attributes = value.partition(";")
            cookie, _, content = pair.partition("=")
            if "Max-Age=0" in attributes or not content:
                self.jars[site].pop(cookie.strip(), None)
            else:
                self.jars[site][cookie.strip()] = content.strip()


@dataclass
class Flight:
    """One request (or a hand-off's chain of redirects) in flight."""

    number: int
    browser: Browser
    kind: str
    steps: Flow | None = None
    #: The command it waits to have run (None: done).
    pending: Any = None
    started: bool = False
    done: bool = False
    #: The store key of the last live session it read.
    loaded: str | None = None
    #: What it will have ended once it completes (logout, revoke_all).
    ends: set[str] = field(default_factory=set)
    #: The command whose answer is lost once: it runs in the store, then the request
    #: meets StoreUnavailable instead (a stall past the store client's retries).
    lose: str | None = None


class World:
    """One IdP, one remote, three browsers and their requests, over one store."""

    def __init__(
        self, store: SessionStore, clock: Callable[[], float], *,
        idp_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        key = SyncKey.generate()
        common: dict[str, Any] = {
            "key": key, "cookie_secure": False, "clock": clock, "quiet_startup": True,
        }
        self.idp = IdpSide(app_url=IDP, known_remote_hosts=[SHOP], **common,
                           **(idp_options or {}))
        self.shop = RemoteSide(app_url=SHOP, idp_url=IDP + "/login", protect=["/orders"],
                               **common)
        self.browsers = {name: Browser(name, owner) for name, owner in BROWSERS.items()}
        self.flights: list[Flight] = []
        self.violations: list[str] = []
        self.step = 0
        self._numbers = 0
        self._writes = 0
        # The reference model.
        self.parent: dict[str, str | None] = {}  # created store key -> the key moved from
        self.created_at: dict[str, int] = {}  # created store key -> step
        self.created_by: dict[str, Flight] = {}
        self.owner_of: dict[str, str | None] = {}  # created store key -> its user then
        self.ended: set[str] = set()  # roots: ended when their logout/revoke completed
        self.acked: list[tuple[str, str, str, int]] = []  # (key, name, JSON text, step)
        self.withdrawn: dict[str, int] = {}  # store key -> step the shop was taken out
        self.joined_at: dict[str, int] = {}  # store key -> step a hand-off last joined it

    # -- requests ------------------------------------------------------------------
    def start(self, browser: str, kind: str) -> Flight:
        """Send a request: it runs up to its first store command (or to its end)."""
        self._numbers += 1
        who = self.browsers[browser]
        flight = Flight(self._numbers, who, kind)
        flight.steps = self._flow(flight)
        if kind == "revoke_all":
            # Every session of the user that a completed request made is ended once this
            # completes; one a request still in flight makes may come after it.
            flight.ends = {k for k, f in self.created_by.items()
                           if f.done and self.owner_of.get(k) == who.owner}
        self.flights.append(flight)
        self._resume(flight, None)
        return flight

    def advance(self, flight: Flight) -> None:
        """Run the command ``flight`` waits on, and hand it the answer."""
        assert not flight.done
        command = flight.pending
        answer = command.on(self.store)
        self.step += 1
        self._observe(flight, command, answer)
        if flight.lose == type(command).__name__:
            flight.lose = None
            self._resume(flight, None, lost=True)
        else:
            self._resume(flight, answer)
        self.check()

    def finish(self, flight: Flight) -> None:
        while not flight.done:
            self.advance(flight)

    def run_now(self, browser: str, kind: str) -> Flight:
        """Send a request and run it to its end before anything else happens."""
        flight = self.start(browser, kind)
        self.finish(flight)
        return flight

    def drain(self) -> None:
        """Run every request still in flight to its end, oldest first."""
        for flight in list(self.flights):
            self.finish(flight)

    def _resume(self, flight: Flight, answer: Any, *, lost: bool = False) -> None:
        assert flight.steps is not None
        try:
            if lost:
                flight.pending = flight.steps.throw(
                    StoreUnavailable("the answer was lost on the way back"))
            elif flight.started:
                flight.pending = flight.steps.send(answer)
            else:
                flight.started = True
                flight.pending = next(flight.steps)
        except StopIteration:
            flight.pending = None
            flight.done = True
            self.flights.remove(flight)
            self.ended |= flight.ends
            self.check()

    # -- what each kind of request does ----------------------------------------------
    def _flow(self, flight: Flight) -> Flow:
        idp, shop, browser, kind = self.idp, self.shop, flight.browser, flight.kind
        if kind == "revoke_all":
            yield from idp.index.revoke_all(browser.owner)
        elif kind == "revoke_one":
            # The operator ends the session this browser holds at the IdP, by its reference.
            sid = idp.lifecycle.session_id_in(browser.header("idp"))
            if sid is None:
                return
            ref = idp.lifecycle.ids.digest(sid)[:16]
            if (yield from idp.index.revoke(browser.owner, ref)):
                flight.ends.add(idp.lifecycle.session_key(sid))
        elif kind == "withdraw_shop":
            yield from idp.index.withdraw(browser.owner, SHOP)
        elif kind in ("sign_in", "sign_in_remember"):
            def sign_in(session: Session) -> None:
                session[idp.user_key] = browser.owner
                if kind == "sign_in_remember":
                    session.remember(days=1)
            yield from self._visit(flight, "idp", "POST", "/login", app=sign_in)
        elif kind == "regenerate":
            yield from self._visit(flight, "idp", "GET", "/account",
                                   app=lambda s: s.regenerate() if s.get("user") else None)
        elif kind == "remember":
            yield from self._visit(flight, "idp", "GET", "/account",
                                   app=lambda s: s.remember(days=1) if s.get("user") else None)
        elif kind in ("write_idp", "write_shop"):
            self._writes += 1
            name = f"w{self._writes}"

            def write(session: Session) -> None:
                session[name] = "v" + name
            site = "idp" if kind == "write_idp" else "shop"
            yield from self._visit(flight, site, "GET", "/write", app=write)
        elif kind == "read_shop":
            yield from self._visit(flight, "shop", "GET", "/orders")
        elif kind in ("logout_idp", "logout_shop"):
            site = "idp" if kind == "logout_idp" else "shop"
            side = idp if site == "idp" else shop
            sid = side.lifecycle.session_id_in(browser.header(site))
            if sid is not None:
                # What the user signs out of: the session this cookie names, and
                # whatever a request moves it to.
                flight.ends.add(side.lifecycle.session_key(sid))
            yield from self._visit(flight, site, "POST", side.logout_path)
        elif kind in ("handoff", "handoff_answer_lost"):
            reply = yield from self._visit(flight, "shop", "GET", "/orders")
            if reply is None or reply.status != 302:
                return
            login = urlsplit(dict(reply.headers)["Location"])
            reply = yield from self._visit(flight, "idp", "GET", login.path, login.query)
            if reply is None or reply.status != 303:
                return
            back = urlsplit(dict(reply.headers)["Location"])
            if kind == "handoff_answer_lost":
                # The redemption runs, its answer is lost: the shell answers 503, and the
                # browser repeats the same callback URL (same token, same state cookie).
                flight.lose = "TakeTicket"
                try:
                    reply = yield from self._visit(flight, "shop", "GET", back.path, back.query)
                except StoreUnavailable:
                    pass
                else:
                    flight.lose = None
                    return  # refused before its redemption: nothing was lost
            reply = yield from self._visit(flight, "shop", "GET", back.path, back.query)
            if kind == "handoff_answer_lost" and reply is not None and (
                b"<code>replayed</code>" in reply.body
            ):
                self.violations.append(f"request {flight.number}: the retry of a callback "
                                       "whose answer was lost was refused as a replay")
        else:
            raise AssertionError(kind)

    def _visit(
        self, flight: Flight, site: str, method: str, path: str, query: str = "",
        app: Callable[[Session], None] | None = None,
    ) -> Generator[Any, Any, Reply | None]:
        """One request to one site, through the core as a shell would run it; the library's
        own answer (a Reply), or None when the app answered."""
        browser = flight.browser
        side: Side = self.idp if site == "idp" else self.shop
        origin = IDP if site == "idp" else SHOP
        cookies = browser.header(site)
        flight.loaded = None  # what this request reads, not an earlier one of the chain
        request = Request(
            method, path, query, cookies=cookies, accept="text/html", fetch_mode="navigate",
            origin=origin if method == "POST" else None,
            fetch_site="same-origin" if method == "POST" else "none",
            user_agent=f"browser {browser.name}",
        )
        session = Session(_no_lazy_read, side.lifecycle.session_id_in(cookies))
        outcome = side.on_request(request, session)
        if not isinstance(outcome, (Reply, PassThrough)):
            outcome = yield from outcome
        if isinstance(outcome, Reply):
            browser.take(site, outcome.headers)
            return outcome
        self._saw(browser, outcome.user)
        yield from side.lifecycle.load(session)  # the app looks: a read, as a step
        self._saw(browser, side.user_of(session))
        if app is not None:
            app(session)
        result = side.on_response(request, session, outcome, [])
        if not isinstance(result, (Reply, list)):
            result = yield from result
        headers = result.headers if isinstance(result, Reply) else result
        browser.take(site, headers)
        return result if isinstance(result, Reply) else None

    def _saw(self, browser: Browser, user: Any) -> None:
        if user is not None and user != browser.owner:
            self.violations.append(
                f"browser {browser.name} (of {browser.owner}) read {user}'s session"
            )

    # -- the reference model -----------------------------------------------------------
    def _observe(self, flight: Flight, command: Any, answer: Any) -> None:
        name = type(command).__name__
        if name in ("Load", "Mark") and _live(answer):
            flight.loaded = command.key
            if name == "Mark":
                self.joined_at[command.key] = self.step
        elif name == "Save" and answer and flight.kind == "withdraw_shop":
            self.withdrawn[command.key] = self.step
        elif name == "Save" and answer:
            if command.create and not (command.meta and META_RETIRED in command.meta):
                self._created(flight, command.key, flight.loaded)
            self._ack(command.key, command.changed)
        elif name == "Move" and answer:
            self._created(flight, command.new_key, command.key)
            self._ack(command.new_key, command.changed)
        elif name == "IndexPut":
            entry = json.loads(command.entry)
            key = self.idp.index.session_key(entry["k"])
            held = self.store.index_read(command.key)
            if command.ref in held and key in self.ended_keys():
                self.violations.append(f"request {flight.number} ({flight.kind}) entered "
                                       "an ended session in the user's index")

    def _created(self, flight: Flight, key: str, parent: str | None) -> None:
        self.parent[key] = parent
        self.created_at[key] = self.step
        self.created_by[key] = flight
        record = self.store.peek(key)
        user = record.fields.get(self.idp.user_key) if record is not None else None
        self.owner_of[key] = json.loads(user) if user is not None else None

    def _ack(self, key: str, changed: Any) -> None:
        for name, text in changed.items():
            if name.startswith("w"):
                self.acked.append((key, name, text, self.step))

    def children(self, key: str) -> list[str]:
        return [child for child, parent in self.parent.items() if parent == key]

    def ended_keys(self) -> set[str]:
        """The ended roots and every id moved from one of them."""
        found: set[str] = set()
        todo = list(self.ended)
        while todo:
            key = todo.pop()
            if key not in found:
                found.add(key)
                todo.extend(self.children(key))
        return found

    def check(self) -> None:
        """Ended stays ended, withdrawn stays withdrawn: no ended session is live in the
        store, and no session the shop was withdrawn from holds it as joined again
        unless a hand-off joined it since."""
        for key in sorted(self.ended_keys()):
            if _live(self.store.peek(key)):
                self.violations.append(
                    f"step {self.step}: an ended session is live "
                    f"({'moved from an ended one' if key not in self.ended else 'itself'})"
                )
        joined = META_JOINED + SHOP
        for root, at in self.withdrawn.items():
            for key in sorted(self._lineage(root)):
                record = self.store.peek(key)
                if not _live(record) or record is None or record.meta.get(joined, 0) <= 0:
                    continue
                if not self._joined_since(root, key, at):
                    self.violations.append(
                        f"step {self.step}: a session the shop was withdrawn from holds it "
                        f"as joined again ({'moved' if key != root else 'itself'})"
                    )

    def _joined_since(self, root: str, key: str, at: int) -> bool:
        """True when a hand-off joined ``key``, or a session between ``root`` and it,
        after step ``at``."""
        current: str | None = key
        while current is not None:
            if self.joined_at.get(current, -1) > at:
                return True
            if current == root:
                return False
            current = self.parent.get(current)
        return False

    def check_writes(self) -> None:
        """Once every request is done: no acknowledged write is lost."""
        for key, name, _, acked_at in self.acked:
            moved = [c for c in self.children(key) if self.created_at[c] <= acked_at]
            if moved and any(_live(self.store.peek(k)) for k in self._lineage(key)):
                self.violations.append(
                    f"write {name} was acknowledged after its session moved to a new id"
                )
        for key in self.parent:
            record = self.store.peek(key)
            if not _live(record) or any(_live(self.store.peek(c)) for c in self.children(key)):
                continue
            assert record is not None
            for name, text in self._owed(key):
                if record.fields.get(name) != text:
                    self.violations.append(f"write {name} is lost from a live session")

    def _lineage(self, key: str) -> set[str]:
        found: set[str] = set()
        todo = [key]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(self.children(current))
        return found

    def _owed(self, key: str) -> list[tuple[str, str]]:
        """The acknowledged writes a live session must hold: its own, and those made to
        each session it was moved from before the move."""
        owed = [(n, t) for k, n, t, _ in self.acked if k == key]
        child, parent = key, self.parent.get(key)
        while parent is not None:
            owed += [(n, t) for k, n, t, at in self.acked
                     if k == parent and at < self.created_at[child]]
            child, parent = parent, self.parent.get(parent)
        return owed


def _no_lazy_read(sid: str) -> SessionRecord | None:
    raise AssertionError("the harness reads every session as a step")
