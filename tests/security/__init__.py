"""Security tests: an attack corpus from real CVEs, property-based fuzzing, a browser oracle.

Run them alone with ``python -m pytest tests/security -q``; the hypothesis
profile is chosen with ``HYPOTHESIS_PROFILE`` (``ci`` by default,
``thorough`` for the 100,000-example run; see :mod:`security.profiles`).
"""
