"""sessionshare's benchmark harness (issue 5): ``python -m benchmarks --help``.

In-process cases (a)-(h), the same apps served by gunicorn and driven by
``wrk``, and resident-memory growth, all in one run against one
redis-server the harness starts itself. See ``benchmarks/README.md``.
"""
