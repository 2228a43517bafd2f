"""The printed report of ``python -m benchmarks.scale``: the peers side by side, with ratios.

Absolute times drift on a shared machine; the ratios -- each figure over
the same figure of the peer or of the small load, measured in the same run
-- are what to compare between runs.
"""

from __future__ import annotations

import math
from typing import Any

LAYERS = {
    "sessionshare": "sessionshare: session + index",
    "flask-session": "Flask-Session {flask_session} (msgpack)",
    "beaker": "Beaker {beaker} ext:redis (pickle)",
}
KINDS = {"session": "  the session key", "index": "  its user's index (1 entry)",
         "census": "  its census member (1 set for all)"}


def _ttl(seconds: int) -> str:
    if seconds < 0:
        return "none"
    if seconds >= 86400:
        return f"{round(seconds / 86400)} d"
    if seconds >= 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds} s"


def uniform_p(counts: list[int], shares: list[float]) -> float | None:
    """Chi-square goodness of fit of ``counts`` to ``shares``: the p-value (an even number
    of degrees of freedom has a closed form; None otherwise, or with too few keys)."""
    total = sum(counts)
    freedom = len(counts) - 1
    if total < 5 * len(counts) or freedom % 2:
        return None
    x = sum((n - total * s) ** 2 / (total * s) for n, s in zip(counts, shares, strict=True)) / 2
    term, tail = 1.0, 1.0
    for i in range(1, freedom // 2):
        term *= x / i
        tail += term
    return float(math.exp(-x) * tail)


def _commands(commands: dict[str, float]) -> str:
    return ", ".join(f"{name} {calls:,.0f}" if calls >= 1 else f"{name} {calls:g}"
                     for name, calls in commands.items()) or "-"


def _header(result: dict[str, Any]) -> list[str]:
    m, s = result["machine"], result["settings"]
    load = m["loadavg_at_start"]
    return [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}, redis-server {m.get('redis_server', '?')} "
        f"({m.get('mem_allocator', '?')}), redis-py {m['redis_py']} + hiredis {m['hiredis']}; "
        f"load average at start {load}"
        + (" -- OTHER WORK IS RUNNING: times will be noisy" if load > 0.5 else ""),
        ("settings: smoke (tiny sizes: the code path, not figures)" if s["smoke"]
         else "settings: full") + (f", pinned to CPU {s['pin']}" if s["pin"] is not None
                                   else ", not pinned"),
    ]


def _memory(rows: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    n = rows["sessionshare"]["sessions"]
    ours = rows["sessionshare"]["used_memory_per_session"]
    lines = [
        "", f"1. Redis memory per session at rest: {n:,} sign-ins per layer, 1,024 bytes of app "
        "data each (one user per session: every session brings its own index key)",
        f"  {'layer':<34} {'keys':>4} {'value B':>8} {'MEMORY USAGE B':>15} "
        f"{'used_memory B':>14} {'expiry':>9} {'/ sessionshare':>15}",
    ]
    for name, template in LAYERS.items():
        label = template.format(**machine)
        row = rows.get(name)
        if row is None:
            continue
        kinds = row["kinds"]
        keys = sum(k[0] for k in kinds.values()) / n
        size = sum(k[2] for k in kinds.values()) / n
        ttl = next(iter(kinds.values()))[3]  # the session's own (sessionshare's index: 8 h)
        lines.append(
            f"  {label:<34} {keys:4.0f} {size:8,.0f} {row['memory_usage_per_session']:15,.0f} "
            f"{row['used_memory_per_session']:14,.0f} {_ttl(ttl):>9} "
            f"{row['used_memory_per_session'] / ours:14.2f}x")
        if name == "sessionshare":
            for kind, (count, usage, size_total, ttl_s) in kinds.items():
                lines.append(f"  {KINDS.get(kind, kind):<34} {count / n:4.0f} "
                             f"{size_total / n:8,.0f} {usage / n:15,.0f} {'':>14} "
                             f"{_ttl(ttl_s):>9}")
    short = rows["sessionshare"].get("short_lived") or {}
    if short:
        parts = [f"{kind} {usage / max(count, 1):,.0f} B ({_ttl(ttl)})"
                 for kind, (count, usage, ttl) in short.items()]
        lines.append("  + for minutes after each sign-in, sessionshare's short-lived keys "
                     "(MEMORY USAGE, lifetime):")
        lines.append("    " + "; ".join(parts))
    lines.append("  used_memory: INFO memory delta over the layer's at-rest keys copied "
                 "(DUMP/RESTORE) into an empty database, / sessions;")
    lines.append("  MEMORY USAGE: the keys alone (SAMPLES 0); value B: the stored bytes")
    return lines


def _dist(label: str, d: dict[str, float]) -> str:
    return (f"  {label:<24} {d['p50']:8.1f} {d['p90']:8.1f} {d['p99']:8.1f} "
            f"{d['p99.9']:8.1f} {d['max']:8.0f} {d['mean']:8.1f}")


def _ratio(label: str, a: dict[str, float], b: dict[str, float]) -> str:
    keys = ("p50", "p90", "p99", "p99.9", "max", "mean")
    return f"  {label:<24} " + " ".join(f"{b[k] / a[k]:7.2f}x" for k in keys)


def _million(m: dict[str, Any]) -> list[str]:
    small_n, large_n = m["sessions"]["small"], m["sessions"]["large"]
    copies = m["copies"]
    per_copy = (m["used_memory"]["large"] - m["used_memory"]["small"]) / max(copies, 1)
    reads = m["reads"]
    lines = [
        "", f"2. {large_n:,} sessions loaded -- small server: {small_n:,} users signed in through "
        f"the hand-off; large: the same, plus {copies:,} copies of those records (2 per user)",
        f"  loaded in {m['load_seconds']:.0f} s; large used_memory "
        f"{m['used_memory']['large'] / 2**30:.2f} GiB, {per_copy:,.0f} B per copied session "
        "(index shared by 2)",
        "", "  the authenticated read, us per request (each timed alone; interleaved blocks, "
        f"{reads['small']['read']['n']:,} per server)",
        f"  {'':<24} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8} {'mean':>8}",
    ]
    for kind, label in (("read", "read"), ("getex", "GETEX")):
        lines.append(_dist(f"{label} @ {small_n:,}", reads["small"][kind]))
        lines.append(_dist(f"{label} @ {large_n:,}", reads["large"][kind]))
        lines.append(_ratio("  large / small", reads["small"][kind], reads["large"][kind]))
    lines.append("  read: the shop's RemoteSessionMiddleware serving a protected page to a "
                 "signed-in browser;")
    lines.append("  GETEX: the same command through a plain redis-py client (the server's "
                 "share and the network's)")
    su, lu = reads["small"]["server_us_per_getex"], reads["large"]["server_us_per_getex"]
    lines.append(f"  the server's own time per GETEX (INFO commandstats): {su:.2f} us @ "
                 f"{small_n:,}, {lu:.2f} us @ {large_n:,} ({lu / su if su else 0:.2f}x)")
    lines.append(f"  round trips per read: {reads['small']['round_trips']:g} @ {small_n:,}, "
                 f"{reads['large']['round_trips']:g} @ {large_n:,}; commands "
                 f"{_commands(reads['large']['commands'])}")
    c = m["count"]
    lines += ["", "  counting every live session: SessionAdmin.count_sessions (the census: ZCARD), "
              "the same with a sweep, and",
              "  reconcile_sessions (the old count: SCAN the index keys, one read per user, "
              "EXISTS per 500; then the census repaired)",
              f"  {'':<32} {'sessions':>10} {'seconds':>9} {'us/session':>11} "
              f"{'round trips':>12}  commands"]
    for what, label in (("census", "count_sessions"), ("sweep", "  + a sweep"),
                        ("scan_alone", "the scan alone (before)"),
                        ("scan", "reconcile_sessions")):
        for name in ("small", "large"):
            row = c[name][what]
            sessions = c[name]["sessions"]
            lines.append(f"  {label + ' @ ' + name:<32} {sessions:10,} {row['seconds']:9.4f} "
                         f"{row['seconds'] / sessions * 1e6:11.3f} {row['round_trips']:12,}  "
                         f"{_commands(row['commands'])}")
    due = c["large"]["sweep"]["due"]
    lines.append(f"  the sweep checks the sessions one gauge period brings due: "
                 f"{c['small']['sweep']['due']:,} and {due:,} here (sessions x "
                 f"{c['large']['sweep']['every']:g} s / {c['large']['sweep']['idle']:,} s idle), "
                 "all found live; one process sweeps per period")
    for what in ("census", "scan_alone", "scan"):
        large, small = c["large"][what]["seconds"], c["small"][what]["seconds"]
        lines.append(f"  {what}: large / small {large / small if small else 0:,.1f}x the time "
                     f"for {large_n / small_n:,.0f}x the sessions")
    r = m["revoke"]
    heavy = m["heavy"]
    lines += ["", f"  SessionAdmin.revoke_all of a user holding {heavy:,} sessions (the CLI's "
              f"`sessions revoke --all`), median of {len(r['small']['seconds'])}",
              f"  {'among':>12} {'ms':>9} {'min-max ms':>15} {'round trips':>12}  commands"]
    for name, among in (("small", small_n + heavy), ("large", large_n + heavy)):
        row = r[name]
        spread = f"{min(row['seconds']) * 1e3:.1f}-{max(row['seconds']) * 1e3:.1f}"
        lines.append(f"  {among:12,} {row['median_s'] * 1e3:9.1f} {spread:>15} "
                     f"{row['round_trips']:12,}  {_commands(row['commands'])}")
    lines.append(f"  large / small: {r['large']['median_s'] / r['small']['median_s']:.2f}x")
    return lines


def _cluster(c: dict[str, Any]) -> list[str]:
    n = c["sessions"]
    ranges = " / ".join("+".join(f"{a}-{b}" for a, b in node) for node in c["slots"])
    masters = len(c["slots"])
    lines = ["", f"3. Redis Cluster, {masters} masters (slots {ranges}), redis-server "
             f"{c['redis_server']}: {n:,} sign-ins with hand-off",
             f"  {'keys on each master':<40}" + "".join(f"{f'master {i + 1}':>10}"
                                                         for i in range(masters))
             + f"{'max/min':>9}{'p uniform':>11}"]
    order = ["session", "index", "ticket"]
    spread = sorted(c["spread"].items(),
                    key=lambda item: (order.index(item[0]) if item[0] in order else 3, item[0]))
    for kind, counts in spread:
        shares = [sum(b - a + 1 for a, b in node) / 16384 for node in c["slots"]]
        ratio = f"{max(counts) / min(counts):.2f}" if min(counts) else "-"
        p = uniform_p(counts, shares)
        lines.append(f"  {kind:<40}" + "".join(f"{v:10,}" for v in counts)
                     + f"{ratio:>9}{'-' if p is None else f'{p:.2f}':>11}")
    lines.append("  p uniform: the chance that keys placed uniformly at random over the slots "
                 "spread at least this unevenly")
    lines.append("  (chi-square test); a session and its join marker share a hash tag, and so "
                 "do a ticket and its state's claim")
    lines += ["", "  no script crosses slots: MONITOR on every master during a tour of every "
              "store step --", "    " + "; ".join(c["tour"]),
              f"  {'command':<18} {'calls':>6} {'keys/call':>10} {'slots/call':>11}  "
              "commands run inside (in the script's slot / all)"]
    for name, row in sorted(c["commands"].items()):
        inside = ", ".join(f"{k} {v}" for k, v in sorted(row["inside"].items()))
        ok = row["inside_calls"] - row["inside_elsewhere"]
        lines.append(f"  {name:<18} {row['calls']:6} {row['max_keys']:10} {row['max_slots']:11}  "
                     + (f"{inside}: {ok}/{row['inside_calls']}" if inside else "-"))
    crossslot = sum(e.get("CROSSSLOT", 0) for e in c["tour_errors"] + c["spread_errors"])
    others: dict[str, int] = {}
    for errors in c["tour_errors"] + c["spread_errors"]:
        for kind, count in errors.items():
            if kind != "CROSSSLOT":
                others[kind] = others.get(kind, 0) + count
    connections = others.pop("connections", 0)
    lines.append(f"  CROSSSLOT errors on the masters (tour and spread run): {crossslot}; "
                 f"crossing commands: {', '.join(c['crossing']) or 'none'}")
    lines.append("  other errors: " + (", ".join(f"{k} {v}" for k, v in sorted(others.items()))
                                        or "none")
                 + f" (over {connections} new connections; NOSCRIPT: a script's first run on "
                 "a master, then loaded; ERR: redis-py's CLIENT SETINFO, unknown before Redis 7)")
    return lines


def render(result: dict[str, Any]) -> str:
    lines = _header(result)
    if "memory" in result:
        lines += _memory(result["memory"], result["machine"])
    if "million" in result:
        lines += _million(result["million"])
    if "cluster" in result:
        lines += _cluster(result["cluster"])
    lines += ["", f"wall time: {result['wall_seconds']:.0f} s"]
    return "\n".join(lines)
