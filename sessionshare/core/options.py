"""Every option of both middlewares, declared once: type, default, meaning, variable.

Each option is declared once, in two parts joined by name when this module is
imported: its **type**, in the typed dicts below (what mypy checks a
middleware's keyword arguments against, and which options each role and
shell take), and the **rest** in :data:`OPTIONS`: default, meaning, check,
``SESSIONSHARE_*`` variable. Everything else derives from them: the
middlewares' signatures and ``:param:`` lines (:mod:`sessionshare.core.optiondocs`),
the one round of checks, ``from_env`` and ``python -m sessionshare check``
(:mod:`sessionshare.core.configure`), the documentation's options page and
the Django ``SESSIONSHARE`` setting's reader.

    [option.name for option in options_for("remote")][:4]
    # ['store', 'key', 'app_url', 'idp_url']
    RemoteSessionMiddleware(app, ..., idle_timeout="1800", logout_path="logout")
    # ConfigurationError: idle_timeout must be a positive number of seconds, not '1800'
    # (str); logout_path must be an absolute path: a leading '/', no query, no spaces ...
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ForwardRef, Literal, TypedDict

from ..crypto import AllowList, SyncKey
from ..crypto.allowlist import DEFAULT_CALLBACK_PATH
from ..store import AsyncSessionStore, MemoryStore, SessionStore
from . import option_checks as checks
from .events import EventHook
from .session import Session
from .tickets import CLOCK_LEEWAY

if TYPE_CHECKING:
    from typing_extensions import Required

__all__ = [
    "DEFAULT_STORE_URL", "OPTIONS", "REQUIRED", "ROLES", "SHELLS", "AsyncIdpOptions",
    "AsyncRemoteOptions", "Authorize", "IdpOptions", "IdpSideOptions", "Option", "Protect",
    "RemoteOptions", "RemoteSideOptions", "Role", "SameSite", "Shell", "SideOptions",
    "make_async_store", "make_store", "options_for",
]

Role = Literal["idp", "remote"]
ROLES: tuple[Role, ...] = ("idp", "remote")
SameSite = Literal["Lax", "Strict", "None"]
#: The server interface a middleware speaks: the store's type differs between them.
Shell = Literal["wsgi", "asgi"]
SHELLS: tuple[Shell, ...] = ("wsgi", "asgi")
#: ``True`` (every path), ``False``, path prefixes, or a predicate on the server
#: interface's own request (the WSGI environ, the ASGI scope).
Protect = bool | Sequence[str] | Callable[[Any], bool]
#: ``authorize(session, remote_origin) -> bool``: may this user go on to that app?
Authorize = Callable[[Session, str], bool]
DEFAULT_STORE_URL = "redis://127.0.0.1:6379/0"


# -- the types: what each middleware takes, as mypy checks it ------------------------------
class SideOptions(TypedDict, total=False):
    """The options of both roles, whatever the shell (``store`` is the shell's)."""

    key: Required[SyncKey | str]
    app_url: Required[str]
    user_key: str
    token_ttl: int
    idle_timeout: int
    absolute_timeout: int
    max_remember: int | None
    cookie_name: str | None
    cookie_secure: bool
    allow_insecure: bool
    cookie_samesite: SameSite
    cookie_domain: str | None
    cookie_path: str
    cookie_httponly: bool
    cookie_partitioned: bool
    cookie_max_age: int | None
    cookie_refresh: bool
    cookie_spelling: Mapping[str, str] | None
    key_prefix: str
    max_session_bytes: int
    callback_path: str
    logout_path: str
    logout_redirect: str
    websocket_origins: Sequence[str]
    on_event: EventHook | None
    quiet_startup: bool
    clock: Callable[[], float]


class IdpSideOptions(SideOptions, total=False):
    """What :class:`~sessionshare.core.idp.IdpSide` takes: the IdP's options but the store."""

    known_remote_hosts: Required[AllowList | Iterable[str] | str]
    login_path: str
    authorize: Authorize | None
    max_sessions_per_user: int | None
    strict: bool


class RemoteSideOptions(SideOptions, total=False):
    """What :class:`~sessionshare.core.remote.RemoteSide` takes: a remote's options but the
    store."""

    idp_url: Required[str]
    protect: Protect
    passive: bool | Sequence[str]
    passive_ttl: int
    max_auth_age: int | Mapping[str, int] | None
    state_ttl: int
    state_cookie_name: str
    token_leeway: float


class IdpOptions(IdpSideOptions, total=False):
    """The keyword arguments of :class:`sessionshare.IdpAuthMiddleware` (WSGI)."""

    store: Required[SessionStore]


class RemoteOptions(RemoteSideOptions, total=False):
    """The keyword arguments of :class:`sessionshare.RemoteSessionMiddleware` (WSGI)."""

    store: Required[SessionStore]


class AsyncIdpOptions(IdpSideOptions, total=False):
    """The keyword arguments of :class:`sessionshare.asgi.IdpAuthMiddleware`."""

    store: Required[AsyncSessionStore | MemoryStore]


class AsyncRemoteOptions(RemoteSideOptions, total=False):
    """The keyword arguments of :class:`sessionshare.asgi.RemoteSessionMiddleware`."""

    store: Required[AsyncSessionStore | MemoryStore]


#: Each middleware's typed dict, by role and shell; ``None``: the side's (no store).
TYPED: dict[tuple[Role, Shell | None], type[Any]] = {
    ("idp", "wsgi"): IdpOptions, ("remote", "wsgi"): RemoteOptions,
    ("idp", "asgi"): AsyncIdpOptions, ("remote", "asgi"): AsyncRemoteOptions,
    ("idp", None): IdpSideOptions, ("remote", None): RemoteSideOptions,
}


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


# -- the rest: default, meaning, check, variable --------------------------------------------
@dataclass(frozen=True)
class Option:
    """One keyword argument of the middlewares: default, meaning, check, variable, type."""

    #: The keyword argument's name.
    name: str
    #: The default, or :data:`REQUIRED`.
    default: Any
    #: What it means, one phrase without a final period.
    help: str
    #: Checks a value: a message naming the problem, or None when it is fine.
    check: checks.Check
    #: The ``SESSIONSHARE_*`` variable ``from_env`` reads it from, if any.
    env: str | None = None
    #: Turns the variable's text into the argument.
    parse: Callable[[str], Any] = checks.verbatim
    #: The variable's default text when it differs from the argument's default.
    env_default: str | None = None
    #: What differs for the ASGI middlewares (``help``, ``check``, ``parse``), e.g. an
    #: asyncio store; see :func:`options_for`.
    asgi: Mapping[str, Any] | None = None
    #: The annotation, as the middleware's typed dict spells it (filled in from it).
    annotation: str = ""
    #: The middlewares that take it (filled in from the typed dicts).
    roles: frozenset[Role] = frozenset()
    #: The shells whose middlewares take it (filled in from the typed dicts).
    shells: frozenset[Shell] = frozenset()

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
        """The ``:param:`` text of the middlewares' docstrings, on one line."""
        default = self.default_text()
        # Markdown code spans (the options page's form) become reST literals.
        meaning = re.sub(r"`([^`]+)`", r"``\1``", self.help)
        text = f"{meaning[0].upper()}{meaning[1:]}."
        text += " Required." if default is None else f" Default ``{default}``."
        if self.env:
            text += f" From the environment: ``{self.env}``."
        return text


_DECLARED: tuple[Option, ...] = (
    Option("store", REQUIRED,
           "the shared session store (`RedisStore`, `MemoryStore`, any `SessionStore`); "
           "as a variable: `redis://host:port/db`, `rediss://...`, or `memory://` "
           "(one process only)",
           check=checks.session_store, env="SESSIONSHARE_STORE_URL",
           parse=make_store, env_default=DEFAULT_STORE_URL,
           asgi={"help": "the shared session store (`AsyncRedisStore`, `MemoryStore`, any "
                         "`AsyncSessionStore`: never one that blocks the event loop); as a "
                         "variable: `redis://host:port/db`, `rediss://...`, or `memory://` "
                         "(one process only)",
                 "check": checks.async_session_store, "parse": make_async_store}),
    Option("key", REQUIRED,
           "shared secret(s), newest first, from `python -m sessionshare keygen`",
           check=checks.sync_key, env="SESSIONSHARE_SYNC_KEY", parse=SyncKey.parse),
    Option("app_url", REQUIRED,
           "this app's public origin, e.g. `https://shop.example`",
           check=checks.origin_url, env="SESSIONSHARE_APP_URL"),
    Option("idp_url", REQUIRED,
           "the IdP's full login URL, e.g. `https://id.example/login`",
           check=checks.origin_url, env="SESSIONSHARE_IDP_URL"),
    Option("known_remote_hosts", REQUIRED,
           "allow-list of the remote apps: host, host:port, `*.domain` or origin, "
           "comma separated",
           check=checks.allow_list, env="SESSIONSHARE_KNOWN_REMOTE_HOSTS", parse=checks.hosts_text),
    Option("user_key", "user",
           "session key naming the signed-in user: a non-empty string (or a non-zero number, "
           "a non-empty list or object); `\"\"`, `0`, `false`, `true` or `null` mean signed out",
           check=checks.nonempty_text, env="SESSIONSHARE_USER_KEY"),
    Option("token_ttl", 60,
           "seconds a hand-off token stays valid",
           check=checks.seconds, env="SESSIONSHARE_TOKEN_TTL", parse=checks.int_text),
    Option("idle_timeout", 30 * 60,
           "seconds of inactivity before the session ends (sliding)",
           check=checks.seconds, env="SESSIONSHARE_IDLE_TIMEOUT", parse=checks.int_text),
    Option("absolute_timeout", 8 * 60 * 60,
           "seconds after the latest sign-in (or creation, if never signed in) "
           "when the session ends regardless",
           check=checks.seconds, env="SESSIONSHARE_ABSOLUTE_TIMEOUT", parse=checks.int_text),
    Option("max_remember", None,
           "longest remembered sign-in (`Session.remember()`), in seconds, this app honours "
           "past its own `idle_timeout` and `absolute_timeout`; unset: a remote enforces the "
           "stricter of its own limits and the session's, remembered or not, and the IdP "
           "honours what its own `remember()` grants",
           check=checks.optional_seconds, env="SESSIONSHARE_MAX_REMEMBER",
           parse=checks.int_text),
    Option("cookie_name", None,
           "session cookie name; unset: `__Host-sessionshare` on an https app without "
           "`cookie_domain` (no sibling subdomain can set or shadow it), else `sessionshare`",
           check=checks.optional_nonempty_text, env="SESSIONSHARE_COOKIE_NAME"),
    Option("cookie_secure", True,
           "Secure cookie flag; off only for a local http demo",
           check=checks.flag, env="SESSIONSHARE_COOKIE_SECURE", parse=checks.bool_text),
    Option("allow_insecure", False,
           "on an https `app_url`, accept settings that send the session in clear: "
           "`cookie_secure=False`, at the IdP `http://` allow-list entries, and `http://` "
           "`websocket_origins` (refused otherwise; a test bed only)",
           check=checks.flag, env="SESSIONSHARE_ALLOW_INSECURE", parse=checks.bool_text),
    Option("cookie_samesite", "Lax",
           "SameSite cookie attribute: Lax, Strict or None",
           check=checks.samesite, env="SESSIONSHARE_COOKIE_SAMESITE"),
    Option("cookie_domain", None,
           "Domain attribute of the session cookie (off: no sibling subdomain sees it)",
           check=checks.cookie_domain),
    Option("cookie_path", "/",
           "Path attribute of the session cookie: the URL path under which the browser sends "
           "it (an app mounted under a prefix, e.g. `/shop`); the sign-out and every other "
           "answer clear and set it at that path, and the default `__Host-` name needs `/`",
           check=checks.cookie_path, env="SESSIONSHARE_COOKIE_PATH"),
    Option("cookie_httponly", True,
           "HttpOnly flag of the session cookie; `False` lets this app's scripts read the "
           "cookie, a bearer credential for this app's view of the shared session: an XSS "
           "on any of its pages can then carry the session away (docs/options.md)",
           check=checks.flag, env="SESSIONSHARE_COOKIE_HTTPONLY", parse=checks.bool_text),
    Option("cookie_partitioned", False,
           "Partitioned attribute of the session cookie (CHIPS: a cookie of its own per "
           "top-level site, for an app embedded in other sites' pages); needs `cookie_secure`",
           check=checks.flag, env="SESSIONSHARE_COOKIE_PARTITIONED", parse=checks.bool_text),
    Option("cookie_max_age", None,
           "seconds the session cookie lasts: every `Set-Cookie` of it has `Max-Age` and "
           "`Expires`, and a cookie older than this reads as none at this app (the shared "
           "session lives on); 0 or less: already expired; unset: it ends with the browser "
           "(a remembered sign-in still persists; the shorter of the two holds)",
           check=checks.optional_cookie_age, env="SESSIONSHARE_COOKIE_MAX_AGE",
           parse=checks.int_text),
    Option("cookie_refresh", True,
           "with a persistent cookie (`cookie_max_age`), re-send it on every request that "
           "carries a valid one, so that it lasts `cookie_max_age` from the latest visit "
           "(such answers say `Vary: Cookie`); `False`: from the last answer that changed the "
           "session (which sets it anew)",
           check=checks.flag, env="SESSIONSHARE_COOKIE_REFRESH", parse=checks.bool_text),
    Option("cookie_spelling", None,
           "how the session cookie's attribute names are written, e.g. `{\"Path\": \"path\"}` "
           "(names are case-insensitive to browsers: only the case may change), for code "
           "that compares `Set-Cookie` text; unset: RFC 6265's (`Path`, `HttpOnly`)",
           check=checks.cookie_spelling),
    Option("key_prefix", "sessionshare:",
           "prefix of every store key",
           check=checks.any_text, env="SESSIONSHARE_KEY_PREFIX"),
    Option("max_session_bytes", 64 * 1024,
           "largest shared session, in bytes of key names and JSON text; a write past it "
           "raises `SessionTooLarge` and stores nothing",
           check=checks.byte_count, env="SESSIONSHARE_MAX_SESSION_BYTES",
           parse=checks.bytes_text),
    Option("login_path", "/login",
           "the IdP path remotes send browsers to",
           check=checks.absolute_path, env="SESSIONSHARE_LOGIN_PATH"),
    Option("callback_path", DEFAULT_CALLBACK_PATH,
           "the remote path that receives the token (the IdP accepts callbacks "
           "to allow-listed hosts at this path)",
           # Also the state cookies' Path: held to a cookie path's characters.
           check=checks.cookie_path, env="SESSIONSHARE_CALLBACK_PATH"),
    Option("logout_path", "/_sessionshare/logout",
           "POST here to sign out everywhere",
           check=checks.absolute_path, env="SESSIONSHARE_LOGOUT_PATH"),
    Option("logout_redirect", "/",
           "where the browser goes after signing out: a local path or an http(s) URL",
           check=checks.redirect_target),
    Option("protect", True,
           "which paths need a sign-in: `True` (all), `False`, a list of path prefixes, "
           "or `predicate(environ) -> bool`",
           check=checks.protect,
           asgi={"help": "which paths need a sign-in: `True` (all), `False`, a list of path "
                         "prefixes, or `predicate(scope) -> bool`"}),
    Option("passive", False,
           "passive sign-in check on public pages (`True`, or path prefixes): a browser "
           "with no session is sent through the IdP once, with no login form, and comes "
           "back signed in or told it is not",
           check=checks.passive),
    Option("passive_ttl", 5 * 60,
           "seconds a browser found not signed in by the passive check is not checked again",
           check=checks.seconds, env="SESSIONSHARE_PASSIVE_TTL", parse=checks.int_text),
    Option("max_auth_age", None,
           "step-up: seconds since the sign-in past which a protected path sends the user "
           "to the IdP to enter the password again (a number for every protected path, or "
           "path prefix -> seconds; the longest prefix wins); unset: any sign-in will do",
           check=checks.max_auth_age),
    Option("authorize", None,
           "`authorize(session, remote_origin) -> bool`; False answers 403",
           check=checks.optional_function),
    Option("max_sessions_per_user", None,
           "most live shared sessions one user may hold; a sign-in past it ends the "
           "user's oldest sessions everywhere (unset: no limit)",
           check=checks.optional_count, env="SESSIONSHARE_MAX_SESSIONS_PER_USER",
           parse=checks.count_text),
    Option("strict", False,
           "answer 400 to a callback off the allow-list instead of showing the login page",
           check=checks.flag),
    Option("state_ttl", 10 * 60,
           "seconds a started sign-in may take (at most a day: the IdP guards the sign-in's "
           "state that long)",
           check=checks.state_lifetime),
    Option("state_cookie_name", "sessionshare_state",
           "prefix of the per-login state cookies",
           check=checks.nonempty_text),
    Option("token_leeway", float(CLOCK_LEEWAY),
           "seconds of clock skew tolerated on a token",
           check=checks.zero_or_more_seconds),
    Option("websocket_origins", (),
           "origins besides `app_url` whose pages may open websockets with the session "
           "(e.g. `https://app.shop.example`, comma separated); a handshake from any other "
           "origin, or with no `Origin`, gets no session and no user, and is refused on a "
           "protected path",
           check=checks.origins, env="SESSIONSHARE_WEBSOCKET_ORIGINS",
           parse=checks.origins_text, env_default=""),
    Option("on_event", None,
           "`on_event(name, fields)`, called for each event (`login`, `ticket_issued`, "
           "`ticket_redeemed`, `token_rejected` and every other rejection with its `reason`, "
           "`logout`, `session_expired`, `store_unavailable`, ...; docs/logging.md lists them) "
           "with a small dict that never holds a session id, cookie, ticket, token or key; "
           "an exception it raises is logged and the request goes on",
           check=checks.optional_function),
    Option("quiet_startup", False,
           "log the start-up line (role, origin, key fingerprint) at INFO; by default it is "
           "a WARNING, once per process, so that servers' default logging shows it",
           check=checks.flag, env="SESSIONSHARE_QUIET_STARTUP", parse=checks.bool_text),
    Option("clock", time.time,
           "the time source (tests inject one)",
           check=checks.function),
)


def _annotation(typed: type[Any], name: str) -> tuple[str, bool]:
    """The annotation of ``name`` in a typed dict as its source writes it, ``Required[...]``
    taken off, and whether it was there."""
    written = typed.__annotations__[name]
    text = written.__forward_arg__ if isinstance(written, ForwardRef) else written
    if not isinstance(text, str):  # annotations are strings here: see the __future__ import
        raise TypeError(f"{typed.__name__}.{name}: expected the annotation as text")
    required = text.startswith("Required[")
    return (text[len("Required["):-1] if required else text), required


def _joined() -> tuple[Option, ...]:
    """Each declared option with its type and roles from the typed dicts, held to match:
    a mismatch is a mistake in this module, found when it is imported."""
    joined = []
    for option in _DECLARED:
        roles = frozenset(role for role in ROLES
                          if option.name in TYPED[role, "wsgi"].__annotations__)
        if not roles:
            raise TypeError(f"option {option.name!r} is in no middleware's typed dict")
        annotation, required = _annotation(TYPED[min(roles), "wsgi"], option.name)
        if required != option.required:
            raise TypeError(f"option {option.name!r}: Required[...] in its typed dict if, "
                            "and only if, it has no default")
        shells = frozenset(shell for shell in SHELLS for role in roles
                           if option.name in TYPED[role, shell].__annotations__)
        joined.append(replace(option, annotation=annotation, roles=roles, shells=shells))
    names = {option.name for option in joined}
    for typed in TYPED.values():
        extra = set(typed.__annotations__) - names
        if extra:
            raise TypeError(f"{typed.__name__} has {sorted(extra)}, which OPTIONS does not declare")
    return tuple(joined)


#: Every option, in the order the middlewares take them (their WSGI form).
OPTIONS: tuple[Option, ...] = _joined()


def _for(role: Role, shell: Shell | None) -> tuple[Option, ...]:
    typed = TYPED[role, shell]
    found = []
    for option in OPTIONS:
        if option.name in typed.__annotations__:
            if shell == "asgi" and option.asgi:
                option = replace(option, **option.asgi)
            found.append(replace(option, annotation=_annotation(typed, option.name)[0]))
    return tuple(found)


_FOR = {key: _for(*key) for key in TYPED}


def options_for(role: Role, shell: Shell | None = "wsgi") -> tuple[Option, ...]:
    """The options the ``idp`` or ``remote`` middleware of ``shell`` takes, in order
    (``shell=None``: its side's, every option but the store)."""
    return _FOR[role, shell]
