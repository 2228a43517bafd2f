"""``python -m sessionshare sessions list | revoke | withdraw | count | reconcile``: a user's
sessions, and all users' count, from the command line.

It reads the same variables as the apps (``SESSIONSHARE_STORE_URL``,
``SESSIONSHARE_SYNC_KEY``, and ``SESSIONSHARE_KEY_PREFIX`` /
``SESSIONSHARE_USER_KEY`` when the apps set them) and works through
:class:`~sessionshare.admin.SessionAdmin`::

    $ python -m sessionshare sessions list --user alice
    REF               CREATED (UTC)     LAST SEEN (UTC)   APPS                  USER AGENT
    3f9ac21b77e04d51  2026-11-28 09:12  2026-11-28 11:40  https://shop.example  Mozilla/5.0 ...
    $ python -m sessionshare sessions revoke --user alice --ref 3f9ac21b77e04d51
    ended session 3f9ac21b77e04d51 of 'alice' in every app
    $ python -m sessionshare sessions withdraw --user alice --origin https://blog.example
    withdrew https://blog.example from 1 session of 'alice': it signs her in again through the IdP
    $ python -m sessionshare sessions count
    13 live sessions (the census: one round trip)
    $ python -m sessionshare sessions reconcile
    12 live sessions by a scan of every index; the census said 13, now 12 (0 added, 1 taken out)

``count`` and ``reconcile`` are :meth:`~sessionshare.admin.SessionAdmin.count_sessions`
and :meth:`~sessionshare.admin.SessionAdmin.reconcile_sessions`. Exit status: 0
when done; 1 when the store does not answer or there is nothing to list or
end; 2 for a setting or an argument to fix.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .admin import SessionAdmin, SessionInfo, is_ref
from .core.options import DEFAULT_STORE_URL, make_store
from .crypto import SyncKey
from .errors import ConfigurationError, StoreUnavailable

__all__ = ["add_sessions_command", "format_table", "without_password"]

_AGENT_WIDTH = 60


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds)) if seconds else "-"


def format_table(infos: list[SessionInfo]) -> str:
    """The table ``sessions list`` prints: ref, created, last seen, apps, user agent."""
    rows = [("REF", "CREATED (UTC)", "LAST SEEN (UTC)", "APPS", "USER AGENT")]
    for info in infos:
        agent = info.user_agent or "-"
        if len(agent) > _AGENT_WIDTH:
            agent = agent[: _AGENT_WIDTH - 3] + "..."
        rows.append((info.ref, _when(info.created), _when(info.last_seen),
                     ", ".join(info.apps) or "-", agent))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  " + row[4]
        for row in rows
    ) + "\n"


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _admin() -> tuple[SessionAdmin | None, str, int]:
    """The admin over the configured store and key, or (None, message, status)."""
    key = os.environ.get("SESSIONSHARE_SYNC_KEY", "")
    if not key.strip():
        return None, ("SESSIONSHARE_SYNC_KEY is not set: set it to the sync key the apps use "
                      "(the same value as theirs)"), 2
    url = os.environ.get("SESSIONSHARE_STORE_URL") or DEFAULT_STORE_URL
    if url.startswith("memory:"):
        # A fresh process's memory holds nothing: an empty answer would look like a fact.
        return None, ("SESSIONSHARE_STORE_URL is memory://, a store in this command's own "
                      "memory, which holds no app's sessions: set it to the apps' Redis "
                      "(redis://host:port/db)"), 2
    try:
        store = make_store(url)
        admin = SessionAdmin(
            store, key,
            key_prefix=os.environ.get("SESSIONSHARE_KEY_PREFIX", "sessionshare:"),
            user_key=os.environ.get("SESSIONSHARE_USER_KEY") or "user",
        )
    except ConfigurationError as exc:
        # Neither message echoes the key (SyncKey never does) nor a password.
        return None, f"{exc}", 2
    return admin, url, 0


def _where(url: str) -> str:
    """Where the command looked: a wrong key or store finds nothing, as a wrong name does."""
    # Parsed already by _admin(): the fingerprint is public, the key never shown.
    fingerprint = SyncKey.parse(os.environ.get("SESSIONSHARE_SYNC_KEY", "")).fingerprint
    prefix = os.environ.get("SESSIONSHARE_KEY_PREFIX", "sessionshare:")
    return (f"in the store at {without_password(url)} under key fingerprint "
            f"{fingerprint} (prefix {prefix!r}): check the name as the "
            "apps show it in REMOTE_USER, that this is the apps' store, and that the "
            "fingerprint is theirs (python -m sessionshare fingerprint where an app runs; "
            "SESSIONSHARE_KEY_PREFIX too)")


def without_password(url: str) -> str:
    """A store URL fit to print: ``redis://user:secret@host`` loses the secret."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


_Command = Callable[[argparse.Namespace, SessionAdmin, str], int]


def _on_store(command: _Command) -> Callable[[argparse.Namespace], int]:
    """``command`` run on the configured store: the admin opened before it and its store
    closed after it; a setting to fix is exit status 2, a store that does not answer 1."""

    def run(args: argparse.Namespace) -> int:
        admin, url, status = _admin()
        if admin is None:
            return _fail(url, status)
        try:
            return command(args, admin, url)
        except ConfigurationError as exc:  # withdraw's --origin, say
            return _fail(str(exc), 2)
        except StoreUnavailable as exc:
            return _fail(f"the store at {without_password(url)} does not answer ({exc}); "
                         "check SESSIONSHARE_STORE_URL and that the server runs", 1)
        finally:
            admin.store.close()

    return run


def _plural(count: int, noun: str = "live session") -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


@_on_store
def _list(args: argparse.Namespace, admin: SessionAdmin, url: str) -> int:
    infos = admin.sessions(args.user)
    if not infos:
        return _fail(f"user {args.user!r} has no live sessions {_where(url)}", 1)
    print(format_table(infos), end="")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if args.ref is not None and not is_ref(args.ref):
        return _fail(f"--ref must be a reference from 'sessions list' (16 hex characters), "
                     f"not {args.ref[:40]!r}", 2)
    return _revoke_checked(args)


@_on_store
def _revoke_checked(args: argparse.Namespace, admin: SessionAdmin, url: str) -> int:
    if args.all:
        count = admin.revoke_all(args.user)
        if not count:
            return _fail(f"user {args.user!r} has no sessions to end {_where(url)}", 1)
        print(f"ended {_plural(count, 'session')} of {args.user!r} in every app")
        return 0
    if not admin.revoke(args.user, args.ref):
        return _fail(f"user {args.user!r} has no session {args.ref} (see 'sessions list')", 1)
    print(f"ended session {args.ref} of {args.user!r} in every app")
    return 0


@_on_store
def _withdraw(args: argparse.Namespace, admin: SessionAdmin, url: str) -> int:
    count = admin.withdraw(args.user, args.origin)
    origin = admin.canonical(args.origin)
    if not count:
        return _fail(f"no live session of {args.user!r} has joined {origin} (see 'sessions "
                     "list': its APPS column)", 1)
    print(f"withdrew {origin} from {_plural(count, 'session')} of {args.user!r}: that app "
          "signs the user in again through the IdP, where authorize decides anew")
    return 0


@_on_store
def _count(args: argparse.Namespace, admin: SessionAdmin, url: str) -> int:
    print(f"{_plural(admin.count_sessions())} (the census: one round trip)")
    return 0


@_on_store
def _reconcile(args: argparse.Namespace, admin: SessionAdmin, url: str) -> int:
    done = admin.reconcile_sessions()
    print(f"{_plural(done.sessions)} by a scan of every index; the census said "
          f"{done.counted_before}, now {done.counted} ({done.added} added, {done.removed} "
          "taken out)")
    return 0


def add_sessions_command(commands: Any) -> None:
    """Add ``sessions list``, ``revoke``, ``withdraw``, ``count`` and ``reconcile`` to the
    CLI's subcommands."""
    sessions = commands.add_parser(
        "sessions", help="list a user's shared sessions, or end them in every app",
        description="Reads SESSIONSHARE_STORE_URL, SESSIONSHARE_SYNC_KEY and, when set, "
                    "SESSIONSHARE_KEY_PREFIX and SESSIONSHARE_USER_KEY, as the apps do.",
    )
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="a table of the user's live sessions")
    listing.add_argument("--user", required=True, help="the user, as REMOTE_USER shows it")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="end one or all of the user's sessions")
    revoke.add_argument("--user", required=True, help="the user, as REMOTE_USER shows it")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--ref", help="the session's REF, from 'sessions list'")
    which.add_argument("--all", action="store_true", help="every session of the user")
    revoke.set_defaults(run=_revoke)
    withdraw = actions.add_parser(
        "withdraw", help="take a remote app out of the user's sessions (it stops serving "
                         "them at its next request)")
    withdraw.add_argument("--user", required=True, help="the user, as REMOTE_USER shows it")
    withdraw.add_argument("--origin", required=True,
                          help="the remote app's origin, e.g. https://blog.example")
    withdraw.set_defaults(run=_withdraw)
    count = actions.add_parser(
        "count", help="how many sessions are live, all users together (one round trip)")
    count.set_defaults(run=_count)
    reconcile = actions.add_parser(
        "reconcile", help="count by scanning every user's index (slow: O(all sessions)) "
                          "and repair the census the count reads")
    reconcile.set_defaults(run=_reconcile)
