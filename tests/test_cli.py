"""``python -m sessionshare keygen | fingerprint`` and the command dispatch.

``check``, ``options`` and the settings they read are tested in ``test_options.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sessionshare import SyncKey
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


def test_main_requires_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([])
    assert "keygen" in capsys.readouterr().err


def test_fingerprint_on_a_terminal_without_the_variable_says_what_to_set() -> None:
    """It used to wait in silence for keys typed at the terminal."""
    import pty

    primary, secondary = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONSHARE_")}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sessionshare", "fingerprint"], stdin=secondary,
            capture_output=True, text=True, env=clean, timeout=30, check=False,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert result.returncode == 2
    assert "SESSIONSHARE_SYNC_KEY is not set" in result.stderr
    assert "--stdin" in result.stderr and "keygen" in result.stderr


def test_version_and_help_name_the_program_as_invoked() -> None:
    from sessionshare import __version__

    assert run("--version").stdout.strip() == f"sessionshare {__version__}"
    module_help = run("--help").stdout
    assert module_help.startswith("usage: python -m sessionshare")
    assert "``" not in module_help  # no raw reStructuredText
    script = os.path.join(os.path.dirname(sys.executable), "sessionshare")
    assert os.path.exists(script), "the console script is installed with the package"
    installed = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60,
                               check=False)
    assert installed.returncode == 0 and installed.stdout.startswith("usage: sessionshare ")


def test_check_says_which_role_it_assumed_and_which_store_it_asked() -> None:
    env = {"SESSIONSHARE_SYNC_KEY": SyncKey.generate(), "SESSIONSHARE_APP_URL": "https://x.example",
           "SESSIONSHARE_STORE_URL": "redis://:hunter2@127.0.0.1:1/0"}
    result = run("check", env=env)
    assert "checking as a remote app" in result.stdout and "check idp" in result.stdout
    result = run("check", env={**env, "SESSIONSHARE_IDP_URL": "https://id.example/login"})
    assert result.returncode == 1
    assert "the store at redis://***@127.0.0.1:1/0 does not answer" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    unset = run("check", env={k: v for k, v in env.items() if k != "SESSIONSHARE_STORE_URL"}
                | {"SESSIONSHARE_IDP_URL": "https://id.example/login"})
    assert "store at redis://127.0.0.1:6379/0 (the default)" in unset.stdout


def _in_words(count: int) -> str:
    return ("zero one two three four five six seven eight nine ten".split())[count]


def test_the_help_counts_the_demos_sites() -> None:
    """`--help` said "two remote apps" and `demo --help` "the shop and the blog take the
    next two": the demo runs four."""
    from sessionshare.demo import SITES

    remotes = _in_words(len(SITES) - 1)
    assert f"an IdP and {remotes} remote apps" in " ".join(run("--help").stdout.split())
    demo_help = " ".join(run("demo", "--help").stdout.split())
    assert f"the other sites take the next {remotes}" in demo_help
    for wrong in ("two remote apps", "take the next two"):
        assert wrong not in run("--help").stdout + demo_help
