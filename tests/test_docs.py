"""The README and the documentation pages in ``docs/``: what a newcomer reads first.

The site itself is built by ``.ci/run`` (``sphinx -W``); these checks hold the
pages to the code: every reason code the library can answer with has a
symptom on the troubleshooting page, and the README stays the short entry
point whose links lead into the docs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from sessionshare.errors import Reason

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
TROUBLESHOOTING = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
CODES = sorted(set(get_args(Reason)))


def test_the_reason_codes_are_read_from_the_library() -> None:
    assert {"replayed", "unknown_ticket", "host_not_allowed", "store_unavailable"} <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_every_reason_code_has_a_symptom_and_a_reference_row(code: str) -> None:
    by_symptom, _, reference = TROUBLESHOOTING.partition("## Every reason code")
    assert reference, "the troubleshooting page lost its reference table"
    assert f"`{code}`" in by_symptom, f"no symptom on docs/troubleshooting.md names {code}"
    assert f"`{code}`" in reference, f"the reference table has no row for {code}"


def test_the_two_commands_are_two() -> None:
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    assert len(rows) == 2, rows
    assert "pip install -e '.[demo]' && python -m sessionshare demo" in rows[0]
    assert "pip install -e '.[dev]' && python -m pytest" in rows[1]


def test_the_readme_links_lead_to_pages_that_exist() -> None:
    targets = re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", README)
    assert "docs/troubleshooting.md" in targets and "docs/options.md" in targets
    for target in targets:
        assert (REPO / target).is_file(), target
    pages = {path.stem for path in (REPO / "docs").glob("*.md")} - {"index"}
    linked = {Path(target).stem for target in targets if target.startswith("docs/")}
    assert pages <= linked, f"pages the README does not lead to: {sorted(pages - linked)}"


def test_the_asgi_quick_start_is_fastapi_in_under_15_lines() -> None:
    section = README.split("**FastAPI, Starlette, any ASGI app**", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) < 15
    for needed in ("FastAPI()", "from sessionshare.asgi import RemoteSessionMiddleware",
                   "AsyncRedisStore", "current_user", "add_middleware"):
        assert needed in code
    assert "docs/options.md" in section.split("```", 1)[0]  # the options table, shared
