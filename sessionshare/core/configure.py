"""The options checked once: every problem at once, then the checked options a side is built from.

:func:`checked_options` is the one round of checks (STYLE 6): each value
against its option's check (:mod:`sessionshare.core.option_checks`), then the
rules between options -- an https app with cookies that would also travel over
plain http, an ``idp_url`` on the app's own origin, two endpoints on one path.
Every problem is reported in one :class:`ConfigurationError`, each naming the
option (and the variable it came from). What passes is a frozen
:class:`CheckedOptions`, defaults filled in, which the sides are built from
without checking again: a side built directly refuses exactly what a
middleware refuses.

``read_environ`` reads the ``SESSIONSHARE_*`` variables for ``from_env`` and
``python -m sessionshare check``. A value that could carry a secret -- the
sync key -- is never echoed.

    values, problems = read_environ("remote", {"SESSIONSHARE_APP_URL": "localhost:5000"})
    problems  # ["SESSIONSHARE_SYNC_KEY is not set: ...", "SESSIONSHARE_IDP_URL is not set: ...",
              #  "SESSIONSHARE_APP_URL: app_url='localhost:5000' is not a valid URL ..."]
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Iterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ..crypto import AllowList, canonical_origin
from ..errors import ConfigurationError
from ..store import MemoryStore
from . import option_checks as checks
from .cookies import CookieSpec, session_cookie
from .options import OPTIONS, Role, Shell, options_for

__all__ = [
    "COOKIE_ATTRIBUTES", "CheckedOptions", "check_options", "checked_options",
    "followed_cookie", "option_warnings", "read_environ", "unknown_variables",
]

_BY_NAME = {option.name: option for option in OPTIONS}


class CheckedOptions(Mapping[str, Any]):
    """Every option of one role, checked together, its defaults filled in.

    What a side is built from: read as attributes (``options.idle_timeout``)
    or as a mapping. Frozen: a built side never sees its options change.
    Made only by :func:`checked_options`.
    """

    __slots__ = ("_values", "role", "shell")

    def __init__(self, role: Role, shell: Shell | None, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "role", role)
        #: The shell whose middleware took them; None for a side built directly.
        object.__setattr__(self, "shell", shell)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    role: Role
    shell: Shell | None

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no option {name!r} for the {self.role} side") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("checked options are frozen")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        # Never the key, not even in a traceback.
        shown = {name: "..." if name == "key" else value for name, value in self._values.items()}
        return f"CheckedOptions({self.role!r}, {shown!r})"


def checked_options(
    role: Role, given: Mapping[str, Any], shell: Shell | None, *, owner: str
) -> CheckedOptions:
    """``given`` (keyword arguments of ``owner``) checked in one round, defaults filled in.

    ``shell`` names the middleware's server interface; None checks a side's
    options (all but the store). A name that is not an option, or a missing
    required one, is the ``TypeError`` Python raises for a wrong keyword
    argument; every wrong value, one :class:`ConfigurationError` naming them all.
    """
    declared = options_for(role, shell)
    names = [option.name for option in declared]
    for name in given:
        if name not in names:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}"
                            + _unknown_hint(name, names))
    missing = [repr(option.name) for option in declared
               if option.required and option.name not in given]
    if missing:
        raise TypeError(f"{owner}() missing required keyword argument(s): {', '.join(missing)}")
    # A one-shot iterator (a generator of hosts or prefixes) is read once, here: the checks
    # would consume it, and the side would then hold an empty one -- for ``protect``, no
    # path protected at all. Checks and side see the same entries.
    values = {name: tuple(value) if isinstance(value, Iterator) else value
              for name, value in given.items()}
    _raise_any(_problems(role, values, {}, shell))
    return CheckedOptions(role, shell, {
        option.name: values.get(option.name, option.default) for option in declared
    })


def _unknown_hint(name: str, names: list[str]) -> str:
    option = _BY_NAME.get(name)
    if option is not None and len(option.roles) == 1:
        return f" (an option of {'the IdP' if 'idp' in option.roles else 'a remote'} only)"
    guess = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {guess[0]!r}?)" if guess else ""


def check_options(role: Role, values: Mapping[str, Any], shell: Shell | None = "wsgi") -> None:
    """Raise one :class:`ConfigurationError` listing every problem with ``values``.

    ``values`` holds constructor arguments by name; names that are not
    options of ``role`` are ignored, and so are options left out.
    """
    _raise_any(_problems(role, values, {}, shell))


def _raise_any(problems: list[str]) -> None:
    if problems:
        raise ConfigurationError("; ".join(problems))


def _problems(
    role: Role, values: Mapping[str, Any], sources: Mapping[str, str], shell: Shell | None
) -> list[str]:
    """Every problem of ``values``, each naming the variable it came from (``sources``)."""
    checked = ((option.name, option.check(option.name, values[option.name]))
               for option in options_for(role, shell) if option.name in values)
    bad = {name: message for name, message in checked if message is not None}
    found = [*bad.items(), *_cross_problems(role, values, bad)]
    return [f"{sources[name]}: {message}" if sources.get(name) else message
            for name, message in found]


# -- rules between options ---------------------------------------------------------
def _cross_problems(
    role: Role, values: Mapping[str, Any], bad: Collection[str]
) -> list[tuple[str, str]]:
    """(option to blame, message) for combinations that cannot work.

    Only options whose own value passed its check (not in ``bad``) are compared.
    """
    def value(name: str) -> Any:
        return values.get(name, _BY_NAME[name].default)

    def fine(*names: str) -> bool:
        return not set(names) & set(bad)

    found: list[tuple[str, str]] = []
    app_url = value("app_url")
    if (
        "app_url" in values and fine("app_url", "cookie_secure")
        and value("cookie_secure") and canonical_origin(app_url).startswith("http:")
    ):
        found.append(("app_url", (
            f"app_url {app_url!r} is not https but cookies are Secure; serve over https, "
            "or pass cookie_secure=False (SESSIONSHARE_COOKIE_SECURE=false) explicitly "
            "for a local http demo"
        )))
    https = (
        "app_url" in values and fine("app_url") and canonical_origin(app_url).startswith("https:")
    )
    if https and fine("allow_insecure") and not value("allow_insecure"):
        found.extend(_sent_in_clear(role, values, bad, app_url))
    if (
        role == "remote" and {"app_url", "idp_url"} <= set(values) and fine("app_url", "idp_url")
        and canonical_origin(value("idp_url")) == canonical_origin(app_url)
    ):
        found.append(("idp_url", (
            f"idp_url {value('idp_url')!r} is on this app's own origin ({app_url!r}): every "
            "sign-in would be sent back here, in an endless redirect loop; set idp_url to "
            "the IdP's login URL (the IdP's app_url and login_path, e.g. "
            "https://id.example/login)"
        )))
    if value("cookie_partitioned") and not value("cookie_secure") and fine(
        "cookie_partitioned", "cookie_secure"
    ):
        # Browsers drop a Partitioned cookie without Secure: no session would ever stick.
        found.append(("cookie_partitioned", (
            "cookie_partitioned=True needs a Secure cookie (browsers drop a Partitioned one "
            "without it): serve the app over https and keep cookie_secure=True "
            "(SESSIONSHARE_COOKIE_SECURE), or leave cookie_partitioned unset"
        )))
    name = value("cookie_name")
    if (
        isinstance(name, str) and name.startswith("__Host-") and value("cookie_path") != "/"
        and fine("cookie_name", "cookie_path")
    ):
        found.append(("cookie_path", (
            f"cookie_path {value('cookie_path')!r} with cookie_name {name!r}: browsers "
            "accept a __Host- cookie only at Path=/; name it __Secure-... (or leave "
            "cookie_name unset), or keep cookie_path='/'"
        )))
    # A request is routed by the first path it matches: a shared path would
    # silently switch one endpoint off.
    first, second = ("logout_path", "login_path" if role == "idp" else "callback_path")
    if fine(first, second) and value(first) == value(second):
        found.append((second, (
            f"{second} {value(second)!r} is also the {first}: give each its own absolute path"
        )))
    return found


#: How each ``_sent_in_clear`` message ends.
_TEST_BED = ("or pass allow_insecure=True (SESSIONSHARE_ALLOW_INSECURE=true) if this is only a "
             "test bed")


def _sent_in_clear(
    role: Role, values: Mapping[str, Any], bad: Collection[str], app_url: str
) -> list[tuple[str, str]]:
    """On an https app, what would send the session (or what opens it) in clear."""
    def given(name: str) -> bool:
        return name in values and name not in bad

    found: list[tuple[str, str]] = []
    # An https app with cookie_secure=False sends its cookie -- a bearer credential
    # for the shared session -- over plain http too, to anyone on the network who
    # can make the browser load one http URL of the host (SSL stripping).
    if given("cookie_secure") and not values["cookie_secure"]:
        found.append(("cookie_secure", (
            f"cookie_secure=False on https app_url {app_url!r}: the session cookie would "
            "also travel over plain http, where anyone on the network reads it; keep "
            f"cookie_secure=True, {_TEST_BED}"
        )))
    insecure = _plain_http_entries(values["known_remote_hosts"]) if (
        role == "idp" and given("known_remote_hosts")) else ()
    if insecure:
        found.append(("known_remote_hosts", (
            f"known_remote_hosts allows plain http callbacks ({', '.join(insecure)}) "
            f"on https app_url {app_url!r}: the hand-off token and that app's session "
            f"cookie would travel in clear; list the remote as https, {_TEST_BED}"
        )))
    if given("websocket_origins"):
        # A page served over plain http can be rewritten on the way: listed, it would
        # open sockets as the user of an https app.
        listed = checks.origins_of("websocket_origins", values["websocket_origins"])
        plain = sorted(origin for origin in listed if origin.startswith("http://"))
        if plain:
            found.append(("websocket_origins", (
                f"websocket_origins lists plain http origins ({', '.join(plain)}) on https "
                f"app_url {app_url!r}: a page served over http can be altered in transit; "
                f"list them as https, {_TEST_BED}"
            )))
    return found


def _plain_http_entries(hosts: Any) -> tuple[str, ...]:
    """The ``http://`` entries of an allow-list value (an AllowList, text or entries)."""
    if isinstance(hosts, AllowList):
        return hosts.plain_http_entries
    if not isinstance(hosts, (str, Collection)):
        return ()  # a one-shot iterator: checked_options reads it into a tuple first
    try:
        return AllowList(hosts).plain_http_entries
    except ConfigurationError:
        return ()  # a bad entry: the allow-list's own check reports it


# -- the session cookie, as an app's framework describes it --------------------------
#: A cookie attribute -> the option that sets it.
COOKIE_ATTRIBUTES = {
    "name": "cookie_name", "domain": "cookie_domain", "path": "cookie_path",
    "secure": "cookie_secure", "httponly": "cookie_httponly", "samesite": "cookie_samesite",
    "partitioned": "cookie_partitioned",
}


def followed_cookie(options: CheckedOptions, asked: Mapping[str, object]) -> CookieSpec:
    """The session cookie of ``options`` with the attributes ``asked`` (attribute ->
    value, :data:`COOKIE_ATTRIBUTES`) in place of the options' own: the cookie a
    framework's own settings describe (Flask's ``SESSION_COOKIE_*``), which the
    middleware then sets and clears in every answer -- its own included.

    Held to the rules its options are held to, each problem named by the framework's
    attribute in one :class:`ConfigurationError`: each value's check, ``Partitioned``
    without ``Secure``, a ``__Host-`` name off ``Path=/``, and on an https app a cookie
    without ``Secure`` unless ``allow_insecure`` (it would travel in clear). A Secure
    cookie on an http app is the framework's to ask: only its own answers then miss
    it, as with the framework's own session.
    """
    values = {name: options[name] for name in COOKIE_ATTRIBUTES.values()}
    for attribute, value in asked.items():
        values[COOKIE_ATTRIBUTES[attribute]] = value
    problems = _problems(options.role, values, {}, None)
    if (
        values["cookie_secure"] is False and not options.allow_insecure
        and canonical_origin(options.app_url).startswith("https:")
    ):
        problems.append(
            f"a session cookie without Secure on https app_url {options.app_url!r} would "
            "also travel over plain http, where anyone on the network reads it; keep it "
            "Secure, or pass allow_insecure=True to the middleware if this is only a test bed"
        )
    if problems:
        options_named = {option: attribute for attribute, option in COOKIE_ATTRIBUTES.items()}
        raise ConfigurationError("the session cookie's settings cannot hold: " + "; ".join(
            _renamed(problem, options_named) for problem in problems))
    # The spelling is the options' own: a framework's settings say which attributes.
    return session_cookie({**values, "cookie_spelling": options.cookie_spelling})


def _renamed(problem: str, names: Mapping[str, str]) -> str:
    """``problem`` naming the framework's attribute beside the option it checked."""
    for option, attribute in names.items():
        if problem.startswith(option):
            return f"{attribute} ({option}){problem[len(option):]}"
    return problem


# -- what the command line and Django's checks add ------------------------------------
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
