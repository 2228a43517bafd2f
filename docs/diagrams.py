"""The hand-off as an SVG sequence diagram, drawn from a list of hops.

Plain SVG written by a few lines of Python: no diagram tool to install, and
the picture changes in the same commit as the protocol it shows.
"""

from __future__ import annotations

from html import escape

ACTORS = ["Browser", "Remote (shop.example)", "IdP (id.example)", "Store (Redis)"]

#: (from, to, label, dashed) -- one row each, top to bottom.
HOPS: list[tuple[int, int, str, bool]] = [
    (0, 1, "GET /orders?page=2 (no shared session)", False),
    (1, 0, "302 id.example/login?callback=...&state=S  + signed state cookie", True),
    (0, 2, "GET /login?callback=...&state=S", False),
    (2, 2, "callback on the allow-list? keep the hand-off pending", False),
    (2, 0, "200 login form", True),
    (0, 2, "POST credentials: the app sets session[user]", False),
    (2, 3, "new session id (no fixation); SET ticket -> wrapped id, 60 s", False),
    (2, 0, "303 shop.example/_sessionshare/callback?token=seal(ticket, aud, iss, S, iat)", True),
    (0, 1, "GET /_sessionshare/callback?token=T  + state cookie", False),
    (1, 1, "open the seal; check iss, aud, age, state = cookie", False),
    (1, 3, "redeem the ticket, atomically and once; read the session", False),
    (1, 0, "303 /orders?page=2  + Set-Cookie: this app's session cookie", True),
]

_COLUMN = 230
_ROW = 42
_TOP = 60


def _x(actor: int) -> int:
    return 110 + actor * _COLUMN


def handoff_svg() -> str:
    """The diagram, as the text of an SVG file."""
    width = _x(len(ACTORS) - 1) + 140
    height = _TOP + (len(HOPS) + 1) * _ROW + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        "<title>The sessionshare hand-off, step by step</title>",
        '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" '
        'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for index, name in enumerate(ACTORS):
        x = _x(index)
        parts.append(f'<rect x="{x - 95}" y="10" width="190" height="30" rx="4" '
                     'fill="#e8f0fe" stroke="#3367d6"/>')
        parts.append(f'<text x="{x}" y="30" text-anchor="middle">{escape(name)}</text>')
        parts.append(f'<line x1="{x}" y1="40" x2="{x}" y2="{height - 10}" '
                     'stroke="#999" stroke-dasharray="4 4"/>')
    for row, (source, target, label, dashed) in enumerate(HOPS):
        y = _TOP + (row + 1) * _ROW
        x1, x2 = _x(source), _x(target)
        style = ' stroke-dasharray="6 3"' if dashed else ""
        if source == target:  # a check made on the spot
            parts.append(f'<path d="M{x1},{y - 8} h30 v14 h-28" fill="none" stroke="#333"'
                         f' marker-end="url(#arrow)"/>')
            parts.append(f'<text x="{x1 + 36}" y="{y + 3}">{escape(label)}</text>')
            continue
        parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"{style} '
                     'marker-end="url(#arrow)"/>')
        left = min(x1, x2)
        parts.append(f'<text x="{left + 8}" y="{y - 6}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
