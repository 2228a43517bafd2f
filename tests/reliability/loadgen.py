"""A bounded load generator for the served deployment: keep-alive HTTP from loopback.

Virtual users sign in through the real hand-off (remote -> IdP login form ->
token -> remote callback), then threads drive them: each thread owns a
disjoint share of the users -- so one user's requests are sequential, as
from one browser tab, and "the last write it saw acknowledged" is
well defined -- and keeps one HTTP/1.1 connection per server.

Every request is classified the moment it returns:

- ``ok``: the page for *this* user (or the expected redirect of a hand-off);
- ``503``: Service Unavailable with ``Retry-After`` (the store is down);
- anything else is an error named by what went wrong: ``http_500``,
  ``unauthenticated_200`` (a protected page served to nobody),
  ``wrong_user_200``, ``signed_out`` (sent back to the login), ``transport_*``...

A run is bounded by its duration (and optionally a stop event); it sends
traffic only to 127.0.0.1.

    users = sign_in_many(site, 200)
    outcomes = run(site, users, threads=32, seconds=10, mix=SOAK_MIX)
    summary(outcomes)
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flow import PASSWORDS

from .served import ServedDeployment
from .site_app import WORKER_HEADER

__all__ = [
    "OK", "OUTAGE_MIX", "SOAK_MIX", "UNAVAILABLE", "Http", "Outcome", "User", "percentile",
    "run", "sign_in", "sign_in_many", "summary", "warm_each_worker",
]

OK = "ok"
UNAVAILABLE = "503"
COOKIE = "sessionshare"
HTML = {"Accept": "text/html"}

#: Ten steps each thread cycles through: 10 % writes, 10 % IdP pages, the rest shop reads.
SOAK_MIX = ("write", "read", "read", "read", "idp", "read", "read", "read", "read", "read")
#: Adds a full hand-off (tickets are store writes too) to the outage's mix.
OUTAGE_MIX = ("write", "read", "read", "handoff", "read", "idp", "read", "read", "read", "read")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def cookies(self) -> dict[str, str]:
        """name -> value of every Set-Cookie (attributes dropped)."""
        jar = {}
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                jar[name.strip()] = rest.split(";", 1)[0]
        return jar


class TransportError(Exception):
    """The server closed or did not answer a request on a fresh connection."""


class Http:
    """One keep-alive connection per loopback port, for one thread."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._connections: dict[int, http.client.HTTPConnection] = {}

    def request(self, method: str, port: int, path: str, *, cookie: str | None = None,
                body: str | None = None) -> Reply:
        headers = dict(HTML)
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            reused = port in self._connections
            connection = self._connections.get(port) or http.client.HTTPConnection(
                "127.0.0.1", port, timeout=self.timeout
            )
            self._connections[port] = connection
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                reply = Reply(response.status, response.getheaders(), response.read())
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                del self._connections[port]
                # A kept-alive connection the server closed meanwhile is retried once
                # on a new one, as browsers do; a failure on a new connection is real.
                if reused and attempt == 1:
                    continue
                raise TransportError(type(exc).__name__) from None
            if response.will_close:
                connection.close()
                del self._connections[port]
            return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


@dataclass
class User:
    """A signed-in browser: its cookie at the IdP and at the shop (each app's own value
    for the one shared session) and the writes it saw acknowledged."""

    name: str
    idp_value: str
    shop_value: str
    acknowledged: int = 0  # the highest write sequence answered 200
    attempted: int = 0

    @property
    def idp_cookie(self) -> str:
        return f"{COOKIE}={self.idp_value}"

    @property
    def cookie(self) -> str:
        """The shop's cookie."""
        return f"{COOKIE}={self.shop_value}"

    @property
    def sid(self) -> str:
        """The shared session's id (both cookie values hold it, each with its own tag)."""
        return self.shop_value.rsplit(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Outcome:
    op: str
    started: float
    ended: float
    verdict: str

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _common(reply: Reply) -> str | None:
    """The verdict every request shares: 503 with Retry-After, or a server error."""
    if reply.status == 503:
        return UNAVAILABLE if reply.header("retry-after") else "503_without_retry_after"
    if reply.status >= 500:
        return f"http_{reply.status}"
    return None


def _shop_page(reply: Reply, user: User) -> str:
    common = _common(reply)
    if common is not None:
        return common
    if reply.status in (302, 401):
        return "signed_out"
    if reply.status != 200:
        return f"unexpected_{reply.status}"
    try:
        seen = json.loads(reply.body).get("user")
    except ValueError:
        return "unexpected_body"
    if seen == user.name:
        return OK
    return "unauthenticated_200" if seen is None else "wrong_user_200"


def read(http_: Http, site: ServedDeployment, user: User) -> str:
    return _shop_page(http_.request("GET", site.shop.port, "/orders", cookie=user.cookie), user)


def write(http_: Http, site: ServedDeployment, user: User) -> str:
    user.attempted += 1
    sequence = user.attempted
    verdict = _shop_page(
        http_.request("GET", site.shop.port, f"/write?n={sequence}", cookie=user.cookie), user
    )
    if verdict == OK:
        user.acknowledged = sequence
    return verdict


def idp_home(http_: Http, site: ServedDeployment, user: User) -> str:
    reply = http_.request("GET", site.idp.port, "/", cookie=user.idp_cookie)
    common = _common(reply)
    if common is not None:
        return common
    if reply.status != 200:
        return f"unexpected_{reply.status}"
    if reply.body == f"idp home user={user.name}".encode():
        return OK
    # The IdP's home page is public: "user=None" there is a lost session, not a bypass.
    return "signed_out" if reply.body == b"idp home user=None" else "wrong_user_200"


def handoff(http_: Http, site: ServedDeployment, user: User) -> str:
    """A signed-in user's hand-off to the shop in a fresh tab: the IdP mints, the shop redeems."""
    start = http_.request("GET", site.shop.port, "/orders")  # no session cookie: no store read
    location = start.header("location") or ""
    if start.status != 302 or not location.startswith(site.idp_origin + "/login?"):
        return _common(start) or f"unexpected_{start.status}"
    state_cookies = "; ".join(f"{k}={v}" for k, v in start.cookies().items())
    minted = http_.request("GET", site.idp.port, _path(location), cookie=user.idp_cookie)
    back = minted.header("location") or ""
    if minted.status != 303 or not back.startswith(site.shop_origin + "/_sessionshare/callback?"):
        if minted.status == 200:
            return "signed_out"  # the IdP shows its login form
        return _common(minted) or f"unexpected_{minted.status}"
    redeemed = http_.request("GET", site.shop.port, _path(back), cookie=state_cookies)
    if redeemed.status != 303:
        return _common(redeemed) or f"unexpected_{redeemed.status}"
    adopted = redeemed.cookies().get(COOKIE) or ""
    if adopted.rsplit(".", 1)[0] != user.sid:
        return "wrong_session"
    return OK


OPS: dict[str, Callable[[Http, ServedDeployment, User], str]] = {
    "read": read, "write": write, "idp": idp_home, "handoff": handoff,
}


def sign_in(http_: Http, site: ServedDeployment, name: str) -> User:
    """The whole hand-off for a fresh browser; the signed-in user."""
    start = http_.request("GET", site.shop.port, "/orders")
    assert start.status == 302, start
    state_cookies = "; ".join(f"{k}={v}" for k, v in start.cookies().items())
    login = _path(start.header("location") or "")
    form = http_.request("GET", site.idp.port, login)
    assert form.status == 200 and b"login form" in form.body, form
    # Like a browser, keep the IdP's cookies for the form post: the login state belongs
    # to the browser that opened the login page (its sessionshare_browser cookie).
    idp_cookies = "; ".join(f"{k}={v}" for k, v in form.cookies().items())
    password = PASSWORDS[name]
    posted = http_.request("POST", site.idp.port, login, cookie=idp_cookies,
                           body=f"username={name}&password={password}")
    assert posted.status == 303, posted
    idp_value = posted.cookies()[COOKIE]
    back = http_.request("GET", site.shop.port, _path(posted.header("location") or ""),
                         cookie=state_cookies)
    shop_value = back.cookies().get(COOKIE) or ""
    assert back.status == 303 and shop_value.rsplit(".", 1)[0] == idp_value.rsplit(".", 1)[0]
    user = User(name, idp_value, shop_value)
    assert read(http_, site, user) == OK
    return user


def sign_in_many(site: ServedDeployment, count: int, threads: int = 8) -> list[User]:
    """``count`` users (alternately alice and bob), each with a session of its own."""
    names = sorted(PASSWORDS)

    def some(indexes: range) -> list[User]:
        http_ = Http()
        try:
            return [sign_in(http_, site, names[i % len(names)]) for i in indexes]
        finally:
            http_.close()

    with ThreadPoolExecutor(threads) as pool:
        shares = pool.map(some, [range(t, count, threads) for t in range(threads)])
        users = [user for share in shares for user in share]
    assert len({u.sid for u in users}) == count
    return users


@dataclass
class _Worker:
    users: Sequence[User]
    outcomes: list[Outcome] = field(default_factory=list)


def run(site: ServedDeployment, users: Sequence[User], *, threads: int, seconds: float,
        mix: Sequence[str], stop: threading.Event | None = None) -> list[Outcome]:
    """Drive ``users`` from ``threads`` threads for at most ``seconds`` (or until ``stop``)."""
    assert threads <= len(users), "each thread needs a user of its own"
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    workers = [_Worker(users[index::threads]) for index in range(threads)]

    def drive(worker: _Worker, offset: int) -> None:
        http_ = Http()
        step = offset
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                user = worker.users[step % len(worker.users)]
                op = mix[step % len(mix)]
                step += 1
                started = time.monotonic()
                try:
                    verdict = OPS[op](http_, site, user)
                except TransportError as exc:
                    verdict = f"transport_{exc}"
                worker.outcomes.append(Outcome(op, started, time.monotonic(), verdict))
        finally:
            http_.close()

    pool = [threading.Thread(target=drive, args=(w, i), daemon=True)
            for i, w in enumerate(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 60)
    stop.set()
    assert not any(thread.is_alive() for thread in pool), "a load thread hung"
    return sorted((o for w in workers for o in w.outcomes), key=lambda o: o.started)


def warm_each_worker(site: ServedDeployment, users: Sequence[User], *, answers: int = 30,
                     seconds: float = 20.0) -> dict[str, Counter[str]]:
    """Requests on fresh connections (each accepted anew, by whichever worker takes it)
    until every worker of both servers has answered ``answers`` of them, within
    ``seconds``: a worker the warm-up left idle would warm up (imports, its threads'
    stacks, allocator arenas) during a measured run instead. Answers per worker pid."""
    deadline = time.monotonic() + seconds
    found: dict[str, Counter[str]] = {}
    for server, path, cookie_of in ((site.idp, "/", lambda user: user.idp_cookie),
                                    (site.shop, "/orders", lambda user: user.cookie)):
        workers = [str(pid) for pid in server.worker_pids()]
        counts: Counter[str] = Counter()

        def one(user: User, port: int = server.port, path: str = path, role: str = server.role,
                cookie_of: Callable[[User], str] = cookie_of) -> str:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", path, headers={
                    **HTML, "Cookie": cookie_of(user), "Connection": "close"})
                response = connection.getresponse()
                response.read()
                assert response.status == 200, (role, response.status)
                return response.getheader(WORKER_HEADER) or "-"
            finally:
                connection.close()

        with ThreadPoolExecutor(16) as pool:
            while any(counts[pid] < answers for pid in workers):
                assert time.monotonic() < deadline, (
                    f"{server.role}: workers answered {dict(counts)} of {answers} warm-up "
                    f"requests each in {seconds:.0f} s (workers {workers})")
                counts.update(pool.map(one, users[:32]))
        found[server.role] = counts
    return found


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(outcomes: Sequence[Outcome]) -> dict[str, object]:
    """Counts by verdict, throughput and latency (milliseconds) of a run."""
    if not outcomes:
        return {"requests": 0}
    span = max(o.ended for o in outcomes) - min(o.started for o in outcomes)
    latencies = [o.seconds * 1000 for o in outcomes]
    return {
        "requests": len(outcomes),
        "verdicts": dict(Counter(o.verdict for o in outcomes)),
        "per_s": round(len(outcomes) / span) if span else 0,
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
    }
