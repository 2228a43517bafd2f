"""Turning the measurements into the printed tables, the ratios and the verdicts.

*Overhead* is what a session layer adds to the app it wraps: a case's median
microseconds per request minus its baseline's -- the bare app (a) for the
WSGI middlewares, plain Flask (e0) for Flask-Session (e). The targets of
issue 5 are ratios of overheads and of requests/s, plus exact round-trip
counts and a memory bound; :func:`targets` evaluates each one.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

#: The baseline each case's overhead is measured against.
BASELINE = {"b": "a", "c": "a", "d": "a", "e": "e0", "f": "a", "g": "a", "b0": "a",
            "cu": "a", "du": "a",
            **{f"{kind}{label}": "a" for kind in ("w", "d", "du")
               for label in ("200", "2k", "20k", "200k")}}


@dataclass
class Target:
    name: str
    value: float | None
    op: str  # "<=", "<", "==", ">="
    limit: float
    unit: str = ""
    #: The issue that set the target (the report prints each group under its heading).
    issue: int = 5
    #: Printed after the verdict (the same ratio in wall time, for a CPU-time target).
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return {
            "<=": self.value <= self.limit + 1e-9,
            "<": self.value < self.limit,
            "==": abs(self.value - self.limit) < 1e-9,
            ">=": self.value >= self.limit - 1e-9,
        }[self.op]

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        shown = "-" if self.value is None else f"{self.value:.2f}{self.unit}"
        limit = f"{self.op} {self.limit:g}{self.unit}"
        return f"  {self.name:<44} {shown:>9}  {limit:<9} {verdict:<7} {self.note}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "op": self.op, "limit": self.limit,
                "met": self.met, "issue": self.issue}


def overheads(us: dict[str, float]) -> dict[str, float]:
    return {case: us[case] - us[base] for case, base in BASELINE.items() if case in us}


def targets(result: dict[str, Any], timings_meaningful: bool) -> list[Target]:
    inproc = result["inprocess"]
    over = result["overhead_us"]
    trips = {case: row["round_trips"] for case, row in inproc.items()}

    def ratio(a: str, b: str) -> float | None:
        if not timings_meaningful or a not in over or b not in over or over[b] <= 0:
            return None
        return float(over[a] / over[b])

    found = [
        Target("(c) overhead / floor (b) overhead", ratio("c", "b"), "<=", 1.15, "x"),
        Target("(d) overhead / floor (b) overhead", ratio("d", "b"), "<=", 1.3, "x"),
        Target("(c) overhead / Flask-Session (e) overhead", ratio("c", "e"), "<=", 0.4, "x"),
        Target("(c) overhead / Beaker (f) overhead", ratio("c", "f"), "<=", 0.4, "x"),
        Target("round trips (c) per request", trips.get("c"), "==", 1),
        Target("round trips (d) per request", trips.get("d"), "<=", 2),
        Target("round trips (g) per request", trips.get("g"), "==", 0),
        Target("round trips (h) per login", trips.get("h"), "<=", 4),
    ]
    served = result.get("http") or {}
    rps = None
    if "b" in served and "c" in served and served["b"]["requests_per_second"]:
        rps = served["c"]["requests_per_second"] / served["b"]["requests_per_second"]
    found.append(Target("HTTP req/s (c) / req/s (b)", rps, ">=", 0.9, "x"))
    memory = result.get("memory") or {}
    for case in ("c", "d"):
        growth = memory.get(case, {}).get("growth_mb")
        found.append(Target(f"RSS growth over {result['settings']['memory_requests']:,} "
                            f"requests of ({case})", growth, "<", 5, " MB"))
    return found + issue27_targets(result, ratio)


def issue27_targets(result: dict[str, Any], ratio: Any) -> list[Target]:
    """Issue 27's figures: the store built both ways against the floor, the read against
    the physical floors (a bare socket; an asyncio stream), the write at each size.

    Judged on CPU time (the harness thread's and Redis's, per request, minus the bare
    app's): on a machine other work shares, wall time also counts the others' turns on
    the CPU. The wall-time ratio is printed beside each.
    """
    cpu = result.get("overhead_cpu_us") or {}
    meaningful = result["settings"]["mode"] != "smoke"

    def cpu_ratio(a: str, b: str) -> float | None:
        if not meaningful or a not in cpu or b not in cpu or cpu[b] <= 0:
            return None
        return float(cpu[a] / cpu[b])

    def target(name: str, a: str, b: str, limit: float) -> Target:
        wall = ratio(a, b)
        return Target(name, cpu_ratio(a, b), "<=", limit, "x", 27,
                      "" if wall is None else f"(wall {wall:.2f}x)")

    found = [
        target("(c) from_url: overhead / floor (b)", "c", "b", 1.0),
        target("(cu) user's default client / floor (b)", "cu", "b", 1.0),
        target("(c) overhead / raw-socket floor (b0)", "c", "b0", 1.5),
        target("(cu) overhead / raw-socket floor (b0)", "cu", "b0", 1.5),
    ]
    asgi = (result.get("asgi") or {}).get("inprocess") or {}
    if "B0" in asgi and "C" in asgi and meaningful:
        for case in ("C", "CU"):
            if case in asgi:
                over = {key: asgi[key][field] - asgi["A"][field]
                        for key in (case, "B0") for field in ("cpu_us",)}
                wall = ((asgi[case]["us"] - asgi["A"]["us"])
                        / (asgi["B0"]["us"] - asgi["A"]["us"]))
                found.append(Target(f"ASGI ({case}) overhead / stream floor (B0)",
                                    over[case] / over["B0"], "<=", 1.5, "x", 27,
                                    f"(wall {wall:.2f}x)"))
    for label in ("200", "2k", "20k", "200k"):
        for kind, how in (("d", "from_url"), ("du", "user's client")):
            found.append(target(f"({kind}{label}) write, {how} / floor (w{label})",
                                f"{kind}{label}", f"w{label}", 1.0))
    return found


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(wrk_version: str) -> dict[str, Any]:
    """The machine and the versions in play (call before pinning: nproc counts usable CPUs)."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found.group(1).strip() if found else model
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg_at_start": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "gunicorn": _version("gunicorn"),
        "flask": _version("flask"),
        "flask_session": _version("flask-session"),
        "beaker": _version("beaker"),
        "werkzeug": _version("werkzeug"),
        "wrk": wrk_version,
    }


def _commands(commands: dict[str, float]) -> str:
    return ", ".join(f"{name} {calls:g}" for name, calls in commands.items()) or "-"


def render(result: dict[str, Any], found: list[Target]) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"Python {m['python']}, redis-server {m['redis_server']}, "
        f"redis-py {m['redis_py']} + hiredis {m['hiredis']}; load average at start "
        f"{m['loadavg_at_start']}"
        + (" -- OTHER WORK IS RUNNING: figures will be noisy" if m["loadavg_at_start"] > 0.5
           else ""),
        f"settings: {s['mode']}, pinned to CPU {s['pin']}" if s["pin"] is not None
        else f"settings: {s['mode']}, not pinned",
        f"in-process: median of {s['repeats']} repeats x {s['requests']} requests per case",
        "",
        f"  {'case':<6} {'what':<38} {'us/unit':>8} {'min-max':>13} {'overhead':>8} "
        f"{'cpu us':>7} {'trips':>5}  server commands",
    ]
    over = result["overhead_us"]
    for case, row in result["inprocess"].items():
        shown = f"{over[case]:8.1f}" if case in over else f"{'-':>8}"
        spread = f"{min(row['samples_us']):.1f}-{max(row['samples_us']):.1f}"
        lines.append(
            f"  {'(' + case + ')':<6} {row['label'][:38]:<38} {row['us']:8.1f} "
            f"{spread:>13} {shown} {row.get('cpu_us', 0):7.1f} {row['round_trips']:5.2f}  "
            f"{_commands(row['commands'])}"
            + (f"  [per {row['unit']}]" if row["unit"] != "request" else "")
        )
    lines.append("  us/unit: median of the repeats; overhead: minus the baseline's median "
                 "((a) bare app; (e0) for (e));")
    lines.append("  cpu us: CPU per unit, this thread's and the Redis server's (median of the "
                 "repeats; issue 27's ratios use it)")
    lines.append("  trips: store round trips per unit (client-side); server commands per unit, "
                 "those run inside a script included")
    served = result.get("http") or {}
    if served:
        lines += ["", f"over HTTP: gunicorn sync x2 workers, wrk 1 thread x {s['connections']} "
                  f"connections, {s['http_seconds']:g} s per case in {s['http_rounds']} "
                  "interleaved turns (req/s over all turns, p50 mean, p99 worst)",
                  f"  {'case':<4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}  errors"]
        for case, row in served.items():
            lines.append(
                f"  ({case})  {row['requests_per_second']:9.0f} {row['p50_ms']:8.2f} "
                f"{row['p99_ms']:8.2f} {row['requests']:9d}  {row['errors'] or '-'}"
            )
    memory = result.get("memory") or {}
    if memory:
        lines += ["", f"memory: RSS over {s['memory_requests']:,} in-process requests "
                  "(after a warm-up)"]
        for case, row in memory.items():
            lines.append(
                f"  ({case})  RSS {row['rss_mb']:.1f} MB, growth {row['growth_mb']:+.2f} MB"
            )
    for issue in sorted({t.issue for t in found}):
        lines += ["", f"targets (issue {issue}):"] + [t.line() for t in found if t.issue == issue]
    return "\n".join(lines)
