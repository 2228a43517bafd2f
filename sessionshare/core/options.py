"""Every option of both middlewares, declared once: type, default, meaning, variable.

:data:`OPTIONS` is the single source. The constructors' docstrings, their
explicit keyword arguments (tests hold both to it), ``from_env`` and its
``SESSIONSHARE_*`` variables, the options table of docs/options.md and
``python -m sessionshare check`` all come from it, so adding an option is
one entry here plus its parameter in the constructor.

Validation happens at construction and reports every problem at once, each
naming the option (and the variable, when the value came from one); how one
value is checked lives in :mod:`sessionshare.core.option_checks`. A value
that could carry a secret -- the sync key -- is never echoed.

    values, problems = read_environ("remote", {"SESSIONSHARE_APP_URL": "localhost:5000"})
    problems  # ["SESSIONSHARE_SYNC_KEY is not set: ...", "SESSIONSHARE_IDP_URL is not set: ...",
              #  "SESSIONSHARE_APP_URL: app_url='localhost:5000' is not a valid URL ..."]
    RemoteSessionMiddleware(app, ..., idle_timeout="1800", logout_path="logout")
    # ConfigurationError: idle_timeout must be a positive number of seconds, not '1800'
    # (str); logout_path must be an absolute path: a leading '/', no query, no spaces ...
"""

from __future__ import annotations

import difflib
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from ..crypto import AllowList, SyncKey, canonical_origin
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..errors import ConfigurationError
from ..store import AsyncSessionStore, MemoryStore, SessionStore
from . import option_checks as checks
from .tickets import CLOCK_LEEWAY

__all__ = [
    "DEFAULT_STORE_URL",
    "OPTIONS",
    "REQUIRED",
    "Option",
    "Role",
    "SameSite",
    "Shell",
    "check_options",
    "make_async_store",
    "make_store",
    "option_warnings",
    "options_for",
    "read_environ",
    "unknown_variables",
]

Role = Literal["idp", "remote"]
SameSite = Literal["Lax", "Strict", "None"]
#: The server interface a middleware speaks: a few options differ in type between them.
Shell = Literal["wsgi", "asgi"]
DEFAULT_STORE_URL = "redis://127.0.0.1:6379/0"
BOTH: frozenset[Role] = frozenset(("idp", "remote"))
IDP: frozenset[Role] = frozenset(("idp",))
REMOTE: frozenset[Role] = frozenset(("remote",))
SHELLS: frozenset[Shell] = frozenset(("wsgi", "asgi"))

#: A problem message for an option's value, or None when the value is fine.
Check = Callable[[str, Any], str | None]


class _Required:
    """The default of an option that has none."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def make_store(url: str) -> SessionStore:
    """``memory://`` for an in-process store, else a Redis URL."""
    if url.startswith("memory:"):
        return MemoryStore()
    from ..store.redis import RedisStore  # only now: redis-py stays unimported otherwise

    return RedisStore.from_url(url)


def make_async_store(url: str) -> AsyncSessionStore | MemoryStore:
    """``memory://`` for an in-process store, else a Redis URL, for the ASGI middlewares."""
    if url.startswith("memory:"):
        return MemoryStore()
    from ..store.asyncredis import AsyncRedisStore  # only now, as in make_store

    return AsyncRedisStore.from_url(url)


@dataclass(frozen=True)
class Option:
    """One constructor argument: its type, default, meaning and variable."""

    #: The keyword argument's name.
    name: str
    #: The annotation, exactly as the constructors spell it (a test compares them).
    annotation: str
    #: The default, or :data:`REQUIRED`.
    default: Any
    #: The middlewares that take it.
    roles: frozenset[Role]
    #: What it means, one phrase without a final period.
    help: str
    #: Checks a value: a message naming the problem, or None when it is fine
    #: (``checks.anything`` for an option checked where it is interpreted).
    check: Check
    #: The ``SESSIONSHARE_*`` variable ``from_env`` reads it from, if any.
    env: str | None = None
    #: Turns the variable's text into the argument.
    parse: Callable[[str], Any] = checks.verbatim
    #: The variable's default text when it differs from the argument's default.
    env_default: str | None = None
    #: What differs for the ASGI middlewares (``annotation``, ``help``, ``check``,
    #: ``parse``), e.g. an asyncio store; see :func:`options_for`.
    asgi: Mapping[str, Any] | None = None
    #: The shells whose middlewares take it (both, unless one has no use for it).
    shells: frozenset[Shell] = SHELLS

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_text(self) -> str | None:
        """The default as Python source (``"Lax"``, ``60``, ``time.time``); None if required."""
        if self.required:
            return None
        if isinstance(self.default, str):
            return f'"{self.default}"'
        if callable(self.default):
            return f"{self.default.__module__}.{self.default.__qualname__}"
        return repr(self.default)

    def env_text(self) -> str | None:
        """The text the variable defaults to ("" for an option unset by default); None when
        the variable must be set."""
        if self.env_default is not None or self.required:
            return self.env_default
        if self.default is None:
            return ""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)

    def doc(self) -> str:
        """The ``:param:`` text of the constructors' docstrings, on one line."""
        default = self.default_text()
        # Markdown code spans (the options page's form) become reST literals.
        meaning = re.sub(r"`([^`]+)`", r"``\1``", self.help)
        text = f"{meaning[0].upper()}{meaning[1:]}."
        text += " Required." if default is None else f" Default ``{default}``."
        if self.env:
            text += f" From the environment: ``{self.env}``."
        return text


OPTIONS: tuple[Option, ...] = (
    Option("store", "SessionStore", REQUIRED, BOTH,
           "the shared session store (`RedisStore`, `MemoryStore`, any `SessionStore`); "
           "as a variable: `redis://host:port/db`, `rediss://...`, or `memory://` "
           "(one process only)",
           check=checks.session_store, env="SESSIONSHARE_STORE_URL",
           parse=make_store, env_default=DEFAULT_STORE_URL,
           asgi={"annotation": "AsyncSessionStore | MemoryStore",
                 "help": "the shared session store (`AsyncRedisStore`, `MemoryStore`, any "
                         "`AsyncSessionStore`: never one that blocks the event loop); as a "
                         "variable: `redis://host:port/db`, `rediss://...`, or `memory://` "
                         "(one process only)",
                 "check": checks.async_session_store, "parse": make_async_store}),
    Option("key", "SyncKey | str", REQUIRED, BOTH,
           "shared secret(s), newest first, from `python -m sessionshare keygen`",
           check=checks.sync_key, env="SESSIONSHARE_SYNC_KEY", parse=SyncKey.parse),
    Option("app_url", "str", REQUIRED, BOTH,
           "this app's public origin, e.g. `https://shop.example`",
           check=checks.origin_url, env="SESSIONSHARE_APP_URL"),
    Option("idp_url", "str", REQUIRED, REMOTE,
           "the IdP's full login URL, e.g. `https://id.example/login`",
           check=checks.origin_url, env="SESSIONSHARE_IDP_URL"),
    Option("known_remote_hosts", "AllowList | Iterable[str] | str", REQUIRED, IDP,
           "allow-list of the remote apps: host, host:port, `*.domain` or origin, "
           "comma separated",
           check=checks.allow_list, env="SESSIONSHARE_KNOWN_REMOTE_HOSTS", parse=checks.hosts_text),
    Option("user_key", "str", "user", BOTH,
           "session key naming the signed-in user: a non-empty string (or a non-zero number, "
           "a non-empty list or object); `\"\"`, `0`, `false`, `true` or `null` mean signed out",
           check=checks.nonempty_text, env="SESSIONSHARE_USER_KEY"),
    Option("token_ttl", "int", 60, BOTH,
           "seconds a hand-off token stays valid",
           check=checks.seconds, env="SESSIONSHARE_TOKEN_TTL", parse=checks.int_text),
    Option("idle_timeout", "int", 30 * 60, BOTH,
           "seconds of inactivity before the session ends (sliding)",
           check=checks.seconds, env="SESSIONSHARE_IDLE_TIMEOUT", parse=checks.int_text),
    Option("absolute_timeout", "int", 8 * 60 * 60, BOTH,
           "seconds after the latest sign-in (or creation, if never signed in) "
           "when the session ends regardless",
           check=checks.seconds, env="SESSIONSHARE_ABSOLUTE_TIMEOUT", parse=checks.int_text),
    Option("max_remember", "int | None", None, BOTH,
           "longest remembered sign-in (`Session.remember()`), in seconds, this app honours "
           "past its own `idle_timeout` and `absolute_timeout`; unset: a remote enforces the "
           "stricter of its own limits and the session's, remembered or not, and the IdP "
           "honours what its own `remember()` grants",
           check=checks.optional_seconds, env="SESSIONSHARE_MAX_REMEMBER",
           parse=checks.int_text),
    Option("cookie_name", "str | None", None, BOTH,
           "session cookie name; unset: `__Host-sessionshare` on an https app without "
           "`cookie_domain` (no sibling subdomain can set or shadow it), else `sessionshare`",
           check=checks.optional_nonempty_text, env="SESSIONSHARE_COOKIE_NAME"),
    Option("cookie_secure", "bool", True, BOTH,
           "Secure cookie flag; off only for a local http demo",
           check=checks.flag, env="SESSIONSHARE_COOKIE_SECURE", parse=checks.bool_text),
    Option("allow_insecure", "bool", False, BOTH,
           "on an https `app_url`, accept settings that send the session in clear: "
           "`cookie_secure=False`, at the IdP `http://` allow-list entries, and `http://` "
           "`websocket_origins` (refused otherwise; a test bed only)",
           check=checks.flag, env="SESSIONSHARE_ALLOW_INSECURE", parse=checks.bool_text),
    Option("cookie_samesite", "SameSite", "Lax", BOTH,
           "SameSite cookie attribute: Lax, Strict or None",
           check=checks.samesite, env="SESSIONSHARE_COOKIE_SAMESITE"),
    Option("cookie_domain", "str | None", None, BOTH,
           "Domain attribute of the session cookie (off: no sibling subdomain sees it)",
           check=checks.optional_text),
    Option("key_prefix", "str", "sessionshare:", BOTH,
           "prefix of every store key",
           check=checks.any_text, env="SESSIONSHARE_KEY_PREFIX"),
    Option("max_session_bytes", "int", 64 * 1024, BOTH,
           "largest shared session, in bytes of key names and JSON text; a write past it "
           "raises `SessionTooLarge` and stores nothing",
           check=checks.byte_count, env="SESSIONSHARE_MAX_SESSION_BYTES",
           parse=checks.bytes_text),
    Option("login_path", "str", "/login", IDP,
           "the IdP path remotes send browsers to",
           check=checks.absolute_path, env="SESSIONSHARE_LOGIN_PATH"),
    Option("callback_path", "str", DEFAULT_CALLBACK_PATH, BOTH,
           "the remote path that receives the token (the IdP accepts callbacks "
           "to allow-listed hosts at this path)",
           check=checks.absolute_path, env="SESSIONSHARE_CALLBACK_PATH"),
    Option("logout_path", "str", "/_sessionshare/logout", BOTH,
           "POST here to sign out everywhere",
           check=checks.absolute_path, env="SESSIONSHARE_LOGOUT_PATH"),
    Option("logout_redirect", "str", "/", BOTH,
           "where the browser goes after signing out: a local path or an http(s) URL",
           check=checks.nonempty_text),
    Option("protect", "Protect", True, REMOTE,
           "which paths need a sign-in: `True` (all), `False`, a list of path prefixes, "
           "or `predicate(environ) -> bool`",
           check=checks.anything,
           asgi={"help": "which paths need a sign-in: `True` (all), `False`, a list of path "
                         "prefixes, or `predicate(scope) -> bool`"}),
    Option("passive", "bool | Sequence[str]", False, REMOTE,
           "passive sign-in check on public pages (`True`, or path prefixes): a browser "
           "with no session is sent through the IdP once, with no login form, and comes "
           "back signed in or told it is not",
           check=checks.passive),
    Option("passive_ttl", "int", 5 * 60, REMOTE,
           "seconds a browser found not signed in by the passive check is not checked again",
           check=checks.seconds, env="SESSIONSHARE_PASSIVE_TTL", parse=checks.int_text),
    Option("max_auth_age", "int | Mapping[str, int] | None", None, REMOTE,
           "step-up: seconds since the sign-in past which a protected path sends the user "
           "to the IdP to enter the password again (a number for every protected path, or "
           "path prefix -> seconds; the longest prefix wins); unset: any sign-in will do",
           check=checks.max_auth_age),
    Option("authorize", "Authorize | None", None, IDP,
           "`authorize(session, remote_origin) -> bool`; False answers 403",
           check=checks.optional_function),
    Option("max_sessions_per_user", "int | None", None, IDP,
           "most live shared sessions one user may hold; a sign-in past it ends the "
           "user's oldest sessions everywhere (unset: no limit)",
           check=checks.optional_count, env="SESSIONSHARE_MAX_SESSIONS_PER_USER",
           parse=checks.count_text),
    Option("strict", "bool", False, IDP,
           "answer 400 to a callback off the allow-list instead of showing the login page",
           check=checks.flag),
    Option("state_ttl", "int", 10 * 60, REMOTE,
           "seconds a started sign-in may take (at most a day: the IdP guards the sign-in's "
           "state that long)",
           check=checks.seconds),
    Option("state_cookie_name", "str", "sessionshare_state", REMOTE,
           "prefix of the per-login state cookies",
           check=checks.nonempty_text),
    Option("token_leeway", "float", float(CLOCK_LEEWAY), REMOTE,
           "seconds of clock skew tolerated on a token",
           check=checks.zero_or_more_seconds),
    Option("websocket_origins", "Sequence[str]", (), BOTH,
           "origins besides `app_url` whose pages may open websockets with the session "
           "(e.g. `https://app.shop.example`, comma separated); a handshake from any other "
           "origin, or with no `Origin`, gets no session and no user, and is refused on a "
           "protected path",
           check=checks.origins, env="SESSIONSHARE_WEBSOCKET_ORIGINS",
           parse=checks.origins_text, env_default=""),
    Option("on_event", "EventHook | None", None, BOTH,
           "`on_event(name, fields)`, called for each event (`login`, `ticket_issued`, "
           "`ticket_redeemed`, `token_rejected` and every other rejection with its `reason`, "
           "`logout`, `session_expired`, `store_unavailable`, ...; docs/logging.md lists them) "
           "with a small dict that never holds a session id, cookie, ticket, token or key; "
           "an exception it raises is logged and the request goes on",
           check=checks.optional_function),
    Option("quiet_startup", "bool", False, BOTH,
           "log the start-up line (role, origin, key fingerprint) at INFO; by default it is "
           "a WARNING, once per process, so that servers' default logging shows it",
           check=checks.flag, env="SESSIONSHARE_QUIET_STARTUP", parse=checks.bool_text),
    Option("clock", "Callable[[], float]", time.time, BOTH,
           "the time source (tests inject one)",
           check=checks.function),
)
_BY_NAME = {option.name: option for option in OPTIONS}
#: The same options as the ASGI middlewares take them.
_ASGI_OPTIONS = tuple(
    replace(option, **option.asgi) if option.asgi else option for option in OPTIONS
)


def options_for(role: Role, shell: Shell = "wsgi") -> tuple[Option, ...]:
    """The options the ``idp`` or ``remote`` middleware of ``shell`` takes, in order."""
    declared = _ASGI_OPTIONS if shell == "asgi" else OPTIONS
    return tuple(option for option in declared
                 if role in option.roles and shell in option.shells)


# -- rules between options ---------------------------------------------------------
def _cross_problems(
    role: Role, values: Mapping[str, Any], bad: Collection[str]
) -> list[tuple[str, str]]:
    """(option to blame, message) for combinations that cannot work.

    Only options whose own value passed its check (not in ``bad``) are compared.
    """
    def value(name: str) -> Any:
        return values.get(name, _BY_NAME[name].default)

    found: list[tuple[str, str]] = []
    app_url = value("app_url")
    if (
        "app_url" in values and not {"app_url", "cookie_secure"} & set(bad)
        and value("cookie_secure") and canonical_origin(app_url).startswith("http:")
    ):
        found.append(("app_url", (
            f"app_url {app_url!r} is not https but cookies are Secure; serve over https, "
            "or pass cookie_secure=False (SESSIONSHARE_COOKIE_SECURE=false) explicitly "
            "for a local http demo"
        )))
    https = (
        "app_url" in values and "app_url" not in bad
        and canonical_origin(app_url).startswith("https:")
    )
    if https and "allow_insecure" not in bad and not value("allow_insecure"):
        # An https app with cookie_secure=False sends its cookie -- a bearer credential
        # for the shared session -- over plain http too, to anyone on the network who
        # can make the browser load one http URL of the host (SSL stripping).
        if "cookie_secure" not in bad and not value("cookie_secure"):
            found.append(("cookie_secure", (
                f"cookie_secure=False on https app_url {app_url!r}: the session cookie would "
                "also travel over plain http, where anyone on the network reads it; keep "
                "cookie_secure=True, or pass allow_insecure=True "
                "(SESSIONSHARE_ALLOW_INSECURE=true) if this is only a test bed"
            )))
        if role == "idp" and "known_remote_hosts" in values and "known_remote_hosts" not in bad:
            insecure = _plain_http_entries(values["known_remote_hosts"])
            if insecure:
                found.append(("known_remote_hosts", (
                    f"known_remote_hosts allows plain http callbacks ({', '.join(insecure)}) "
                    f"on https app_url {app_url!r}: the hand-off token and that app's session "
                    "cookie would travel in clear; list the remote as https, or pass "
                    "allow_insecure=True (SESSIONSHARE_ALLOW_INSECURE=true) if this is only "
                    "a test bed"
                )))
    if (
        role == "remote" and {"app_url", "idp_url"} <= set(values)
        and not {"app_url", "idp_url"} & set(bad)
        and canonical_origin(value("idp_url")) == canonical_origin(app_url)
    ):
        found.append(("idp_url", (
            f"idp_url {value('idp_url')!r} is on this app's own origin ({app_url!r}): every "
            "sign-in would be sent back here, in an endless redirect loop; set idp_url to "
            "the IdP's login URL (the IdP's app_url and login_path, e.g. "
            "https://id.example/login)"
        )))
    # A request is routed by the first path it matches: a shared path would
    # silently switch one endpoint off.
    first, second = ("logout_path", "login_path" if role == "idp" else "callback_path")
    if not {first, second} & set(bad) and value(first) == value(second):
        found.append((second, (
            f"{second} {value(second)!r} is also the {first}: give each its own absolute path"
        )))
    return found


def _plain_http_entries(hosts: Any) -> tuple[str, ...]:
    """The ``http://`` entries of an allow-list value (an AllowList, text or entries)."""
    if isinstance(hosts, AllowList):
        return hosts.plain_http_entries
    if not isinstance(hosts, (str, Collection)):
        return ()  # a one-shot iterator: IdpAuthMiddleware reads it into a tuple first
    try:
        return AllowList(hosts).plain_http_entries
    except ConfigurationError:
        return ()  # a bad entry: the IdP reports it when it builds its allow-list


def _problems(
    role: Role, values: Mapping[str, Any], sources: Mapping[str, str], shell: Shell = "wsgi"
) -> list[str]:
    def blamed(name: str, message: str) -> str:
        source = sources.get(name)
        return f"{source}: {message}" if source else message

    problems: list[str] = []
    bad: list[str] = []
    for option in options_for(role, shell):
        if option.name in values:
            message = option.check(option.name, values[option.name])
            if message is not None:
                problems.append(blamed(option.name, message))
                bad.append(option.name)
    problems.extend(blamed(name, message) for name, message in _cross_problems(role, values, bad))
    return problems


def check_options(role: Role, values: Mapping[str, Any], shell: Shell = "wsgi") -> None:
    """Raise one :class:`ConfigurationError` listing every problem with ``values``.

    ``values`` holds the constructor's arguments by name (its ``locals()``);
    names that are not options of ``role`` are ignored.
    """
    problems = _problems(role, values, {}, shell)
    if problems:
        raise ConfigurationError("; ".join(problems))


def option_warnings(role: Role, values: Mapping[str, Any]) -> list[str]:
    """Settings that build a middleware but probably not the deployment meant: for
    ``python -m sessionshare check`` and the Django system checks (the middlewares
    themselves accept them: each has a use in a test or a demo)."""
    found: list[str] = []
    idp_url = values.get("idp_url")
    if role == "remote" and isinstance(idp_url, str) and checks.origin_url("", idp_url) is None:
        origin = canonical_origin(idp_url)
        if not urlsplit(idp_url).path:  # "https://id.example/" says "/" on purpose
            found.append(
                f"idp_url {idp_url!r} has no path: sign-ins would go to the IdP's home page, "
                "while the IdP answers them at its login_path (/login unless changed there); "
                f"write the full login URL, e.g. {origin}/login"
            )
    if isinstance(values.get("store"), MemoryStore):
        found.append(
            "store: memory:// (a MemoryStore) keeps the sessions in each process's own "
            "memory: the IdP, every remote and every worker of each would have their own, "
            "and no hand-off could find the IdP's session; fine for tests or a one-process "
            "demo, else set SESSIONSHARE_STORE_URL to redis://host:port/db"
        )
    return found


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``SESSIONSHARE_*`` variable no option reads (a typo, mostly)."""
    env = os.environ if environ is None else environ
    known = sorted(option.env for option in OPTIONS if option.env)
    found = []
    for name in sorted(env):
        if name.startswith("SESSIONSHARE_") and name not in known:
            guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            found.append(
                f"{name[:80]} is not a sessionshare setting"
                + (f" (did you mean {guess[0]}?)" if guess else "")
                + ": it is ignored (docs/options.md lists the settings)"
            )
    return found


def read_environ(
    role: Role,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, Any] | None = None,
    shell: Shell = "wsgi",
) -> tuple[dict[str, Any], list[str]]:
    """Constructor arguments from ``SESSIONSHARE_*`` variables, and every problem found.

    Arguments in ``given`` (``from_env``'s overrides) win over the variables,
    which then need not be set; the problems cover the combined arguments,
    each naming the variable its value came from. ``shell="asgi"`` reads the
    store URL into an asyncio store.
    """
    env = os.environ if environ is None else environ
    given = given or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for option in options_for(role, shell):
        if option.name in given or option.env is None:
            continue
        text = env.get(option.env, option.env_text())
        if text is None or not text.strip():
            if option.required:
                problems.append(f"{option.env} is not set: {option.help}")
            continue
        try:
            values[option.name] = option.parse(text)
        except (ConfigurationError, ValueError) as exc:
            # Messages from SyncKey never echo key material, so they can be shown.
            problems.append(f"{option.env} is invalid ({exc}): {option.help}")
            continue
        sources[option.name] = option.env
    problems.extend(_problems(role, {**values, **given}, sources, shell))
    return values, problems

