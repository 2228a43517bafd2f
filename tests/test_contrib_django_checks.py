"""``sessionshare.contrib.django.checks``: Django's system checks name each setup that cannot
work, and its fix -- by id, as ``manage.py check`` reports them.

Each mistake is one a new user made (the first-hour trial): a site whose every
visit after the hand-off was a 403 "no account for you" (no remote-user
middleware or backend), every request a 500 (Django's own ``SessionMiddleware``
left in), a ``SESSIONSHARE`` dict that ``python -m sessionshare check`` never
read. The checks run against the suite's one Django project with settings
overridden; a real project in a temporary directory shows ``manage.py check``
and ``python -m sessionshare check`` finding them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import webtest
from django.conf import settings
from django.contrib.auth.backends import RemoteUserBackend
from django.test import override_settings
from flow import IDP, LOGIN, SHOP

from sessionshare import ConfigurationError, MemoryStore, RemoteSessionMiddleware, SyncKey
from sessionshare.contrib.django.checks import messages
from sessionshare.contrib.django.wsgi import get_wsgi_application
from sessionshare.testing import signed_in_cookie

REPO = Path(__file__).resolve().parent.parent
OURS = "sessionshare.contrib.django.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
PERSISTENT = "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"
PLAIN = "django.contrib.auth.middleware.RemoteUserMiddleware"
GOOD_MIDDLEWARE = [OURS, AUTH, PERSISTENT]


#: A shared store, as a deployment has one (the checks never connect to it).
STORE = "redis://127.0.0.1:1/0"


def remote(**overrides: Any) -> dict[str, Any]:
    return {"store": STORE, "key": SyncKey.generate(), "app_url": SHOP,
            "idp_url": LOGIN, "cookie_secure": False, "protect": False, **overrides}


def idp() -> dict[str, Any]:
    return {"store": STORE, "key": SyncKey.generate(), "app_url": IDP,
            "known_remote_hosts": [SHOP], "cookie_secure": False}


def ids(options: dict[str, Any]) -> list[str]:
    return sorted(message.id for message in messages(options))


def by_id(options: dict[str, Any], wanted: str) -> Any:
    (found,) = [message for message in messages(options) if message.id == wanted]
    return found


@pytest.fixture(autouse=True)
def _no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SESSIONSHARE_"):
            monkeypatch.delenv(name)


def test_the_suites_project_passes_every_check_as_a_remote_and_as_the_idp() -> None:
    # The control: the forum example's settings, as the README asks for them.
    assert "sessionshare.contrib.django" in settings.INSTALLED_APPS
    assert ids(remote()) == []
    assert ids(idp()) == []


@pytest.mark.parametrize(("middleware", "wanted", "named"), [
    ([DJANGOS, AUTH, PERSISTENT], "sessionshare.E002", OURS),
    ([AUTH, PERSISTENT], "sessionshare.E003", OURS),
    ([OURS, PERSISTENT], "sessionshare.E009", AUTH),
    ([OURS, AUTH], "sessionshare.E005", PERSISTENT),
    ([OURS, PERSISTENT, AUTH], "sessionshare.E008", PERSISTENT),
    ([AUTH, OURS, PERSISTENT], "sessionshare.E008", OURS),
], ids=["djangos-session-middleware", "no-session-middleware", "no-auth-middleware",
        "no-remote-user-middleware", "remote-user-before-auth", "session-after-auth"])
def test_each_middleware_mistake_has_its_id_and_names_the_fix(
    middleware: list[str], wanted: str, named: str
) -> None:
    with override_settings(MIDDLEWARE=middleware):
        found = by_id(remote(), wanted)
    assert found.is_serious() and named in (found.hint or "")


def test_djangos_session_middleware_is_refused_at_the_idp_too() -> None:
    with override_settings(MIDDLEWARE=[DJANGOS, AUTH]):
        assert "sessionshare.E002" in ids(idp())


def test_the_session_engine_must_be_sessionshares() -> None:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db"):
        found = by_id(remote(), "sessionshare.E004")
    assert "sessionshare.contrib.django.session" in (found.hint or "")


def test_a_remote_needs_the_remote_user_backend() -> None:
    """Without it every visit after the hand-off was a 403 "no account for you"."""
    with override_settings(
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]
    ):
        found = by_id(remote(), "sessionshare.E006")
        assert "django.contrib.auth.backends.RemoteUserBackend" in (found.hint or "")
        assert "sessionshare.E006" not in ids(idp())  # the IdP signs in with its own form
    with override_settings(  # a subclass will do (create_unknown_user = False, say)
        AUTHENTICATION_BACKENDS=[f"{__name__}.KnownUsersOnly"]
    ):
        assert ids(remote()) == []


class KnownUsersOnly(RemoteUserBackend):  # type: ignore[misc]  # Django ships no types
    """Named by its path in AUTHENTICATION_BACKENDS: a RemoteUserBackend that admits only
    users this site created."""

    create_unknown_user = False


def test_the_plain_remote_user_middleware_needs_every_path_protected() -> None:
    with override_settings(MIDDLEWARE=[OURS, AUTH, PLAIN]):
        found = by_id(remote(protect=False), "sessionshare.E007")
        assert PERSISTENT in (found.hint or "")
        assert ids(remote(protect=True)) == []


@pytest.mark.parametrize(("config", "said"), [
    ({"idle_timout": 60}, "did you mean 'idle_timeout'"),
    ({"idle_timeout": -1}, "idle_timeout must be a positive number"),
    ({"idp_url": SHOP + "/login"}, "own origin"),
], ids=["unknown-name", "bad-value", "idp-on-own-origin"])
def test_a_setting_the_middleware_refuses_is_e001(config: dict[str, Any], said: str) -> None:
    found = by_id(remote(**config), "sessionshare.E001")
    assert said in found.msg and "SESSIONSHARE" in (found.hint or "")


def test_neither_role_is_e001() -> None:
    found = by_id({}, "sessionshare.E001")
    assert "either idp_url" in found.msg


def test_settings_that_build_but_are_probably_wrong_are_warnings() -> None:
    found = by_id(remote(idp_url="https://id.example"), "sessionshare.W004")
    assert not found.is_serious() and "no path" in found.msg
    assert "memory://" in by_id(remote(store="memory://"), "sessionshare.W004").msg


def test_a_login_url_that_does_not_lead_to_sign_in_is_a_warning() -> None:
    with override_settings(LOGIN_URL="/elsewhere/"):
        found = by_id(remote(), "sessionshare.W001")
        assert "sessionshare.contrib.django.views.sign_in" in (found.hint or "")
        assert "sessionshare.W001" not in ids(idp())


def test_a_wsgi_module_serving_djangos_own_handler_is_a_warning(tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    (tmp_path / "plainsite_wsgi.py").write_text(
        "from django.core.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n")
    (tmp_path / "goodsite_wsgi.py").write_text(
        "from sessionshare.contrib.django.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_settings(WSGI_APPLICATION="plainsite_wsgi.application"):
        found = by_id(remote(), "sessionshare.W002")
        assert "sessionshare.contrib.django.wsgi.get_wsgi_application" in (found.hint or "")
    with override_settings(WSGI_APPLICATION="goodsite_wsgi.application"):
        assert ids(remote()) == []


def test_the_server_refuses_to_start_on_an_error_and_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every request was a 500 with Django's SessionMiddleware left in: now the start fails."""
    with override_settings(MIDDLEWARE=[DJANGOS, AUTH, PERSISTENT]):
        with pytest.raises(ConfigurationError) as refused:
            get_wsgi_application(**remote())
    assert "sessionshare.E002" in str(refused.value) and OURS in str(refused.value)
    with override_settings(LOGIN_URL="/elsewhere/"), caplog.at_level(logging.WARNING):
        assert isinstance(get_wsgi_application(**remote()), RemoteSessionMiddleware)
    assert "sessionshare.W001" in caplog.text


def test_a_project_without_the_app_is_told_to_add_it(caplog: pytest.LogCaptureFixture) -> None:
    apps = [app for app in settings.INSTALLED_APPS if app != "sessionshare.contrib.django"]
    with override_settings(INSTALLED_APPS=apps), caplog.at_level(logging.WARNING):
        get_wsgi_application(**remote())
    assert "sessionshare.W003" in caplog.text and "INSTALLED_APPS" in caplog.text


def test_the_no_account_refusal_says_why_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """The 403 "this site has no account for you" logged only "Forbidden"."""
    with override_settings(AUTHENTICATION_BACKENDS=[f"{__name__}.KnownUsersOnly"]):
        app = get_wsgi_application(**remote(store=MemoryStore()))
        client = webtest.TestApp(app, extra_environ={"HTTP_HOST": "shop.test"})
        name, value = signed_in_cookie(app, "nobody-here")
        with caplog.at_level(logging.WARNING, logger="sessionshare"):
            page = client.get("/accounts/login/", headers={"Cookie": f"{name}={value}"},
                              status=403)
    assert "no account for you" in page.text
    (line,) = [r.getMessage() for r in caplog.records if "remote_user_refused" in
               r.getMessage()]
    assert "RemoteUserBackend" in line and "PersistentRemoteUserMiddleware" in line


# -- a real project: manage.py check, and python -m sessionshare check in it -----------------
SETTINGS = """
SECRET_KEY = "not-secret"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "forumsite.urls"
WSGI_APPLICATION = "forumsite.wsgi.application"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes",
                  "sessionshare.contrib.django"]
MIDDLEWARE = [{session!r}, "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"]
SESSION_ENGINE = "sessionshare.contrib.django.session"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SESSIONSHARE = {{"store": {store!r}, "key": {key!r}, "app_url": "http://forum.localhost:8004",
                "idp_url": "http://idp.localhost:8000/login", "cookie_secure": False,
                "protect": False}}
"""


def _project(root: Path, *, session: str, store: str, key: str) -> Path:
    site = root / "forumsite"
    site.mkdir(parents=True, exist_ok=True)
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(SETTINGS.format(session=session, store=store, key=key))
    (site / "urls.py").write_text(textwrap.dedent("""
        from django.urls import path
        from sessionshare.contrib.django.views import sign_in

        urlpatterns = [path("accounts/login/", sign_in)]
    """))
    (site / "wsgi.py").write_text(textwrap.dedent("""
        from sessionshare.contrib.django.wsgi import get_wsgi_application
from sessionshare.testing import signed_in_cookie

        application = get_wsgi_application()
    """))
    (root / "manage.py").write_text(textwrap.dedent("""
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forumsite.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
    """))
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SESSIONSHARE_") and k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # The tests rewrite settings.py between runs, within a second and sometimes at the
    # same size (OURS is DJANGOS + 4 characters, a 5-digit port is "1" + 4): a .pyc
    # keyed by mtime and size would then hand the next run the previous settings.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_manage_py_check_reports_the_mistakes_by_id(tmp_path: Path) -> None:
    key = SyncKey.generate()
    _project(tmp_path, session=DJANGOS, store="memory://", key=key)
    wrong = _run(tmp_path, "manage.py", "check")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "sessionshare.E002" in wrong.stderr and OURS in wrong.stderr
    _project(tmp_path, session=OURS, store="memory://", key=key)
    right = _run(tmp_path, "manage.py", "check")
    assert right.returncode == 0, right.stdout + right.stderr
    assert "sessionshare.W004" in right.stdout + right.stderr  # memory://: one process only
    assert "sessionshare.E" not in right.stdout + right.stderr


def test_sessionshare_check_reads_the_django_settings(tmp_path: Path, redis_url: str) -> None:
    """`python -m sessionshare check` in a Django project read only SESSIONSHARE_* variables."""
    key = SyncKey.generate()
    _project(tmp_path, session=OURS, store=redis_url, key=key)
    ok = _run(tmp_path, "-m", "sessionshare", "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stderr == "" and "forumsite.settings" in ok.stdout  # it says what it read
    assert "remote: configuration ok" in ok.stdout
    assert SyncKey.parse(key).fingerprint in ok.stdout and key not in ok.stdout
    _project(tmp_path, session=DJANGOS, store=redis_url, key=key)
    wrong = _run(tmp_path, "-m", "sessionshare", "check")
    assert wrong.returncode == 1 and "sessionshare.E002" in wrong.stdout
    assert "configuration ok" not in wrong.stdout
    _project(tmp_path, session=OURS, store="redis://127.0.0.1:1/0", key=key)
    down = _run(tmp_path, "-m", "sessionshare", "check")
    assert down.returncode == 1 and "does not answer" in down.stdout
