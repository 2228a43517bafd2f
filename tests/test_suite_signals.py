"""The test run itself: stopped with SIGTERM, it takes its servers with it.

A CI job cancelled, a ``timeout`` that ran out, ``kill`` from another shell:
each sends SIGTERM, whose default action ended pytest at once, with no
fixture teardown -- five ``redis-server`` processes and a gunicorn master with
its workers lived on. ``tests/conftest.py`` turns the signal into an
interrupt, so every fixture stops what it started.

The run under test is a real pytest process on the soak test (a gunicorn IdP
and shop, the suite's Redis), signalled once its servers are up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _names(processes: list[psutil.Process]) -> list[str]:
    found = []
    for process in processes:
        try:
            found.append(" ".join(process.cmdline())[:120])
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
@pytest.mark.redis
def test_sigterm_to_the_test_run_leaves_no_server_behind() -> None:
    # A run of its own: not a worker of this one (pytest-xdist's variables would make
    # plugins such as pytest-benchmark treat it as one) nor inside this test.
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    env = {**inherited, "SESSIONSHARE_SOAK_SECONDS": "120", "PYTHONPATH": str(REPO)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/reliability/test_soak.py"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: this test can clean up whatever happens
    )
    pytest_process = psutil.Process(run.pid)
    seen: dict[int, psutil.Process] = {}
    try:
        def servers_up() -> bool:
            for child in pytest_process.children(recursive=True):
                seen.setdefault(child.pid, child)
            names = " ".join(_names(list(seen.values())))
            # The suite's Redis, and gunicorn's masters with their workers.
            return "redis-server" in names and names.count("gunicorn") >= 4
        _wait_for(servers_up, 90, "redis-server and gunicorn under the test run")
        time.sleep(1.0)  # the soak's load is running now
        for child in pytest_process.children(recursive=True):
            seen.setdefault(child.pid, child)
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
        text = output.decode(errors="replace")
        _gone, alive = psutil.wait_procs(list(seen.values()), timeout=10)
        assert not alive, f"left running after SIGTERM: {_names(alive)}\n{text[-2000:]}"
        assert run.returncode != 0  # interrupted, not passed
        assert "SIGTERM" in text, text[-2000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
        for process in seen.values():  # whatever a failure above left behind
            try:
                process.kill()
            except psutil.Error:
                pass
