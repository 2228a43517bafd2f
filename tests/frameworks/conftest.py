"""Each framework's own session tests, run against sessionshare's adapters.

One module per framework: ``test_django.py``, ``test_flask.py``,
``test_starlette.py``, ``test_pyramid.py``. Their tests are the framework's,
from the sdist of the installed version (:mod:`.sources`); what each module
substitutes -- the framework's own session setup, replaced by sessionshare's,
configured as in a deployment -- its docstring says. A session object from a
real request comes from :mod:`.held`. Every test that fails is a strict xfail
from :mod:`.expected`, with what breaks for a user.

Each item's *framework id* is the test's name in the framework's file, with
the framework's own parameters (``test_partitioned_session[True]``), without
ours (the store, the role), which the table may not tell apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import expected, sources

HERE = Path(__file__).parent
#: The fixture whose parameter is the store, in the modules of test functions.
STORE_FIXTURE = "shared_store"


def pytest_configure(config: pytest.Config) -> None:
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    if cache is not None:
        sources.cache_root = cache.mkdir("framework-sources")


def pytest_unconfigure(config: pytest.Config) -> None:
    sources.stop_all()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    # Every download starts as its module is found, before any module is imported.
    name = file_path.stem.removeprefix("test_")
    if file_path.parent == HERE and name in sources.SOURCES:
        sources.start(name)


def framework_of(item: pytest.Item) -> str | None:
    """``django``, ``flask``... for an item of a framework's module, else None."""
    path = Path(str(item.path))
    name = path.stem.removeprefix("test_")
    return name if path.parent == HERE and name in sources.SOURCES else None


def framework_id(item: pytest.Item) -> str:
    """The test's name in the framework's file, with the framework's parameters only."""
    assert isinstance(item, pytest.Function)
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return item.name
    ours = str(callspec.params.get(STORE_FIXTURE, ""))
    theirs = callspec.id
    if ours and theirs == ours:
        theirs = ""
    elif ours and theirs.startswith(f"{ours}-"):
        theirs = theirs[len(ours) + 1:]
    return f"{item.originalname}[{theirs}]" if theirs else item.originalname


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        framework = framework_of(item)
        if framework is None:
            continue
        entry = expected.entry_for(framework, framework_id(item))
        if entry is None:
            continue
        reason = "; then: ".join(cause.text for cause in entry.causes)
        item.add_marker(pytest.mark.xfail(strict=True, raises=entry.raises, reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if sources.timings:  # what CI pays on a clean clone, for the record
        terminalreporter.write_line("framework sources downloaded (seconds from collection): "
                                    + ", ".join(f"{name} {seconds:.1f}" for name, seconds
                                                in sorted(sources.timings.items())))
