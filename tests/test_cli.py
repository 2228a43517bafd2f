"""``python -m sessionshare keygen | fingerprint | check`` and settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sessionshare import (
    ConfigurationError,
    IdpAuthMiddleware,
    MemoryStore,
    RedisStore,
    RemoteSessionMiddleware,
    SyncKey,
)
from sessionshare.cli import main


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSHARE_")}
    return subprocess.run(
        [sys.executable, "-m", "sessionshare", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


def test_keygen_prints_a_usable_key() -> None:
    result = run("keygen")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert len(key) == 43
    SyncKey.parse(key)


def test_fingerprint_from_env_and_stdin_match_and_hide_the_key() -> None:
    new, old = SyncKey.generate(), SyncKey.generate()
    from_env = run("fingerprint", env={"SESSIONSHARE_SYNC_KEY": f"{new},{old}"})
    from_stdin = run("fingerprint", "--stdin", stdin=f"{new}\n{old}\n")
    assert from_env.returncode == 0 and from_env.stdout == from_stdin.stdout
    lines = from_env.stdout.splitlines()
    assert lines[0].startswith(SyncKey.parse(new).fingerprint) and "signing" in lines[0]
    assert lines[1].startswith(SyncKey.parse(old).fingerprint) and "accepted" in lines[1]
    assert new not in from_env.stdout and old not in from_env.stdout


def test_fingerprint_of_a_bad_key_fails_clearly() -> None:
    result = run("fingerprint", env={"SESSIONSHARE_SYNC_KEY": "nope"})
    assert result.returncode == 2 and "keygen" in result.stderr


def test_check_names_every_missing_setting() -> None:
    result = run("check", "remote")
    assert result.returncode == 1
    for name in ("SESSIONSHARE_SYNC_KEY", "SESSIONSHARE_APP_URL", "SESSIONSHARE_IDP_URL"):
        assert name in result.stdout


def test_check_reports_bad_values_and_an_unreachable_store(redis_url: str) -> None:
    base = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example, *.blog.example",
    }
    ok = run("check", "idp", env={**base, "SESSIONSHARE_STORE_URL": redis_url})
    assert ok.returncode == 0, ok.stdout
    assert (
        "configuration ok" in ok.stdout
        and SyncKey.parse(base["SESSIONSHARE_SYNC_KEY"]).fingerprint in ok.stdout
    )
    bad = run(
        "check",
        "idp",
        env={**base, "SESSIONSHARE_TOKEN_TTL": "soon", "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "*.com"},
    )
    assert bad.returncode == 1
    assert (
        "SESSIONSHARE_TOKEN_TTL" in bad.stdout and "SESSIONSHARE_KNOWN_REMOTE_HOSTS" in bad.stdout
    )
    down = run("check", "idp", env={**base, "SESSIONSHARE_STORE_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 1 and "does not answer" in down.stdout
    assert base["SESSIONSHARE_SYNC_KEY"] not in bad.stdout + down.stdout


def test_main_requires_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([])
    assert "keygen" in capsys.readouterr().err


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b""]


def test_from_env_builds_both_middlewares(redis_url: str) -> None:
    key = SyncKey.generate()
    env = {
        "SESSIONSHARE_SYNC_KEY": key,
        "SESSIONSHARE_STORE_URL": redis_url,
        "SESSIONSHARE_APP_URL": "https://shop.example",
        "SESSIONSHARE_IDP_URL": "https://id.example/login",
        "SESSIONSHARE_IDLE_TIMEOUT": "600",
        "SESSIONSHARE_COOKIE_NAME": "__Host-shared",
    }
    remote = RemoteSessionMiddleware.from_env(app, env)
    assert isinstance(remote.manager.store, RedisStore)
    assert remote.origin == "https://shop.example" and remote.issuer == "https://id.example"
    assert remote.manager.idle_timeout == 600 and remote.manager.cookie.name == "__Host-shared"
    idp = IdpAuthMiddleware.from_env(
        app,
        {
            **env,
            "SESSIONSHARE_APP_URL": "https://id.example",
            "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example",
            "SESSIONSHARE_STORE_URL": "memory://",
        },
    )
    assert isinstance(idp.manager.store, MemoryStore)
    assert idp.allow_list.is_allowed_callback("https://shop.example/_sessionshare/callback")
    remote.manager.store.close()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SESSIONSHARE_APP_URL": "http://shop.example"}, "cookie_secure=False"),
        ({"SESSIONSHARE_APP_URL": "shop.example"}, "app_url"),
        ({"SESSIONSHARE_IDP_URL": "https://id.example/login?x=1"}, "idp_url"),
        ({"SESSIONSHARE_COOKIE_SECURE": "maybe"}, "SESSIONSHARE_COOKIE_SECURE"),
        ({"SESSIONSHARE_STORE_URL": "mysql://db"}, "SESSIONSHARE_STORE_URL"),
        ({"SESSIONSHARE_IDLE_TIMEOUT": "-5"}, "SESSIONSHARE_IDLE_TIMEOUT"),
        ({"SESSIONSHARE_COOKIE_SAMESITE": "sometimes"}, "samesite"),
    ],
)
def test_bad_configuration_fails_at_construction(overrides: dict[str, str], message: str) -> None:
    env = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_STORE_URL": "memory://",
        "SESSIONSHARE_APP_URL": "https://shop.example",
        "SESSIONSHARE_IDP_URL": "https://id.example/login",
        **overrides,
    }
    with pytest.raises(ConfigurationError, match=message):
        RemoteSessionMiddleware.from_env(app, env)


def test_idp_needs_an_allow_list() -> None:
    with pytest.raises(ConfigurationError, match="known_remote_hosts"):
        IdpAuthMiddleware(
            app,
            store=MemoryStore(),
            key=SyncKey.generate(),
            app_url="https://id.example",
            known_remote_hosts=[],
        )


def test_check_warns_when_redis_may_evict_sessions(redis_url: str) -> None:
    env = {
        "SESSIONSHARE_SYNC_KEY": SyncKey.generate(),
        "SESSIONSHARE_APP_URL": "https://id.example",
        "SESSIONSHARE_KNOWN_REMOTE_HOSTS": "shop.example",
        "SESSIONSHARE_STORE_URL": redis_url,
    }
    admin = RedisStore.from_url(redis_url).client
    try:
        admin.config_set("maxmemory-policy", "volatile-lru")
        evicting = run("check", "idp", env=env)
        admin.config_set("maxmemory-policy", "noeviction")
        safe = run("check", "idp", env=env)
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
    # A warning, not a failure: the settings are right, the server is the operator's.
    assert evicting.returncode == 0 and "configuration ok" in evicting.stdout
    assert "warning: maxmemory-policy is volatile-lru" in evicting.stdout
    assert "noeviction" in evicting.stdout
    assert safe.returncode == 0 and "warning" not in safe.stdout
