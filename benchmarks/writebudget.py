"""``python -m benchmarks.hotpath write``: where the one-key write's time goes, by side.

    python -m benchmarks.hotpath write --pin 1      # 200 B and 2 KB sessions, one sitting
    python -m benchmarks.hotpath write --pin 1 --sizes 20k,200k   # the large ones

The write cases (w: the floor's GET, ``json``, SET; d: the library's GETEX and
its merge) are split into this thread's CPU and the Redis server's, per
request. Then the server's side alone: the read's ``GETEX`` followed by each
layer of the merge script, run against a copy of the case's own record -- a
plain ``SET`` (what the floor sends), an ``EVALSHA`` of an empty script, the
record's ``GET`` and ``SET`` made inside a script, and the merge itself
(``store/lua.py``'s ``MERGE``: it checks the record is live and sets the one
changed field in the record's text). Each layer's figure is the server's CPU
per request, the lowest of the repeats; the layers telescope, so they add up
to the merge. For comparison, the same merge of two fields: the full
``cjson`` decode and encode of the record that any other write takes.

Below ``REPLACE_FROM`` bytes (4 KB) the library's write is that merge: the
one write that decides on the server, in one step, that the session is still
live (a logout in flight is not undone) and keeps another request's keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sessionshare.store.lua import MERGE
from sessionshare.store.redisproto import REPLACE_FROM

from . import apps, measure
from .cases import Stack

#: The server's side of a write, layer by layer: name, the script (None: a SET), and how
#: many fields the write changes.
LAYERS: tuple[tuple[str, str | None, int], ...] = (
    ("SET (the floor's write)", None, 1),
    ("EVALSHA of an empty script", "return 1", 1),
    ("+ the record's GET and SET inside the script",
     "local raw = redis.call('GET', KEYS[1]) "
     "redis.call('SET', KEYS[1], raw, 'EX', ARGV[1]) return 1", 1),
    ("+ the live check and the field set in the text (MERGE)", MERGE.text, 1),
)
#: Beside the layers: the merge of two fields, which decodes and encodes the record whole
#: (printed, as the merge is, above the floor's SET).
WHOLE = ("beside: MERGE of two fields (cjson decode+encode)", MERGE.text, 2)
SIZES = ("200", "2k")


def _split(cases: list[Any], admin: Any, requests: int,
           repeats: int) -> dict[str, tuple[float, float]]:
    """This thread's and the server's CPU us per unit of each case: the medians, the cases
    interleaved (:func:`measure.time_cases`), after a warm-up."""
    for case in cases:
        case.loop(min(max(1, requests // case.scale), 500))
    cpu: dict[str, list[float]] = {}
    server: dict[str, list[float]] = {}
    measure.time_cases(cases, requests, repeats, admin, cpu, server)
    return {case.id: (measure.median([both - served for both, served
                                      in zip(cpu[case.id], server[case.id], strict=True)]),
                      measure.median(server[case.id])) for case in cases}


def _server_layers(admin: Any, record: bytes, requests: int, repeats: int) -> list[float]:
    """The server's CPU us per GETEX + each layer's write (then :data:`WHOLE`'s), on a
    copy of ``record``."""
    key = "writebudget:{copy}"
    layers = (*LAYERS, WHOLE)
    shas = [None if text is None else admin.script_load(text) for _, text, _ in layers]
    found = []
    for index, (sha, (_, _, fields)) in enumerate(zip(shas, layers, strict=True)):
        best = float("inf")
        for repeat in range(repeats + 1):
            admin.set(key, record, ex=600)
            start = measure.server_cpu(admin)
            for n in range(requests):
                admin.getex(key, ex=600)
                if sha is None:
                    admin.set(key, record, ex=600)
                # MERGE's argv as the library's write sends it: the idle expiry, an
                # update, the changed fields, no meta. Every layer answers 1, the merge
                # when it wrote: anything else means the layer measured no write.
                elif admin.evalsha(sha, 1, key, 600, "0", fields, 0, apps.WRITE_KEY, str(n),
                                   *(("other", str(n)) if fields == 2 else ())) != 1:
                    raise RuntimeError(f"layer {index}: the script wrote nothing")
            if repeat:  # the first run warms the script and the key up
                best = min(best, (measure.server_cpu(admin) - start) / requests * 1e6)
        found.append(best)
    admin.delete(key)
    return found


def run(stack: Stack, *, requests: int, repeats: int, sizes: Sequence[str] = SIZES) -> str:
    """The write's budget at each of ``sizes`` (labels of ``apps.WRITE_SIZES``), one
    sitting."""
    cases = {case.id: case for case in stack.cases()}
    columns: dict[str, dict[str, Any]] = {}
    for label in sizes:
        sid = stack.shop.side.lifecycle.session_id_in(stack.sized[label])
        assert sid is not None
        record = stack.admin.get(stack.shop.lifecycle.session_key(sid))
        assert isinstance(record, bytes)
        split = _split([cases[f"w{label}"], cases[f"d{label}"]], stack.admin, requests,
                       repeats)
        columns[label] = {
            "bytes": len(record),
            "floor": split[f"w{label}"],
            "ours": split[f"d{label}"],
            # Rounded as printed, so the printed steps add up to the printed whole.
            "layers": [round(value, 1)
                       for value in _server_layers(stack.admin, record, requests, repeats)],
        }
    head = "".join(f"{label + ' (' + str(col['bytes']) + ' B record)':>30}" for label, col
                   in columns.items())
    lines = [
        "The one-key write: CPU us per request, this thread | the Redis server",
        f"{'':<56}{head}",
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"  {label:<54}" + "".join(f"{cell:>30}" for cell in cells))

    for name, what in (("floor", "(w) floor: GET, json.loads, json.dumps, SET"),
                       ("ours", "(d) sessionshare: GETEX, MERGE or REPLACE")):
        row(what, [f"{col[name][0]:7.1f} | {col[name][1]:6.1f}" for col in columns.values()])
    row("(d) - (w)", [f"{col['ours'][0] - col['floor'][0]:+7.1f} | "
                      f"{col['ours'][1] - col['floor'][1]:+6.1f}" for col in columns.values()])
    row("(d) / (w), both sides", [
        f"{sum(col['ours']) / sum(col['floor']):.2f}x" for col in columns.values()])
    lines.append("  the server's side alone: GETEX + the write, per request (lowest of "
                 f"{repeats}):")
    for index, (name, _, _) in enumerate(LAYERS):
        cells = []
        for col in columns.values():
            value = col["layers"][index]
            step = value if index == 0 else value - col["layers"][index - 1]
            cells.append(f"{value:6.1f}" if index == 0 else f"{step:+6.1f}")
        row("  " + name, cells)
    last = len(LAYERS) - 1
    row("  = the merge, above the floor's SET", [
        f"{col['layers'][last] - col['layers'][0]:+6.1f}" for col in columns.values()])
    row("  " + WHOLE[0], [
        f"{col['layers'][-1] - col['layers'][0]:+6.1f}" for col in columns.values()])
    lines.append(f"  (w) and (d): the median of {repeats} interleaved repeats x {requests} "
                 "requests")
    large = [label for label, col in columns.items() if col["bytes"] >= REPLACE_FROM]
    if large:
        lines.append(f"  at {', '.join(large)}: (d)'s write is REPLACE (the record spliced in "
                     f"the app, from {REPLACE_FROM} B), not the merge the layers time")
    return "\n".join(lines)
