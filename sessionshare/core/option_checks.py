"""How one option value is checked, and how a variable's text becomes a value.

Each check takes the option's name and a value and returns a message that
names the option and says what is expected, or None when the value is fine;
:mod:`sessionshare.core.options` pairs them with the options. Parsers turn
``SESSIONSHARE_*`` text into the argument and raise ``ValueError`` saying
what was expected.

    seconds("idle_timeout", "1800")
    # "idle_timeout must be a positive number of seconds, not '1800' (str)"
    absolute_path("logout_path", "/_sessionshare/logout")   # None: fine
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from ..crypto import AllowList, SyncKey, canonical_origin
from ..errors import ConfigurationError
from ..store import AsyncSessionStore, MemoryStore, SessionStore
from .cookies import spelling_problem
from .loginstate import MAX_STATE_TTL
from .request import safe_return_path

__all__ = [
    "Check", "absolute_path", "allow_list", "any_text", "async_session_store", "bool_text",
    "byte_count", "bytes_text", "cookie_domain", "cookie_path", "cookie_spelling", "count_text",
    "flag", "function", "optional_cookie_age", "optional_count",
    "hosts_text", "int_text", "max_auth_age", "nonempty_text", "optional_function",
    "optional_nonempty_text", "optional_seconds", "passive",
    "origin_url", "origins", "origins_of", "origins_text", "prefix_problem", "protect",
    "redirect_target",
    "samesite", "seconds", "session_store", "state_lifetime", "sync_key", "verbatim",
    "zero_or_more_seconds",
]

#: A problem message for an option's value, or None when the value is fine.
Check = Callable[[str, Any], str | None]

# -- checks of one value -------------------------------------------------------
def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:60] + '...' if len(text) > 60 else text} ({type(value).__name__})"


def _whole(value: Any) -> bool:
    # bool is an int to Python, but `idle_timeout=True` is a mistake, not one second.
    return isinstance(value, int) and not isinstance(value, bool)


def _is(test: Callable[[Any], bool], expected: str) -> Check:
    """A check that ``test(value)`` holds; else "<name> must be <expected>, not <value>"."""
    def check(name: str, value: Any) -> str | None:
        return None if test(value) else f"{name} must be {expected}, not {_shown(value)}"

    return check


def _optional(check: Check) -> Check:
    """``check``, and None is fine too."""
    return lambda name, value: None if value is None else check(name, value)


def _matching(pattern: str, expected: str) -> Check:
    """A check that the value is a string all of whose text ``pattern`` matches."""
    compiled = re.compile(pattern)
    return _is(lambda value: isinstance(value, str) and bool(compiled.fullmatch(value)), expected)


# "no" is truthy: a string here would silently mean True.
flag = _is(lambda value: isinstance(value, bool), "True or False")
any_text = _is(lambda value: isinstance(value, str), "a string")
nonempty_text = _is(lambda value: isinstance(value, str) and bool(value), "a non-empty string")
optional_nonempty_text = _optional(nonempty_text)
function = _is(callable, "callable")
optional_function = _optional(function)
samesite = _is(lambda value: isinstance(value, str) and value.lower() in ("lax", "strict", "none"),
               "'Lax', 'Strict' or 'None'")
byte_count = _is(lambda value: _whole(value) and value > 0, "a positive whole number of bytes")
optional_count = _is(lambda value: value is None or (_whole(value) and value > 0),
                     "a whole number, 1 or more (or None for no limit)")
# 0 or less is a legal Max-Age (an already expired cookie), so any whole number goes.
optional_cookie_age = _is(lambda value: value is None or _whole(value),
                          "a whole number of seconds (or None)")


def seconds(name: str, value: Any, *, zero_ok: bool = False) -> str | None:
    if (_whole(value) or isinstance(value, float)) and (value >= 0 if zero_ok else value > 0):
        return None
    kind = "a number of seconds, 0 or more" if zero_ok else "a positive number of seconds"
    return f"{name} must be {kind}, not {_shown(value)}"


def optional_seconds(name: str, value: Any) -> str | None:
    if value is None:
        return None
    problem = seconds(name, value, zero_ok=True)
    return None if problem is None else problem + " (or None)"


def zero_or_more_seconds(name: str, value: Any) -> str | None:
    return seconds(name, value, zero_ok=True)


def state_lifetime(name: str, value: Any) -> str | None:
    """Seconds, at most :data:`~sessionshare.core.loginstate.MAX_STATE_TTL` (a day)."""
    problem = seconds(name, value)
    if problem is None and value > MAX_STATE_TTL:
        # The IdP keeps its claim on a state as long as the state lives, up to this
        # bound: a state living longer would outlive its claim (core/claims.py).
        return (f"{name} must be at most {MAX_STATE_TTL} seconds (a day), not {value}: "
                "the IdP guards a started sign-in only that long")
    return problem


def passive(name: str, value: Any) -> str | None:
    """True/False, or a list of absolute path prefixes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        return f"{name} must be True, False or a list of path prefixes, not {_shown(value)}"
    return _prefixes_problem(name, value, "/")


def protect(name: str, value: Any) -> str | None:
    """True/False, a list of absolute path prefixes, or a predicate on the request."""
    if isinstance(value, bool) or callable(value):
        return None
    if isinstance(value, str):
        return f"{name} takes a list of path prefixes, not one string"
    if not isinstance(value, Iterable):
        return (f"{name} must be True, False, a list of path prefixes or a predicate, "
                f"not {_shown(value)}")
    return _prefixes_problem(name, value, "/account/")


def max_auth_age(name: str, value: Any) -> str | None:
    """None, seconds (0 or more), or path prefix -> seconds."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        problems = (seconds(f"{name}[{prefix!r}]", age, zero_ok=True)
                    for prefix, age in value.items())
        return _prefixes_problem(name, value, "/admin/") or next(filter(None, problems), None)
    return seconds(name, value, zero_ok=True)


def _prefixes_problem(name: str, prefixes: Iterable[Any], example: str) -> str | None:
    """The first of ``prefixes`` that is not an absolute, decoded path, named; or None."""
    for prefix in prefixes:
        if not (isinstance(prefix, str) and prefix.startswith("/")):
            return (f"{name}: the prefixes must be absolute paths such as {example!r}, "
                    f"not {_shown(prefix)}")
        if prefix_problem(prefix):
            return f"{name}: {prefix_problem(prefix)}"
    return None


def redirect_target(name: str, value: Any) -> str | None:
    """A local path (``/bye``) or an http(s) URL: never ``javascript:`` and the like."""
    problem = nonempty_text(name, value)
    if problem is None and safe_return_path(value, default="") != value:
        try:
            canonical_origin(value, setting=name)
        except ConfigurationError as exc:
            return str(exc)
    return problem


_PERCENT_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def prefix_problem(prefix: str) -> str | None:
    """Why a path prefix (``protect``, ``passive``, ``max_auth_age``) can match no request --
    it is percent-encoded, while paths are compared decoded -- or None."""
    if not _PERCENT_ENCODED.search(prefix):
        return None
    return (
        f"the path prefix {prefix!r} is percent-encoded: paths are compared decoded, "
        f"as routers see them, so it would match no request; write it decoded "
        f"(e.g. {unquote(prefix)!r})"
    )


# Compared with PATH_INFO as is: a path without its leading "/" never matches,
# which would silently switch the endpoint off (logout_path="logout" did).
absolute_path = _matching(r"/[A-Za-z0-9._~!$&'()*+,;=:@/-]*", (
    "an absolute path: a leading '/', no query, no spaces (e.g. '/_sessionshare/logout')"))
# A cookie's Path ends at the first ";" (which would start an attribute of the caller's
# choosing) and is matched as a prefix of the request's path: the characters of a path
# that cannot split the Set-Cookie line.
cookie_path = _matching(r"/[A-Za-z0-9._~!$&'()*+=:@/-]*", (
    "an absolute URL path for the cookie: a leading '/', no ';', ',', query or spaces "
    "(e.g. '/' or '/shop')"))


# A cookie's Domain is written into every Set-Cookie line as given: a ";" would add an
# attribute of its own choosing (SameSite=None, another Path), a CR/LF a header. A host
# name's characters only; a leading dot (Starlette's, Django's) is one browsers ignore.
_COOKIE_DOMAIN = re.compile(r"\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def cookie_domain(name: str, value: Any) -> str | None:
    # "" stays allowed: it has always meant "not set" (cookie_domain="" adds no Domain).
    if value is None or value == "" or (isinstance(value, str)
                                         and _COOKIE_DOMAIN.fullmatch(value)):
        return None
    return (
        f"{name} must be a host name for the cookie's Domain (e.g. 'shop.example'), or None, "
        f"not {_shown(value)}"
    )


def origin_url(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be a URL string such as 'https://shop.example', not {_shown(value)}"
    try:
        canonical_origin(value, setting=name)
    except ConfigurationError as exc:
        return f"{exc}; write it with its scheme, e.g. 'https://shop.example'"
    return None


def origins_of(name: str, value: Any) -> frozenset[str]:
    """A list of origins (``https://app.example``, no path) as their canonical forms.

    Raises :class:`ConfigurationError` naming ``name`` and the entry at fault.
    """
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{name} must be a list of origins such as ['https://app.shop.example'], "
            f"not {_shown(value)}"
        )
    found = set()
    for entry in value:
        if not isinstance(entry, str):
            raise ConfigurationError(f"{name}: every entry must be an origin string such as "
                                     f"'https://app.shop.example', not {_shown(entry)}")
        # An Origin header is scheme, host and port only: a path could never match one.
        if entry.partition("://")[2].rstrip("/").count("/"):
            raise ConfigurationError(f"{name}: {entry!r} is not an origin: leave out the path "
                                     "(e.g. 'https://app.shop.example')")
        problem = origin_url(name, entry)
        if problem is not None:
            raise ConfigurationError(problem)
        found.add(canonical_origin(entry, setting=name))
    return frozenset(found)


def origins(name: str, value: Any) -> str | None:
    try:
        origins_of(name, value)
    except ConfigurationError as exc:
        return str(exc)
    return None


def cookie_spelling(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return f"{name} must be a dict of attribute -> spelling (or None), not {_shown(value)}"
    problem = spelling_problem(value)
    return None if problem is None else f"{name}: {problem}"


def sync_key(name: str, value: Any) -> str | None:
    if isinstance(value, SyncKey):
        return None
    if value is None:
        # os.environ.get() of an unset variable: the same fix as an empty key.
        problem = sync_key(name, "")
        return f"{name}=None (an unset variable read with os.environ.get?): " + (
            problem or "").removeprefix(f"{name}: ")
    if not isinstance(value, str):
        # Never the value itself: it may be a key in the wrong wrapper.
        return (
            f"{name} must be a SyncKey or the text from `python -m sessionshare keygen`, "
            f"not {type(value).__name__}"
        )
    try:
        SyncKey.parse(value)
    except ConfigurationError as exc:
        return f"{name}: {exc}"
    return None


def _is_async_store(value: Any) -> bool:
    # Protocols check names only: the two store protocols have the same ones.
    return inspect.iscoroutinefunction(getattr(value, "load", None))


def session_store(name: str, value: Any) -> str | None:
    if isinstance(value, SessionStore) and not _is_async_store(value):
        return None
    if _is_async_store(value):
        return (
            f"{name}: {type(value).__name__} is an asyncio store, for the ASGI middlewares "
            "(sessionshare.asgi); a WSGI app takes RedisStore.from_url(...) or MemoryStore()"
        )
    return (
        f"{name} must implement sessionshare.store.SessionStore "
        f"(e.g. RedisStore.from_url(...) or MemoryStore()), not {type(value).__name__}"
    )


def async_session_store(name: str, value: Any) -> str | None:
    """The ASGI middlewares' store: coroutines only (or a MemoryStore, which never waits)."""
    if isinstance(value, MemoryStore) or (
        isinstance(value, AsyncSessionStore) and _is_async_store(value)
    ):
        return None
    if isinstance(value, SessionStore):
        return (
            f"{name}: {type(value).__name__} would block the event loop on every request; "
            "an ASGI app takes AsyncRedisStore.from_url(...) (the same Redis, the same "
            "sessions as RedisStore) or MemoryStore()"
        )
    return (
        f"{name} must implement sessionshare.store.AsyncSessionStore "
        f"(e.g. AsyncRedisStore.from_url(...) or MemoryStore()), not {type(value).__name__}"
    )


def allow_list(name: str, value: Any) -> str | None:
    if isinstance(value, AllowList):
        allowed = value
    elif isinstance(value, str) or (
        isinstance(value, Collection) and not isinstance(value, (bytes, Mapping))
        and all(isinstance(item, str) for item in value)
    ):
        try:
            allowed = AllowList(value)
        except ConfigurationError as exc:
            return str(exc)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping, Collection)):
        return None  # a one-shot iterator: reading it here would leave AllowList nothing
    else:
        return (
            f"{name} must be an AllowList, a list of hosts or origins, or one comma separated "
            f"string, not {_shown(value)}"
        )
    if not len(allowed):
        return (f"{name} is empty: list the remote apps "
                "(SESSIONSHARE_KNOWN_REMOTE_HOSTS=shop.example,blog.example)")
    return None


# -- reading text from the environment -------------------------------------------
def bool_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _whole_text(expected: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected {expected}") from None

    return parse


int_text = _whole_text("a whole number of seconds")
bytes_text = _whole_text("a whole number of bytes")
count_text = _whole_text("a whole number")


def hosts_text(text: str) -> tuple[str, ...]:
    # Parsed once here to report bad entries; the IdP builds its AllowList from the
    # entries with its own callback_path, which may come from another variable.
    return AllowList(text).entries


def origins_text(text: str) -> tuple[str, ...]:
    """Comma (or space) separated origins."""
    return tuple(entry for entry in re.split(r"[\s,]+", text.strip()) if entry)


def verbatim(text: str) -> str:
    return text.strip()
