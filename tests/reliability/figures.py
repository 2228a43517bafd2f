"""Where the reliability suite's measured figures go: stdout and tests/artifacts/.

Each test that measures something (requests, 503s, recovery time, latency,
memory) calls :func:`report` once; ``pytest -s`` shows the line, and
``tests/artifacts/reliability.txt`` (git-ignored) keeps every run's lines.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["ARTIFACTS", "report"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def report(title: str, figures: dict[str, object]) -> None:
    """Print a test's figures and append them to tests/artifacts/reliability.txt."""
    line = f"{title}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[reliability] {line}")
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "reliability.txt", "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
