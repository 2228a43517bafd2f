"""The table of expected failures names real tests, and docs/frameworks.md says what it says.

docs/frameworks.md has, per framework, a "Differences from <framework>'s own
session" section listing every :class:`~expected.Cause` of the table with the
framework's tests that fail from it, and the framework's tests not run, with
why. Both lists are built here from the tables and must appear in the page as
built (a failure prints the text to paste), so the page shrinks with the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import expected, test_django, test_flask, test_pyramid, test_starlette

DOCS = Path(__file__).resolve().parents[2] / "docs" / "frameworks.md"
TITLES = {"django": "Django", "flask": "Flask", "starlette": "Starlette", "pyramid": "Pyramid"}
MODULES = {"django": test_django, "flask": test_flask, "starlette": test_starlette,
           "pyramid": test_pyramid}


def _ran(framework: str) -> list[str]:
    """The framework's tests this suite runs (names in the framework's file)."""
    names = getattr(MODULES[framework], "RUN", None)
    assert names, f"{TITLES[framework]}'s own tests are not at hand (see the failure above)"
    return list(names)


@pytest.mark.parametrize("framework", sorted(TITLES))
def test_every_entry_names_a_test_that_runs(framework: str) -> None:
    ran = set(_ran(framework))
    stale = [name for name in expected.EXPECTED[framework] if name.split("[")[0] not in ran]
    assert stale == [], f"not among {TITLES[framework]}'s tests run here: {stale}"


def differences(framework: str) -> str:
    """The page's list of differences for ``framework``, built from the table."""
    by_cause: dict[expected.Cause, list[str]] = {}
    for test, entry in expected.EXPECTED[framework].items():
        for cause in entry.causes:
            by_cause.setdefault(cause, []).append(test)
    if not by_cause:
        return "None: every one of its tests that runs here passes.\n"
    return "".join(
        f"- {cause.text}.\n  Its tests: {', '.join(f'`{test}`' for test in tests)}.\n"
        for cause, tests in by_cause.items()
    )


def not_run(framework: str) -> str:
    """The page's list of the framework's tests not run, with why."""
    why_not: dict[str, str] = MODULES[framework].NOT_RUN
    by_reason: dict[str, list[str]] = {}
    for test, reason in why_not.items():
        by_reason.setdefault(reason, []).append(test)
    return "".join(
        f"- {', '.join(f'`{test}`' for test in tests)}: {reason}.\n"
        for reason, tests in by_reason.items()
    )


def _section(framework: str) -> str:
    page = DOCS.read_text(encoding="utf-8")
    heading = f"## Differences from {TITLES[framework]}'s own session\n"
    assert heading in page, f"docs/frameworks.md has no section {heading.strip()!r}"
    return page.split(heading, 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("framework", sorted(TITLES))
def test_the_page_lists_each_difference_with_its_tests(framework: str) -> None:
    block = differences(framework)
    assert block in _section(framework), (
        f"docs/frameworks.md's {TITLES[framework]} section should list, as built from "
        f"tests/frameworks/expected.py:\n{block}")


@pytest.mark.parametrize("framework", sorted(TITLES))
def test_the_page_says_which_tests_do_not_run_and_why(framework: str) -> None:
    block = not_run(framework)
    assert block in _section(framework), (
        f"docs/frameworks.md's {TITLES[framework]} section should list, as built from "
        f"tests/frameworks/test_{framework}.py's NOT_RUN:\n{block}")


def test_the_page_is_in_the_docs_table_of_contents() -> None:
    index = (DOCS.parent / "index.md").read_text(encoding="utf-8")
    assert "\nframeworks\n" in index.split("```{toctree}", 1)[1].split("```", 1)[0]


def test_the_lists_are_built_from_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: a cause added to the table shows in the list the page must hold.
    planted = {**expected.EXPECTED["pyramid"],
               "test_invalidate": expected.fails(expected.Cause("a planted difference"))}
    monkeypatch.setitem(expected.EXPECTED, "pyramid", planted)
    assert differences("pyramid") == "- a planted difference.\n  Its tests: `test_invalidate`.\n"
    assert "a planted difference" not in _section("pyramid")
