"""A local 3-master Redis Cluster: how sessions spread over the masters, and no script
crossing slots.

The cluster is the reliability suite's (``tests/reliability/topologies.py``:
three ``redis-server --cluster-enabled`` processes on loopback, the 16,384
slots split evenly), and the store is ``RedisStore`` over redis-py's
``RedisCluster``, as ``docs/scaling.md`` builds it.

- **Spread**: ``n`` users sign in through the whole hand-off; then every
  master is scanned and its keys sorted by kind -- live sessions (the keys the
  shop's cookies name), user indexes (the keys the admin API names), and the
  short-lived keys of a sign-in (tickets, state claims, retired ids, join
  markers). Each kind's share per master is set beside the uniform
  expectation: the largest deviation in standard deviations of a binomial
  draw with the master's share of the slots.
- **No crossing**: ``MONITOR`` on every master while a scripted tour runs
  every kind of store step the library has -- a sign-in with its hand-off
  (claim, ticket, the move to a new id, the index entry, the redemption, the
  join marker), a write, a second hand-off, an id regenerated at the IdP, a
  second session of a user, the admin API's list, withdraw, revoke, revoke
  all, count (the census and its sweep) and reconcile, and a logout. Every
  command a master ran is checked: its keys (``COMMAND GETKEYS``) sit in one
  slot, and every command a script ran
  inside (MONITOR shows them, marked ``lua``) touches only the slot of the
  keys the script declared. ``INFO errorstats`` on every master must show
  no ``CROSSSLOT`` (nor any other error) over the whole tour and spread run.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.crc import key_slot

from sessionshare import RedisStore, SyncKey

from .. import apps
from .deployment import Browser, Deployment
from .memory import SHORT_LIVED

Log = Callable[[str], None]
END_MARK = "sessionshare-scale-monitor-end"
_LINE = re.compile(r"^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$", re.S)
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def unquote(text: str) -> str:
    """One argument as MONITOR prints it (``sdscatrepr``: C escapes, ``\\xHH``)."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and i + 3 < len(text):
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Monitored:
    """One command a master ran: its arguments, and whether a script ran it."""

    args: list[str]
    lua: bool
    keys: list[str] = field(default_factory=list)
    inside: list[Monitored] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The command's name; a script (EVAL or EVALSHA) named by its SHA1's start."""
        name = self.args[0].upper()
        if name == "EVALSHA":
            return f"script {self.args[1][:8]}"
        if name == "EVAL":
            return f"script {hashlib.sha1(self.args[1].encode()).hexdigest()[:8]}"
        return name


def parse_monitor(line: str) -> Monitored | None:
    match = _LINE.match(line)
    if match is None:
        return None
    args = [unquote(arg) for arg in _ARG.findall(match.group(4))]
    return Monitored(args, lua=match.group(3) == "lua") if args else None


class Monitor:
    """``MONITOR`` on one master, in a thread, until :meth:`stop`."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.lines: list[str] = []
        self._monitor = client.monitor()  # type: ignore[no-untyped-call]
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            raw = self._monitor.connection.read_response()
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if END_MARK in line:
                return
            self.lines.append(line)

    def stop(self) -> list[str]:
        self.client.echo(END_MARK)
        self._thread.join(10)
        self._monitor.__exit__(None, None, None)
        return self.lines


def group(lines: list[str], lua_follows: bool) -> list[Monitored]:
    """Top-level commands, each script with the commands it ran inside.

    Redis before 7 prints a script's own commands after it, Redis 7 before it.
    """
    commands = [c for c in (parse_monitor(line) for line in lines) if c is not None]
    top: list[Monitored] = []
    pending: list[Monitored] = []
    for command in commands:
        if command.lua:
            if lua_follows:
                if not top:
                    raise RuntimeError("a script's command with no script before it")
                top[-1].inside.append(command)
            else:
                pending.append(command)
        else:
            command.inside, pending = pending, []
            top.append(command)
    return top


def resolve_keys(admin: redis.Redis, commands: list[Monitored]) -> None:
    """Fill every command's keys from the server (``COMMAND GETKEYS``)."""
    flat = [c for top in commands for c in (top, *top.inside)]
    distinct = list({tuple(c.args) for c in flat})
    pipe = admin.pipeline(transaction=False)
    for args in distinct:
        pipe.command_getkeys(*args)
    found = {}
    for args, keys in zip(distinct, pipe.execute(raise_on_error=False), strict=True):
        found[args] = [] if isinstance(keys, Exception) else [
            k.decode() if isinstance(k, bytes) else str(k) for k in keys]
    for command in flat:
        command.keys = found[tuple(command.args)]


def errors(admin: redis.Redis) -> Counter[str]:
    """Errors the master answered so far, by kind, and (as ``connections``) the
    connections it accepted: redis-py's handshake on each new one is refused by a
    Redis before 7 (``CLIENT SETINFO``), an ``ERR`` per attempt."""
    stats = admin.info("errorstats")
    found = Counter({name.removeprefix("errorstat_"): int(value["count"])
                     for name, value in stats.items() if isinstance(value, dict)})
    found["connections"] = int(admin.info("stats")["total_connections_received"])
    return found


def tour(deployment: Deployment) -> list[str]:
    """Every kind of store step the library takes, once or twice; what was done."""
    admin = deployment.admin
    done = []
    alice = Browser(deployment)
    alice.sign_in("user-c0000001")
    done.append("sign-in with hand-off (claim, ticket, move, index, redeem, join)")
    alice.write()
    done.append("a write at the shop (merge)")
    alice.hand_off_again()
    done.append("a hand-off for a user signed in at the IdP")
    alice.regenerate_at_idp()
    alice.hand_off_again()
    done.append("an id regenerated at the IdP (move, index re-entry)")
    bob = [Browser(deployment) for _ in range(3)]
    for browser in bob:
        browser.sign_in("user-c0000002")
    done.append("three sessions of one user")
    refs = [info.ref for info in admin.sessions("user-c0000002")]
    if len(refs) != 3:
        raise RuntimeError(f"the tour's user lists {len(refs)} sessions, not 3")
    if admin.withdraw("user-c0000001", apps.SHOP) != 1:
        raise RuntimeError("withdraw found no session that had joined the shop")
    if not admin.revoke("user-c0000002", refs[0]) or admin.revoke_all("user-c0000002") != 2:
        raise RuntimeError("revoke/revoke_all did not end the user's sessions")
    if admin.count_sessions() != 1:
        raise RuntimeError("count_sessions does not find the one session left")
    if admin.reconcile_sessions().counted != 1:
        raise RuntimeError("reconcile_sessions does not find the one session left")
    done.append("admin: sessions, withdraw, revoke, revoke_all, count_sessions (the census, "
                "its sweep), reconcile_sessions")
    alice.hand_off_again()  # withdrawn: the shop sends her through the hand-off again
    alice.log_out_at_shop()
    done.append("a logout at the shop (end)")
    return done


def check_slots(commands: list[Monitored]) -> dict[str, dict[str, Any]]:
    """Per command name: calls, keys per call, slots per call, and the script's commands
    that left its slot."""
    rows: dict[str, dict[str, Any]] = {}
    for command in commands:
        slots = {key_slot(k.encode()) for k in command.keys}
        row = rows.setdefault(command.name, {
            "calls": 0, "max_keys": 0, "max_slots": 0, "inside": Counter(),
            "inside_calls": 0, "inside_elsewhere": 0})
        row["calls"] += 1
        row["max_keys"] = max(row["max_keys"], len(command.keys))
        row["max_slots"] = max(row["max_slots"], len(slots))
        for sub in command.inside:
            row["inside"][sub.args[0].upper()] += 1
            row["inside_calls"] += 1
            if any(key_slot(k.encode()) not in slots for k in sub.keys):
                row["inside_elsewhere"] += 1
    return rows


def spread(deployment: Deployment, masters: list[Any], n: int, log: Log
           ) -> dict[str, list[int]]:
    """Sign ``n`` users in; per kind of key, how many sit on each master."""
    browsers = []
    for number in range(n):
        browser = Browser(deployment)
        browser.sign_in(f"user-s{number:07d}")
        browsers.append(browser)
    log(f"cluster: {n:,} sign-ins with hand-off done")
    sessions = {b.session_key() for b in browsers}
    indexes = {deployment.index_key(b.user) for b in browsers}
    prefix = deployment.admin.index.key_prefix
    kinds: dict[str, list[int]] = {}
    for position, node in enumerate(masters):
        client = node.client(decode_responses=True)
        for key in client.scan_iter(count=1000):
            if key.endswith("store-id") or key.startswith(f"{prefix}n:"):
                continue  # the store's identity, the census: one for the whole deployment
            if key in sessions:
                kind = "session"
            elif key in indexes:
                kind = "index"
            else:
                letter = key[len(prefix):].split(":", 1)[0]
                kind = SHORT_LIVED.get(letter, letter)
            kinds.setdefault(kind, [0] * len(masters))[position] += 1
        client.close()
    return kinds


def measure(cluster: Any, n: int, log: Log) -> dict[str, Any]:
    """The tour under MONITOR, then the spread run; the figures and the checks."""
    masters = cluster.nodes
    admins = [node.client(socket_timeout=10) for node in masters]
    version = str(admins[0].info("server")["redis_version"])
    lua_follows = int(version.split(".")[0]) < 7
    errors_before = [errors(admin) for admin in admins]
    store = RedisStore(cluster.client())
    deployment = Deployment(store, SyncKey.generate())
    monitors = [Monitor(node.client()) for node in masters]
    try:
        done = tour(deployment)
    finally:
        lines = [monitor.stop() for monitor in monitors]
    tour_errors = [dict(errors(admin) - before)
                   for admin, before in zip(admins, errors_before, strict=True)]
    commands = []
    for admin, node_lines in zip(admins, lines, strict=True):
        grouped = group(node_lines, lua_follows)
        resolve_keys(admin, grouped)  # keyless commands answer errors: counted before this
        commands += grouped
    rows = check_slots(commands)
    log(f"cluster: tour checked, {len(commands)} commands on {len(masters)} masters")
    cluster.flushall()  # the spread counts the spread run's keys alone
    errors_before = [errors(admin) for admin in admins]
    counts = spread(deployment, masters, n, log)
    spread_errors = [dict(errors(admin) - before)
                     for admin, before in zip(admins, errors_before, strict=True)]
    by_port = _slot_ranges(admins[0])
    slots = [by_port.get(node.port, []) for node in masters]
    store.close()
    for admin in admins:
        admin.close()
    return {"redis_server": version, "tour": done, "commands": rows, "spread": counts,
            "sessions": n, "tour_errors": tour_errors,
            "spread_errors": spread_errors, "slots": slots,
            "crossing": sorted(name for name, row in rows.items()
                               if row["max_slots"] > 1 or row["inside_elsewhere"])}


def _slot_ranges(admin: redis.Redis) -> dict[int, list[list[int]]]:
    """Each master's slot ranges (first, last), by its port."""
    ranges: dict[int, list[list[int]]] = {}
    for entry in admin.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
        ranges.setdefault(int(entry[2][1]), []).append([int(entry[0]), int(entry[1])])
    return ranges
