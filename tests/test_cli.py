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
