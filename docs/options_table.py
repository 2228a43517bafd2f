"""A Sphinx extension: the options page's tables, generated when the site is built.

docs/options.md holds no table of its own, only the markers below and a line
for readers of the bare file; when Sphinx reads the page, this hook puts the
tables generated from the options declaration between them
(:func:`sessionshare.core.optiondocs.options_markdown`, which ``python -m
sessionshare options --markdown`` prints too). Nothing is pasted, so nothing
can go stale: tests/test_core_options.py builds the page with this hook and
checks every option is on it.
"""

from __future__ import annotations

from typing import Any

from sessionshare.core.optiondocs import options_markdown

BEGIN = "<!-- options table: generated from the declaration when the site is built -->"
END = "<!-- end of options table -->"


def expand(text: str) -> str:
    """``text`` with the generated tables between the markers (what was there dropped)."""
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n\n{options_markdown()}\n{END}{after}"


def _on_source_read(app: Any, docname: str, source: list[str]) -> None:
    if BEGIN in source[0]:
        source[0] = expand(source[0])


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
