"""The command line: ``python -m sessionshare keygen | fingerprint | check | options |
sessions | demo`` (``--help`` says what each does).

``check [idp|remote]`` builds the real middleware from the ``SESSIONSHARE_*``
variables, exactly as ``from_env`` does (in a Django project: from its
``SESSIONSHARE`` setting), and pings the store, printing one line per problem;
exit status 0 when all is well. ``fingerprint`` shows each key's public
fingerprint, to compare two apps' keys without ever showing one. ``sessions``
is ``sessions_cli.py``.

    $ SESSIONSHARE_APP_URL=localhost:5000 python -m sessionshare check remote
    remote: SESSIONSHARE_SYNC_KEY is not set: ...
    remote: SESSIONSHARE_APP_URL: app_url='localhost:5000' is not a valid URL ...
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import __version__
from .core.configure import option_warnings, read_environ, unknown_variables
from .core.events import CapturedWarnings
from .core.optiondocs import options_docstring, options_markdown
from .core.options import DEFAULT_STORE_URL, ROLES, Role
from .crypto import SyncKey
from .errors import ConfigurationError, StoreUnavailable
from .sessions_cli import add_sessions_command, without_password
from .wsgi.base import SessionMiddleware
from .wsgi.idp import IdpAuthMiddleware
from .wsgi.remote import RemoteSessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["build_from_env", "main"]

def _keygen(args: argparse.Namespace) -> int:
    print(SyncKey.generate())
    return 0


def _fingerprint(args: argparse.Namespace) -> int:
    text = os.environ.get("SESSIONSHARE_SYNC_KEY", "")
    if args.stdin or (not text.strip() and not sys.stdin.isatty()):
        text = sys.stdin.read()
    elif not text.strip():
        # Reading a terminal here would wait in silence for keys nobody knows to type.
        print(
            "error: SESSIONSHARE_SYNC_KEY is not set. Set it to the key(s) the app uses "
            "(python -m sessionshare keygen makes one), or pipe the keys in: "
            "... | python -m sessionshare fingerprint --stdin",
            file=sys.stderr,
        )
        return 2
    try:
        key = SyncKey.parse(text)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for position, fingerprint in enumerate(key.fingerprints):
        label = "signing" if position == 0 else "accepted"
        print(f"{fingerprint}  key #{position + 1} ({label})")
    return 0


def _no_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return []


def build_from_env(role: Role) -> tuple[SessionMiddleware | None, list[str], list[str]]:
    """The middleware ``from_env`` would build for ``role`` (or None), every problem in the
    way, and the warnings: settings that build but probably not the deployment meant."""
    values, problems = read_environ(role)
    if problems:
        return None, problems, []
    warnings = option_warnings(role, values)
    cls = IdpAuthMiddleware if role == "idp" else RemoteSessionMiddleware
    with CapturedWarnings() as logged:
        try:
            # The real constructor, as from_env calls it: what it would refuse at start-up
            # is refused here too. Quietly: the start-up notice is for the app's log.
            middleware = cls(_no_app, **{**values, "quiet_startup": True})
        except ConfigurationError as exc:
            store = values.get("store")
            if store is not None:
                store.close()
            return None, [str(exc)], warnings
    return middleware, [], warnings + logged.messages


def django_settings(directory: str = ".") -> tuple[str, str] | None:
    """The Django settings module of the project ``check`` runs in, and where it was
    found: ``DJANGO_SETTINGS_MODULE``, else the default ``manage.py`` sets; else None."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "").strip()
    if module:
        return module, "DJANGO_SETTINGS_MODULE"
    manage = os.path.join(directory, "manage.py")
    try:
        with open(manage, encoding="utf-8", errors="replace") as source:
            text = source.read()
    except OSError:
        return None
    found = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""", text)
    return (found.group(1), "manage.py") if found else None


def _store_ping(
    role: str, middleware: SessionMiddleware, url: str, setting: str = "SESSIONSHARE_STORE_URL"
) -> bool:
    """Ping the middleware's store (and close it), printing the outcome; True when ok."""
    store = middleware.store
    try:
        store.ping()
    except StoreUnavailable as exc:
        store.close()
        print(f"{role}: the store at {without_password(url)} does not answer ({exc}); "
              f"check {setting} and that the server runs")
        return False
    eviction_warning = getattr(store, "eviction_warning", None)
    evicting = eviction_warning() if eviction_warning is not None else None
    store.close()
    if evicting:
        print(f"{role}: warning: {evicting}")
    print(f"{role}: configuration ok, store at {without_password(url)} answers, "
          f"key fingerprint {middleware.side.key.fingerprint}")
    return True


def _check_django(module: str, source: str, asked: str | None = None) -> int:
    """``check`` in a Django project: the ``SESSIONSHARE`` setting, as the app reads it."""
    if source == "manage.py" and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # where manage.py finds the project, as it does
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    print(f"reading the Django settings {module} (from {source}): SESSIONSHARE and the "
          "SESSIONSHARE_* variables, as get_wsgi_application() does")
    try:
        import django

        django.setup()
        from .contrib.django.checks import preflight
    except Exception as exc:  # noqa: BLE001 - the project's own error, shown, not raised
        print(f"error: the Django project does not load ({type(exc).__name__}: {exc})")
        return 1
    for warning in unknown_variables():
        print(f"warning: {warning}")
    from django.conf import settings

    role, messages, middleware = preflight()
    label = role or "django"
    if asked is not None and role is not None and asked != role:
        which = "the IdP" if role == "idp" else "a remote"
        print(f"note: the SESSIONSHARE setting makes this site {which}; "
              f"checking it as that, not as {asked!r}")
    for message in messages:
        kind = "" if message.is_serious() else "warning: "
        print(f"{label}: {kind}{message.id}: {message.msg} (fix: {message.hint})")
    if middleware is None:
        return 1
    store = getattr(settings, "SESSIONSHARE", {}).get("store")
    url = store if isinstance(store, str) else (
        os.environ.get("SESSIONSHARE_STORE_URL") or f"{DEFAULT_STORE_URL} (the default)"
        if store is None else f"a {type(store).__name__} (from SESSIONSHARE)")
    setting = "SESSIONSHARE['store'] (or SESSIONSHARE_STORE_URL)"
    return 0 if _store_ping(label, middleware, url, setting) else 1


def _check(args: argparse.Namespace) -> int:
    django_project = django_settings()
    if django_project is not None:
        return _check_django(*django_project, asked=args.role)
    marker = {"idp": "SESSIONSHARE_KNOWN_REMOTE_HOSTS", "remote": "SESSIONSHARE_IDP_URL"}
    roles = [args.role] if args.role else [r for r in ROLES if os.environ.get(marker[r])]
    if not roles:
        roles = ["remote"]
        print("checking as a remote app (no SESSIONSHARE_IDP_URL or "
              "SESSIONSHARE_KNOWN_REMOTE_HOSTS set); use 'check idp' for the IdP")
    for warning in unknown_variables():
        print(f"warning: {warning}")
    url = os.environ.get("SESSIONSHARE_STORE_URL") or f"{DEFAULT_STORE_URL} (the default)"
    status = 0
    for role in roles:
        middleware, problems, warnings = build_from_env(role)
        for problem in problems:
            print(f"{role}: {problem}")
        for warning in warnings:
            print(f"{role}: warning: {warning}")
        if middleware is None:
            status = 1
            continue
        if not _store_ping(role, middleware, url):
            status = 1
    return status


def _options(args: argparse.Namespace) -> int:
    text = (
        options_docstring(args.docstring, shell=args.shell) if args.docstring
        else options_markdown()
    )
    print(text, end="")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(redis_url=args.redis, host=args.host, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    # The installed console script names itself; `python -m` shows the module form.
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = "sessionshare" if invoked == "sessionshare" else "python -m sessionshare"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="One login, one server-side session, many sites: keys, checks and the demo.",
    )
    parser.add_argument("--version", action="version", version=f"sessionshare {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new sync key").set_defaults(run=_keygen)
    fp = commands.add_parser("fingerprint", help="print the fingerprint of each configured key")
    fp.add_argument("--stdin", action="store_true", help="read the keys from standard input")
    fp.set_defaults(run=_fingerprint)
    check = commands.add_parser(
        "check", help="build the middleware from SESSIONSHARE_* variables and ping the store"
    )
    check.add_argument(
        "role", nargs="?", choices=["idp", "remote"],
        help="which middleware to build (default: guessed from the variables that are set)",
    )
    check.set_defaults(run=_check)
    options = commands.add_parser(
        "options", help="print the options table (docs/options.md) or a constructor's :param: lines"
    )
    form = options.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="the options page table (default)")
    form.add_argument("--docstring", choices=ROLES, help="the :param: lines of one middleware")
    options.add_argument("--shell", choices=["wsgi", "asgi"], default="wsgi",
                         help="with --docstring: the WSGI (default) or the ASGI middleware")
    options.set_defaults(run=_options)
    add_sessions_command(commands)
    demo = commands.add_parser("demo", help="run an IdP and four remote apps on this machine")
    demo.add_argument("--redis", metavar="URL", help="use this Redis instead of the embedded store")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000,
                      help="the IdP's port; the other sites take the next four")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    if args.command == "options" and args.shell != "wsgi" and not args.docstring:
        # The table covers both shells: a --shell that changes nothing must not pass silently.
        options.error("--shell goes with --docstring idp|remote (the table covers both shells)")
    return int(args.run(args))
