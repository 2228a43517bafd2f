"""The frameworks' own test files, from the source distribution of the installed version.

The tests under this directory run Django's, Flask's, Starlette's and
Pyramid's own session tests against sessionshare's adapters. Their files are
not kept in this repository: :func:`fetch` asks pip for the sdist of the
version that is installed right now (``pip download --no-binary :all:
--no-deps django==<installed>``), extracts the few files the suite needs and
keeps them in a cache directory, so a run downloads each sdist once and an
upgrade of a framework is tested against *its* tests the next run.

The cache is pytest's (``.pytest_cache/d/framework-sources``; a clean clone
downloads once per run), or the directory named by ``SESSIONSHARE_FRAMEWORK_SOURCES``
(a CI cache, or a machine without PyPI: fill it once with the same layout,
``<dist>-<version>/<path in the sdist>``). Without either, a download that
fails is a test failure that says what to do -- never a skip.

Downloads start as pytest finds the test modules (:func:`start`, from the
conftest), all at once, and each module waits for its own at import.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENV_DIR = "SESSIONSHARE_FRAMEWORK_SOURCES"


@dataclass(frozen=True)
class Sources:
    """Which files of a distribution's sdist the suite runs."""

    #: The distribution's name on PyPI.
    dist: str
    #: Paths inside the sdist (below its top directory).
    files: tuple[str, ...]


SOURCES = {
    "django": Sources("django", ("tests/sessions_tests/tests.py",)),
    "flask": Sources("flask", ("tests/test_basic.py",)),
    "starlette": Sources("starlette", ("tests/middleware/test_session.py",)),
    "pyramid": Sources("pyramid", ("tests/test_session.py",)),
}


class SourcesUnavailable(Exception):
    """The framework's test files could not be had; the message says how to fix it."""


#: Set by the conftest from pytest's cache (``config.cache``); the environment wins.
cache_root: Path | None = None
#: Seconds from the start of each download this run made to its files being in place.
timings: dict[str, float] = {}
_running: dict[str, tuple[subprocess.Popen[str], Path, float, bool]] = {}


def _root() -> Path:
    chosen = os.environ.get(ENV_DIR)
    if chosen:
        return Path(chosen)
    if cache_root is not None:
        return cache_root
    return Path(tempfile.gettempdir()) / "sessionshare-framework-sources"


def installed_version(dist: str) -> str:
    return importlib.metadata.version(dist)


def _target(sources: Sources) -> Path:
    return _root() / f"{sources.dist}-{installed_version(sources.dist)}"


def _complete(target: Path, sources: Sources) -> bool:
    return all((target / name).is_file() for name in sources.files)


def _pip(dist: str, version: str, into: Path, *, isolated: bool) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary", ":all:", "--timeout", "30", "--dest", str(into),
               f"{dist}=={version}"]
    if not isolated:
        # pip prepares the sdist's metadata before it saves it; with the build backend
        # already here (setuptools: Django, Pyramid) that takes seconds, not the tens an
        # isolated environment with a fresh setuptools takes for Django's tree.
        command.insert(4, "--no-build-isolation")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


#: The build backends a wheel's ``Generator`` names, as the module that provides each.
_BACKENDS = {"setuptools": "setuptools", "bdist_wheel": "setuptools", "flit": "flit_core",
             "hatchling": "hatchling"}


def _backend_is_here(dist: str) -> bool:
    """Whether the backend that built the installed wheel can be imported here: then pip
    may prepare the sdist's metadata without an isolated build environment."""
    wheel = importlib.metadata.distribution(dist).read_text("WHEEL") or ""
    generator = next((line.split(":", 1)[1].split()[0] for line in wheel.splitlines()
                      if line.startswith("Generator:")), "")
    module = _BACKENDS.get(generator)
    return module is not None and importlib.util.find_spec(module) is not None


def start(name: str) -> None:
    """Start downloading ``name``'s sdist unless it is cached or on its way."""
    sources = SOURCES[name]
    if name in _running or _complete(_target(sources), sources):
        return
    into = Path(tempfile.mkdtemp(prefix=f"sdist-{sources.dist}-"))
    version = installed_version(sources.dist)
    isolated = not _backend_is_here(sources.dist)
    _running[name] = (_pip(sources.dist, version, into, isolated=isolated), into,
                      time.monotonic(), isolated)


def stop_all() -> None:
    """End the downloads this run started and never waited for (a module that was not
    imported after all), and remove their files."""
    while _running:
        _, (process, into, _, _) = _running.popitem()
        process.kill()
        process.communicate()
        shutil.rmtree(into, ignore_errors=True)


def _extract(archive: Path, sources: Sources, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            members = {member.name.split("/", 1)[-1]: member for member in tar.getmembers()
                       if member.isfile() and "/" in member.name}
            for name in sources.files:
                if name not in members:
                    raise SourcesUnavailable(
                        f"{archive.name} has no {name}: the framework moved its tests; "
                        f"update tests/frameworks/sources.py and the module that runs them"
                    )
                data = tar.extractfile(members[name])
                assert data is not None
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data.read())
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target, sources):  # another run's copy, half made: replace it
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(name: str) -> Path:
    """The directory holding ``name``'s test files (paths as in its sdist), downloading
    and extracting them first if the cache lacks them."""
    sources = SOURCES[name]
    target = _target(sources)
    if _complete(target, sources):
        return target
    start(name)
    process, into, started, isolated = _running.pop(name)
    try:
        output, _ = process.communicate(timeout=300)
        if process.returncode != 0 and not isolated:
            # The backend here could not prepare the metadata (too old, say): let pip
            # install the one the sdist asks for, in an isolated environment.
            shutil.rmtree(into, ignore_errors=True)
            into.mkdir()
            version = installed_version(sources.dist)
            process = _pip(sources.dist, version, into, isolated=True)
            output, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            raise SourcesUnavailable(
                f"could not download the sdist of {sources.dist}=={installed_version(sources.dist)}"
                f" to run its own session tests (pip download --no-binary :all: said: "
                f"{output.strip()[-600:]}). These tests need PyPI (or a pip index with sdists); "
                f"without it, put the files {list(sources.files)} of that sdist under "
                f"$SESSIONSHARE_FRAMEWORK_SOURCES/{target.name}/"
            )
        archives = sorted(into.glob("*.tar.gz"))
        if len(archives) != 1:
            raise SourcesUnavailable(
                f"pip download of {sources.dist} gave {[p.name for p in into.iterdir()]}, "
                "not one .tar.gz sdist"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _extract(archives[0], sources, target)
    finally:
        shutil.rmtree(into, ignore_errors=True)
    timings[name] = time.monotonic() - started
    return target


def framework_file(name: str, path: str) -> Path:
    """One of ``name``'s test files (see :data:`SOURCES`), downloaded if need be."""
    assert path in SOURCES[name].files, path
    return fetch(name) / path


def load_module(
    module_name: str, path: Path, *, stubs: dict[str, dict[str, Any]] | None = None
) -> types.ModuleType:
    """Run the file at ``path``, unchanged, as a new module (kept out of ``sys.modules``).

    ``stubs`` stands in for modules of the framework's own test package that
    the file imports (``{"tests.types": {"TestClientFactory": ...}}``): they
    are importable while the file runs, and gone afterwards.
    """
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    planted: list[str] = []
    try:
        for dotted, names in (stubs or {}).items():
            parts = dotted.split(".")
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                if name not in sys.modules:
                    sys.modules[name] = types.ModuleType(name)
                    planted.append(name)
            vars(sys.modules[dotted]).update(names)
        exec(code, module.__dict__)  # noqa: S102 - the framework's own test file
    finally:
        for name in planted:
            del sys.modules[name]
    return module


def load_classes(module_name: str, path: Path, names: Iterable[str]) -> types.ModuleType:
    """The classes ``names`` of the file at ``path``, unchanged, with only the module-level
    imports their code uses.

    Django's ``sessions_tests/tests.py`` also defines test cases for Django's
    other engines, whose imports need apps and models this project does not
    install; its ``SessionTestsMixin`` needs none of them. The classes' own
    text (every test, every assertion) is compiled as it is, from the same
    file and line numbers, so a traceback points into the framework's file.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    wanted = set(names)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name in wanted]
    missing = wanted - {node.name for node in classes}
    if missing:
        raise SourcesUnavailable(f"{path} defines no {sorted(missing)}: update the suite")
    used = {node.id for cls in classes for node in ast.walk(cls) if isinstance(node, ast.Name)}
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and any(_bound(alias) in used for alias in node.names)]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    code = compile(ast.Module(body=[*imports, *classes], type_ignores=[]), str(path), "exec")
    exec(code, module.__dict__)  # noqa: S102 - the framework's own test code
    return module


def _bound(alias: ast.alias) -> str:
    """The name an import binds (``import a.b`` binds ``a``)."""
    return alias.asname or alias.name.split(".")[0]


def unavailable(exc: SourcesUnavailable) -> Callable[[], None]:
    """A test that fails with ``exc``'s message: the stand-in for a module whose framework
    tests could not be had (a collection error would stop the whole run)."""

    def test_the_frameworks_own_tests_are_at_hand() -> None:
        pytest.fail(str(exc), pytrace=False)

    return test_the_frameworks_own_tests_are_at_hand


def names_of(owner: Any, *, prefix: str = "test_") -> Sequence[str]:
    """The test names ``owner`` (a class or a module) defines, in source order."""
    return [name for name in vars(owner) if name.startswith(prefix)
            and callable(getattr(owner, name))]
