"""sessionshare/__init__.py: the public names, and what ``import sessionshare`` costs."""

from __future__ import annotations

import os
import subprocess
import sys

import sessionshare


def _imported_after(code: str) -> set[str]:
    # A fresh interpreter: this one imported redis long ago (the suite's own Redis).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout
    return set(out.split())


def test_import_leaves_redis_out() -> None:
    modules = _imported_after("import sessionshare\nfrom sessionshare import MemoryStore")
    assert "sessionshare.wsgi.idp" in modules  # the check below is not vacuous
    assert "redis" not in modules and "sessionshare.store.redis" not in modules


def test_redis_store_is_imported_on_first_use() -> None:
    modules = _imported_after("from sessionshare import RedisStore")
    assert "redis" in modules
    from sessionshare.store.redis import RedisStore

    assert sessionshare.RedisStore is RedisStore
    assert "RedisStore" in sessionshare.__all__


def test_unknown_names_still_raise_attribute_error() -> None:
    assert not hasattr(sessionshare, "NoSuchThing")


def test_the_asgi_shell_imports_neither_redis_nor_a_framework() -> None:
    modules = _imported_after("from sessionshare.asgi import RemoteSessionMiddleware")
    assert "sessionshare.asgi.remote" in modules  # the check below is not vacuous
    assert not {"redis", "starlette", "fastapi", "uvicorn"} & modules
