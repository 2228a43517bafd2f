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
DJANGO_SAVE_NEW = Cause(
    "`request.session.save()` on a new session stores nothing: `session_key` stays `None` "
    "until the response, so the common `save()` then `session_key` idiom gets `None`, and "
    "another request cannot use that key yet")
DJANGO_EXISTS = Cause(
    "`exists()` raises `NotImplementedError`")
DJANGO_MUST_CREATE = Cause(
    "`save(must_create=True)` and `create()` raise `NotImplementedError` (Django's engines "
    "raise `UpdateError`/`SessionInterrupted` when another request ended the session)")
DJANGO_DELETE_OTHER = Cause(
    "`delete(key)` of a key that is not the request's own raises `NotImplementedError` "
    "(Django's engines delete that session, or do nothing when there is none)")
DJANGO_SET_EXPIRY = Cause(
    "`set_expiry()` with seconds, a `timedelta` or a `datetime` raises `ValueError` "
    "(only `None` and `0` are accepted)")
DJANGO_EXPIRY_AGE = Cause(
    "`get_expiry_age()` is the shared session's idle timeout (1800 s by default), not "
    "`SESSION_COOKIE_AGE`")
DJANGO_MODIFIED_SETTER = Cause(
    "Setting `request.session.modified = False` is ignored: `modified` stays `True` while "
    "the request holds unsaved changes")
DJANGO_MODIFIED_NET = Cause(
    "`modified` is `False` after `pop()` or `clear()` removes a key set earlier in the same "
    "request: it says whether the stored session would change, not whether the code "
    "changed it")
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
STARLETTE_MAX_AGE = Cause(
    "`max_age` has no equivalent: the cookie is a browser-session cookie (no `Max-Age`) and "
    "the session's life is the server's `idle_timeout`/`absolute_timeout`, so `max_age=0` "
    "or `-1` does not end it. Sharing forces it: the session's limits are the IdP's, "
    "carried with the session and enforced by every app, and a cookie that outlives the "
    "browser is what the sign-in asks for (`remember()`), not one app's setting")
STARLETTE_PARTITIONED = Cause(
    "`partitioned` has no equivalent: the cookie is never `Partitioned`. Not forced by "
    "sharing (each app's cookie is its own): sessionshare has no such option yet")
STARLETTE_PATH = Cause(
    "`path` has no equivalent: the cookie is always `Path=/` (so an app mounted under a "
    "prefix shares its cookie with the whole host). Not forced by sharing: sessionshare "
    "has no such option yet")
STARLETTE_ATTRIBUTE_CASE = Cause(
    "The cookie's attributes are written `Domain=`/`Path=` where Starlette writes "
    "`domain=`/`path=`: browsers read both (attribute names are case-insensitive), text "
    "comparisons do not. Not forced by sharing: the spelling every other framework uses")
STARLETTE_VARY_UNTOUCHED = Cause(
    "`Vary: Cookie` on responses that never touched the session: public pages stop being "
    "cacheable. Not forced by sharing: the shell adds it to every response of a request "
    "that carried the cookie, as it reads the session before the app runs")

#: Per framework: test -> its causes, the first being the one it fails on today.
EXPECTED: dict[str, dict[str, Fails]] = {
    "django": {
        "test_pop": fails(DJANGO_MODIFIED_NET),
        "test_pop_async": fails(DJANGO_MODIFIED_NET),
        "test_clear": fails(DJANGO_MODIFIED_NET),
        "test_has_key": fails(DJANGO_MODIFIED_SETTER),
        "test_has_key_async": fails(DJANGO_MODIFIED_SETTER),
        "test_values": fails(DJANGO_MODIFIED_SETTER),
        "test_values_async": fails(DJANGO_MODIFIED_SETTER),
        "test_keys": fails(DJANGO_MODIFIED_SETTER),
        "test_keys_async": fails(DJANGO_MODIFIED_SETTER),
        "test_items": fails(DJANGO_MODIFIED_SETTER),
        "test_items_async": fails(DJANGO_MODIFIED_SETTER),
        "test_save": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_save_async": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_delete": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_delete_async": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_flush": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_flush_async": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_cycle": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_cycle_async": fails(DJANGO_EXISTS, DJANGO_SAVE_NEW, raises=NotImplementedError),
        "test_cycle_with_no_session_cache": fails(DJANGO_SAVE_NEW),
        "test_cycle_with_no_session_cache_async": fails(DJANGO_SAVE_NEW),
        "test_session_load_does_not_create_record":
            fails(DJANGO_EXISTS, raises=NotImplementedError),
        "test_session_load_does_not_create_record_async":
            fails(DJANGO_EXISTS, raises=NotImplementedError),
        "test_session_key_is_read_only": fails(DJANGO_EXISTS, raises=NotImplementedError),
        "test_invalid_key": fails(DJANGO_DELETE_OTHER, raises=NotImplementedError),
        "test_invalid_key_async": fails(DJANGO_DELETE_OTHER, raises=NotImplementedError),
        "test_session_save_does_not_resurrect_session_logged_out_in_other_context":
            fails(DJANGO_MUST_CREATE, raises=NotImplementedError),
        "test_session_asave_does_not_resurrect_session_logged_out_in_other_context":
            fails(DJANGO_MUST_CREATE, raises=NotImplementedError),
        "test_default_expiry": fails(DJANGO_EXPIRY_AGE),
        "test_default_expiry_async": fails(DJANGO_EXPIRY_AGE),
        "test_custom_expiry_seconds": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_seconds_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_timedelta": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_timedelta_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_datetime": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_datetime_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_reset": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_custom_expiry_reset_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_get_expire_at_browser_close": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_get_expire_at_browser_close_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_actual_expiry": fails(DJANGO_SET_EXPIRY, raises=ValueError),
        "test_actual_expiry_async": fails(DJANGO_SET_EXPIRY, raises=ValueError),
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
        "test_session": fails(STARLETTE_MAX_AGE),
        "test_partitioned_session[True]": fails(STARLETTE_PARTITIONED),
        "test_session_expires": fails(STARLETTE_MAX_AGE),
        "test_session_cookie_subpath": fails(STARLETTE_PATH),
        "test_session_zero_max_age": fails(STARLETTE_MAX_AGE),
        "test_domain_cookie": fails(STARLETTE_ATTRIBUTE_CASE),
        "test_vary_cookie_on_access": fails(STARLETTE_VARY_UNTOUCHED),
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
