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

from sessionshare.errors import ConfigurationError

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
    "with no custom expiry it is not `SESSION_COOKIE_AGE` (it is where the session's idle "
    "and absolute limits are at least that long); the persistent cookie lasts that age, "
    "not longer than the session it names")
DJANGO_PRIVATE_KEY = Cause(
    "`session_key` is a reference computed from the shared session (never its id, a bearer "
    "credential), so a key planted in Django's private `_session_key` is not returned")

# -- Flask ----------------------------------------------------------------------------
FLASK_COOKIE_PATH = Cause(
    "`APPLICATION_ROOT` or `SESSION_COOKIE_PATH` other than `/` is refused with a "
    "`ConfigurationError` (at `init_app`, or at the request when set later): the middleware "
    "sets and clears the cookie at `Path=/` in answers of its own, so a cookie at another "
    "path would be a second one that the sign-out leaves behind (`SESSION_COOKIE_PATH='/'` "
    "keeps `APPLICATION_ROOT` for the URLs)")
FLASK_COOKIE_SETTINGS = Cause(
    "`SESSION_COOKIE_NAME`, `_DOMAIN`, `_SECURE` and `_SAMESITE` must describe the "
    "middleware's cookie (set its `cookie_name`, `cookie_domain`, `cookie_secure`, "
    "`cookie_samesite`), and `SESSION_COOKIE_HTTPONLY=False` and `SESSION_COOKIE_PARTITIONED"
    "=True` are refused: the middleware reads the cookie before the app runs and sets and "
    "clears it in answers of its own, so one of other attributes would be a second cookie "
    "the sign-out leaves behind, and the shared session's credential stays out of scripts' "
    "reach. A `ConfigurationError` says which and what to set instead")
FLASK_SAMESITE_DEFAULT = Cause(
    "`SESSION_COOKIE_SAMESITE=None`, Flask's default, leaves the middleware's "
    "`SameSite=Lax` on the cookie (Flask's own default cookie has no `SameSite`): the "
    "sign-out's protection against cross-site requests counts on it")
FLASK_PERMANENT = Cause(
    "`session.permanent = True` gives the cookie no `Expires` (`PERMANENT_SESSION_LIFETIME` "
    "is not used): whether the shared sign-in outlives the browser is decided for every app "
    "at once -- the IdP's `remember()`, which each remote takes up only as far as its "
    "`max_remember` allows -- not by one app's flag; `permanent` itself is kept in the "
    "session for every app to read")
FLASK_REFRESH = Cause(
    "`SESSION_REFRESH_EACH_REQUEST`: a request that does not use the session gets no "
    "`Set-Cookie` and no `Vary: Cookie`, even for a permanent session: the cookie has no "
    "expiry to push forward (the server slides the session's idle timeout on each read), "
    "so such answers stay cacheable")

#: Per framework: test -> its causes, the first being the one it fails on today.
EXPECTED: dict[str, dict[str, Fails]] = {
    "django": {
        "test_default_expiry": fails(DJANGO_EXPIRY_AGE),
        "test_default_expiry_async": fails(DJANGO_EXPIRY_AGE),
        "test_custom_expiry_reset": fails(DJANGO_EXPIRY_AGE),
        "test_custom_expiry_reset_async": fails(DJANGO_EXPIRY_AGE),
        "test_session_key_valid_string_saved": fails(DJANGO_PRIVATE_KEY),
    },
    "flask": {
        "test_session_path": fails(FLASK_COOKIE_PATH, raises=ConfigurationError),
        "test_session_using_application_root":
            fails(FLASK_COOKIE_PATH, raises=ConfigurationError),
        "test_session_using_session_settings":
            fails(FLASK_COOKIE_SETTINGS, raises=ConfigurationError),
        "test_session_using_samesite_attribute": fails(FLASK_SAMESITE_DEFAULT),
        "test_session_expiration": fails(FLASK_PERMANENT, raises=AttributeError),
        "test_session_cookie_setting": fails(FLASK_REFRESH),
        "test_session_refresh_vary": fails(FLASK_REFRESH, raises=KeyError),
    },
    "starlette": {},
    "pyramid": {},
}


def entry_for(framework: str, test_id: str) -> Fails | None:
    """The entry for the framework's test ``test_id`` (``name`` or ``name[params]``): the
    parametrized case's own entry, else the test's; None when it is not listed."""
    table = EXPECTED[framework]
    if test_id in table:
        return table[test_id]
    return table.get(test_id.split("[", 1)[0])
