"""``python -m sessionshare sessions list | revoke | withdraw`` against a deployment on a real
Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from flow import BLOG, IDP, SHOP, Browser, Deployment
from servers import free_port

from sessionshare import RedisStore, SessionAdmin, SyncKey
from sessionshare.cli import main

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148"


@pytest.fixture
def dep(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    for name in list(os.environ):
        if name.startswith("SESSIONSHARE_"):
            monkeypatch.delenv(name)
    deployment = Deployment(RedisStore.from_url(redis_url), time.time)
    monkeypatch.setenv("SESSIONSHARE_STORE_URL", redis_url)
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", deployment.key)
    return deployment


def signed_in_browser(dep: Deployment, agent: str) -> Browser:
    browser = Browser(dep)
    for app in browser.apps.values():
        app.extra_environ["HTTP_USER_AGENT"] = agent
    browser.sign_in_at(SHOP + "/orders")
    browser.sign_in_at(BLOG + "/x")
    return browser


def test_list_prints_a_table_of_the_users_sessions(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    signed_in_browser(dep, PHONE)
    signed_in_browser(dep, "curl/8.11 " + "x" * 100)
    assert main(["sessions", "list", "--user", "alice"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split("  ")[0] == "REF" and "LAST SEEN (UTC)" in header
    assert header.rstrip().endswith("USER AGENT") and "APPS" in header
    assert len(rows) == 2
    refs = [info.ref for info in SessionAdmin(dep.store, dep.key).sessions("alice")]
    assert [row.split()[0] for row in rows] == refs
    phone, curl = sorted(rows, key=lambda row: "iPhone" not in row)
    assert f"{BLOG}, {SHOP}" in phone and phone.endswith(PHONE[:57] + "...")  # 60 at most
    assert curl.endswith("x...") and time.strftime("%Y-%m-%d", time.gmtime()) in curl


def test_revoke_one_then_all(dep: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    phone, laptop = signed_in_browser(dep, PHONE), signed_in_browser(dep, "laptop")
    infos = SessionAdmin(dep.store, dep.key).sessions("alice")
    ref = next(info.ref for info in infos if info.user_agent == PHONE)
    assert main(["sessions", "revoke", "--user", "alice", "--ref", ref]) == 0
    assert capsys.readouterr().out == f"ended session {ref} of 'alice' in every app\n"
    assert phone.get(SHOP + "/orders").status_int == 302
    assert laptop.get(BLOG + "/x").json["user"] == "alice"
    assert main(["sessions", "revoke", "--user", "alice", "--ref", ref]) == 1
    assert "has no session " + ref in capsys.readouterr().err
    assert main(["sessions", "revoke", "--user", "alice", "--all"]) == 0
    assert capsys.readouterr().out == "ended 1 session of 'alice' in every app\n"
    assert laptop.get(IDP + "/").text == "idp home user=None"
    assert main(["sessions", "list", "--user", "alice"]) == 1
    assert "user 'alice' has no live sessions" in capsys.readouterr().err
    assert main(["sessions", "revoke", "--user", "alice", "--all"]) == 1


def test_withdraw_takes_a_remote_out_of_the_users_sessions(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    phone, laptop = signed_in_browser(dep, PHONE), signed_in_browser(dep, "laptop")
    assert main(["sessions", "withdraw", "--user", "alice", "--origin", BLOG + "/"]) == 0
    assert capsys.readouterr().out == (
        f"withdrew {BLOG} from 2 sessions of 'alice': that app signs the user in again "
        "through the IdP, where authorize decides anew\n"
    )
    for browser in (phone, laptop):
        assert browser.get(BLOG + "/x").status_int == 302  # its next request
        assert browser.get(SHOP + "/orders").json["user"] == "alice"
    assert main(["sessions", "withdraw", "--user", "alice", "--origin", BLOG]) == 1
    assert f"no live session of 'alice' has joined {BLOG}" in capsys.readouterr().err
    assert main(["sessions", "withdraw", "--user", "alice", "--origin", "blog"]) == 2
    assert "origin must be a remote app's origin" in capsys.readouterr().err


@pytest.mark.parametrize("ref", ["zz", "0123456789ABCDEF", "0" * 64, ""])
def test_a_malformed_ref_is_refused_before_the_store(
    dep: Deployment, ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", "revoke", "--user", "alice", "--ref", ref]) == 2
    assert "16 hex characters" in capsys.readouterr().err


def test_settings_to_fix_are_named(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SESSIONSHARE_SYNC_KEY")
    assert main(["sessions", "list", "--user", "alice"]) == 2
    assert "SESSIONSHARE_SYNC_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", "not-a-key")
    assert main(["sessions", "list", "--user", "alice"]) == 2
    assert "not-a-key" not in capsys.readouterr().err
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", dep.key)
    monkeypatch.setenv("SESSIONSHARE_STORE_URL", "http://example.test")
    assert main(["sessions", "list", "--user", "alice"]) == 2
    assert "redis://" in capsys.readouterr().err


def test_a_store_that_is_down_is_said_so_without_the_password() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSHARE_")}
    env["SESSIONSHARE_SYNC_KEY"] = SyncKey.generate()
    env["SESSIONSHARE_STORE_URL"] = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "sessionshare", "sessions", "list", "--user", "alice"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "does not answer" in result.stderr and "SESSIONSHARE_STORE_URL" in result.stderr
    assert "hunter2" not in result.stderr and "redis://***@127.0.0.1" in result.stderr


def test_no_sessions_names_the_key_fingerprint_and_the_store_it_asked(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    redis_url: str,
) -> None:
    """With the wrong key it said only "no live sessions ... check the name"."""
    signed_in_browser(dep, PHONE)
    wrong = SyncKey.generate()
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", wrong)
    assert main(["sessions", "list", "--user", "alice"]) == 1
    err = capsys.readouterr().err
    assert "no live sessions" in err and f"store at {redis_url}" in err
    assert f"key fingerprint {SyncKey.parse(wrong).fingerprint}" in err
    assert "python -m sessionshare fingerprint" in err and wrong not in err
    assert main(["sessions", "revoke", "--user", "alice", "--all"]) == 1
    err = capsys.readouterr().err
    assert f"key fingerprint {SyncKey.parse(wrong).fingerprint}" in err and redis_url in err
    monkeypatch.setenv("SESSIONSHARE_SYNC_KEY", dep.key)  # the control: the apps' key
    assert main(["sessions", "list", "--user", "alice"]) == 0


def test_a_memory_store_is_refused_it_is_this_commands_own(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSIONSHARE_STORE_URL", "memory://")
    assert main(["sessions", "list", "--user", "alice"]) == 2
    err = capsys.readouterr().err
    assert "memory://" in err and "this command's own" in err and "redis://" in err


def test_count_reads_the_census_and_reconcile_repairs_it(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    phone, _ = signed_in_browser(dep, PHONE), signed_in_browser(dep, "laptop")
    assert main(["sessions", "count"]) == 0
    assert capsys.readouterr().out == "2 live sessions (the census: one round trip)\n"
    dep.store.delete(phone.store_key("id.test"))  # an end whose census step never ran
    assert main(["sessions", "count"]) == 0
    assert capsys.readouterr().out.startswith("2 live sessions")
    assert main(["sessions", "reconcile"]) == 0
    assert capsys.readouterr().out == (
        "1 live session by a scan of every index; the census said 2, now 1 "
        "(0 added, 1 taken out)\n")
    assert main(["sessions", "count"]) == 0
    assert capsys.readouterr().out == "1 live session (the census: one round trip)\n"


def test_count_and_reconcile_say_when_the_store_does_not_answer(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSIONSHARE_STORE_URL", f"redis://127.0.0.1:{free_port()}/0")
    for action in ("count", "reconcile"):
        assert main(["sessions", action]) == 1
        assert "does not answer" in capsys.readouterr().err
