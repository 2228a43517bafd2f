"""The command line: ``python -m sessionshare keygen | fingerprint | check | demo``.

- ``keygen`` prints a new sync key for ``SESSIONSHARE_SYNC_KEY``.
- ``fingerprint`` prints the public fingerprint of each key in
  ``SESSIONSHARE_SYNC_KEY`` (or of the keys given on standard input): run it
  on two apps and compare, without ever showing a key.
- ``check [idp|remote]`` validates the ``SESSIONSHARE_*`` settings and pings
  the store, printing one line per problem; exit status 0 when all is well.
- ``demo`` runs the IdP and two remote apps on this machine (see README).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import collect_settings
from .crypto import SyncKey
from .errors import ConfigurationError, StoreUnavailable

__all__ = ["main"]


def _keygen(args: argparse.Namespace) -> int:
    print(SyncKey.generate())
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    text = os.environ.get("SESSIONSHARE_SYNC_KEY", "")
    if not text.strip() or args.stdin:
        text = sys.stdin.read()
    try:
        key = SyncKey.parse(text)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for position, fingerprint in enumerate(key.fingerprints):
        label = "signing" if position == 0 else "accepted"
        print(f"{fingerprint}  key #{position + 1} ({label})")
    return 0


def _check(args: argparse.Namespace) -> int:
    marker = {"idp": "SESSIONSHARE_KNOWN_REMOTE_HOSTS", "remote": "SESSIONSHARE_IDP_URL"}
    roles = [args.role] if args.role else [r for r in marker if os.environ.get(marker[r])]
    roles = roles or ["remote"]
    status = 0
    for role in roles:
        settings, problems = collect_settings(role)
        for problem in problems:
            print(f"{role}: {problem}")
        if problems:
            status = 1
            continue
        try:
            settings["store"].ping()
        except StoreUnavailable as exc:
            print(f"{role}: the store does not answer ({exc}); check SESSIONSHARE_STORE_URL")
            status = 1
            continue
        eviction_warning = getattr(settings["store"], "eviction_warning", None)
        warning = eviction_warning() if eviction_warning is not None else None
        if warning:
            print(f"{role}: warning: {warning}")
        fingerprint = settings["key"].fingerprint
        print(f"{role}: configuration ok, store answers, key fingerprint {fingerprint}")
    return status


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(redis_url=args.redis, host=args.host, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionshare", description=(__doc__ or "").split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new sync key").set_defaults(run=_keygen)
    fp = commands.add_parser("fingerprint", help="print the fingerprint of each configured key")
    fp.add_argument("--stdin", action="store_true", help="read the keys from standard input")
    fp.set_defaults(run=_fingerprint)
    check = commands.add_parser("check", help="validate SESSIONSHARE_* settings and ping the store")
    check.add_argument("role", nargs="?", choices=["idp", "remote"])
    check.set_defaults(run=_check)
    demo = commands.add_parser("demo", help="run an IdP and two remote apps on this machine")
    demo.add_argument("--redis", metavar="URL", help="use this Redis instead of the embedded store")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000,
                      help="the IdP's port; the shop and the blog take the next two")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))
