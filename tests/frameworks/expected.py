"""Which of the frameworks' own session tests fail over sessionshare, and why.

Each entry names a framework's test (its function or method name, as in
the framework's file; a parametrized case may be named alone as
``name[their-param-id]``) and the :class:`Cause` it fails from -- what breaks
for a user -- first the one it fails on today, then any found behind it
(with the first worked around by hand). The conftest marks each such test
``xfail(strict=True, raises=<the first cause's exception>)``:

- a listed test that passes fails the run (XPASS strict): delete its entry;
- a listed test that fails with another exception fails the run: its cause
  changed, update the entry;
- a test that fails and is not listed fails the run: list it, or fix it.

docs/frameworks.md lists the same causes under "Differences from
<framework>'s own session" (tests/frameworks/test_expected.py holds the two
to each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

__all__ = ["EXPECTED", "Cause", "Fails", "entry_for", "fails"]


@dataclass(frozen=True)
class Cause:
    """One difference from the framework's own session, as a user meets it."""

    #: What breaks for a user, in one sentence (docs/frameworks.md lists it).
    text: str


@dataclass(frozen=True)
class Fails:
    """A test's entry: its causes, first the one it fails on today."""

    causes: tuple[Cause, ...]
    #: The exception the framework's test fails with today.
    raises: type[BaseException]


def fails(*causes: Cause, raises: type[BaseException] = AssertionError) -> Fails:
    assert causes, "a failing test has a cause"
    return Fails(causes, raises)


# -- Django ---------------------------------------------------------------------------
DJANGO_EXPIRY_AGE = Cause(
    "`get_expiry_age()` is the stricter of what the app asks (`SESSION_COOKIE_AGE`, two "
    "weeks, when it asks nothing) and what the shared session allows -- its idle and "
    "absolute timeouts, which hold for every app alike (1800 s idle by default) -- so "
    "with no custom expiry it is not `SESSION_COOKIE_AGE`")
DJANGO_BROWSER_CLOSE = Cause(
    "`get_expire_at_browser_close()` is `True` whatever `set_expiry()` and "
    "`SESSION_EXPIRE_AT_BROWSER_CLOSE` say: the shared session's cookie ends with the "
    "browser at every app, and only a sign-in the IdP remembers (`Session.remember()`) "
    "outlives it; an app's expiry ends the session on the server instead")
DJANGO_PRIVATE_KEY = Cause(
    "`session_key` is a reference computed from the shared session (never its id, a bearer "
    "credential), so a key planted in Django's private `_session_key` is not returned")

# -- Flask ----------------------------------------------------------------------------
FLASK_VARY_UNTOUCHED = Cause(
    "`Vary: Cookie` on responses that never touched the session: public pages stop being "
    "cacheable")
FLASK_VARY_TWICE = Cause(
    "A view that sets `Vary` itself gets two `Vary` headers, not one merged one")
FLASK_COOKIE_PATH = Cause(
    "`APPLICATION_ROOT` and `SESSION_COOKIE_PATH` are silently ignored: the cookie's path "
    "is always `/`")
FLASK_COOKIE_SETTINGS = Cause(
    "`SESSION_COOKIE_DOMAIN`, `SESSION_COOKIE_SECURE`, `SESSION_COOKIE_HTTPONLY`, "
    "`SESSION_COOKIE_PARTITIONED` and `SESSION_COOKIE_SAMESITE` are silently ignored "
    "(an invalid `SESSION_COOKIE_SAMESITE` is not refused either)")
FLASK_UNAVAILABLE_MESSAGE = Cause(
    "Without the middleware (`app.test_request_context()`), writing to `flask.session` "
    "raises a `RuntimeError` that does not say \"the session is unavailable\", as Flask's "
    "does")
FLASK_PERMANENT = Cause(
    "`session.permanent = True` gives the cookie no `Expires`: "
    "`PERMANENT_SESSION_LIFETIME` is not used")
FLASK_REFRESH = Cause(
    "`SESSION_REFRESH_EACH_REQUEST`: a permanent session's cookie is not refreshed (no "
    "`Set-Cookie`, no `Vary: Cookie`) by requests that do not change the session")
FLASK_TAGGED_TYPES = Cause(
    "Tuples, `bytes`, `Markup`, `UUID` and `datetime` values raise `TypeError` where "
    "Flask's tagged JSON stores and returns them")
FLASK_FLASH_CATEGORIES = Cause(
    "`get_flashed_messages(with_categories=True)` returns `[category, message]` lists, "
    "not tuples (equal when unpacked, unequal when compared)")

# -- Starlette ------------------------------------------------------------------------
STARLETTE_NOT_A_DICT = Cause(
    "`request.session` is not a `dict`: `JSONResponse({\"session\": request.session})` "
    "raises `TypeError` (`dict(request.session)` works)")
STARLETTE_MAX_AGE = Cause(
    "`max_age` has no equivalent: the cookie is a browser-session cookie (no `Max-Age`), "
    "the session's life is the server's `idle_timeout`/`absolute_timeout`, and "
    "`max_age=0` or `-1` does not end it")
STARLETTE_CLEAR_KEEPS_COOKIE = Cause(
    "`request.session.clear()` keeps the session and its cookie, where Starlette deletes "
    "the cookie of an emptied session")
STARLETTE_PARTITIONED = Cause(
    "`partitioned` has no equivalent: the cookie is never `Partitioned`")
STARLETTE_PATH = Cause(
    "`path` has no equivalent: the cookie is always `Path=/` (so an app mounted under a "
    "prefix shares its cookie with the whole host)")
STARLETTE_ATTRIBUTE_CASE = Cause(
    "The cookie's attributes are written `Domain=`/`Path=` where Starlette writes "
    "`domain=`/`path=`: browsers read both, text comparisons do not")
STARLETTE_VARY_UNTOUCHED = Cause(
    "`Vary: Cookie` on responses that never touched the session: public pages stop being "
    "cacheable")
STARLETTE_IN_PLACE_OR = Cause(
    "`request.session |= data` raises `TypeError`")
STARLETTE_POPITEM = Cause(
    "`request.session.popitem()` removes the first key, not the last (a `dict` is LIFO)")

#: Per framework: test -> its causes, the first being the one it fails on today.
EXPECTED: dict[str, dict[str, Fails]] = {
    "django": {
        "test_default_expiry": fails(DJANGO_EXPIRY_AGE),
        "test_default_expiry_async": fails(DJANGO_EXPIRY_AGE),
        "test_custom_expiry_reset": fails(DJANGO_EXPIRY_AGE),
        "test_custom_expiry_reset_async": fails(DJANGO_EXPIRY_AGE),
        "test_get_expire_at_browser_close": fails(DJANGO_BROWSER_CLOSE),
        "test_get_expire_at_browser_close_async": fails(DJANGO_BROWSER_CLOSE),
        "test_session_key_valid_string_saved": fails(DJANGO_PRIVATE_KEY),
    },
    "flask": {
        "test_session_accessed": fails(FLASK_VARY_UNTOUCHED),
        "test_session_vary_cookie": fails(FLASK_VARY_TWICE),
        "test_session_path": fails(FLASK_COOKIE_PATH),
        "test_session_using_application_root": fails(FLASK_COOKIE_PATH),
        "test_session_using_session_settings": fails(FLASK_COOKIE_SETTINGS),
        "test_session_using_samesite_attribute":
            fails(FLASK_COOKIE_SETTINGS, raises=pytest.fail.Exception),
        "test_missing_session": fails(FLASK_UNAVAILABLE_MESSAGE),
        "test_session_expiration": fails(FLASK_PERMANENT, raises=AttributeError),
        "test_session_cookie_setting": fails(FLASK_REFRESH),
        "test_session_refresh_vary": fails(FLASK_REFRESH, raises=KeyError),
        "test_session_special_types": fails(FLASK_TAGGED_TYPES, raises=TypeError),
        "test_extended_flashing": fails(FLASK_FLASH_CATEGORIES),
    },
    "starlette": {
        "test_session": fails(STARLETTE_NOT_A_DICT, STARLETTE_MAX_AGE, raises=TypeError),
        "test_partitioned_session[False]":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_CLEAR_KEEPS_COOKIE, raises=TypeError),
        "test_partitioned_session[True]":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_PARTITIONED, raises=TypeError),
        "test_session_expires": fails(STARLETTE_NOT_A_DICT, STARLETTE_MAX_AGE, raises=TypeError),
        "test_secure_session": fails(STARLETTE_NOT_A_DICT, raises=TypeError),
        "test_session_cookie_subpath":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_PATH, raises=TypeError),
        "test_invalid_session_cookie": fails(STARLETTE_NOT_A_DICT, raises=TypeError),
        "test_session_cookie": fails(STARLETTE_NOT_A_DICT, raises=TypeError),
        "test_session_zero_max_age":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_MAX_AGE, raises=TypeError),
        "test_domain_cookie":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_ATTRIBUTE_CASE, raises=TypeError),
        "test_set_cookie_only_on_modification": fails(STARLETTE_NOT_A_DICT, raises=TypeError),
        "test_vary_cookie_on_access":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_VARY_UNTOUCHED, raises=TypeError),
        "test_session_persists_mutations[/inplace_update_session-data0-expected0]":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_IN_PLACE_OR, raises=TypeError),
        "test_session_persists_mutations[/popitem_session-None-expected1]":
            fails(STARLETTE_NOT_A_DICT, STARLETTE_POPITEM, raises=TypeError),
    },
    "pyramid": {},
}


def entry_for(framework: str, test_id: str) -> Fails | None:
    """The entry for the framework's test ``test_id`` (``name`` or ``name[params]``): the
    parametrized case's own entry, else the test's; None when it is not listed."""
    table = EXPECTED[framework]
    if test_id in table:
        return table[test_id]
    return table.get(test_id.split("[", 1)[0])
