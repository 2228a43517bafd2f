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
FLASK_SAMESITE_DEFAULT = Cause(
    "`SESSION_COOKIE_SAMESITE=None`, Flask's default, leaves the middleware's "
    "`SameSite=Lax` on the cookie (Flask's own default cookie has no `SameSite`): the "
    "sign-out's protection against cross-site requests counts on it")

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
        "test_session_using_samesite_attribute": fails(FLASK_SAMESITE_DEFAULT),
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
