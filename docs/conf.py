"""Sphinx configuration: the documentation site, built with ``python -m sphinx -W``.

Built from the repository as it is: the options page's tables are generated
from the one options declaration (``sessionshare.core.options``) while the
page is read (``options_table.py``, a small extension), the API reference
comes from the docstrings -- the middlewares' ``:param:`` lines among them,
built from that declaration when the package is imported -- and the hand-off
diagram is drawn as SVG by ``diagrams.py``: nothing here is written twice by
hand, nor pasted.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import diagrams  # noqa: E402

import sessionshare  # noqa: E402

project = "sessionshare"
author = "the sessionshare contributors"
release = sessionshare.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode", "options_table"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
# Pages include README sections that start at "##": a jump from the page title is expected.
suppress_warnings = ["myst.header"]

html_theme = "furo"
html_title = f"sessionshare {release}"
html_static_path = ["_static"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

# Drawn at every build, so the picture cannot drift from the code.
(HERE / "_static").mkdir(exist_ok=True)
(HERE / "_static" / "handoff.svg").write_text(diagrams.handoff_svg())
