"""Figures at scale, by simulation on one machine: ``python -m benchmarks.scale --help``.

Redis memory per session beside Flask-Session and Beaker (:mod:`.memory`); a
million sessions loaded -- the authenticated read, a revocation, the
active-sessions count (:mod:`.million`, the sessions copied by
:mod:`.population` from ones signed in for real by :mod:`.deployment`); a
local 3-master Cluster -- the keys' spread and no script crossing slots
(:mod:`.cluster`). :mod:`.run` starts and stops every server; :mod:`.tables`
prints the report. See ``benchmarks/README.md`` and ``docs/scaling.md``.
"""
