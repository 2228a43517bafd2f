"""``python -m benchmarks.scale``: see :mod:`benchmarks.scale.run`."""

from __future__ import annotations

from .run import main

raise SystemExit(main())
