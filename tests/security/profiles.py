"""Hypothesis profiles for the security suite: ``ci`` (default) and ``thorough``.

``ci`` gives every property test a share of a few thousand examples in
total, so the whole security suite stays around a minute on two cores.
``thorough`` runs 100,000 examples *per property test*; it takes a while and
is meant to be run by hand (or nightly)::

    HYPOTHESIS_PROFILE=thorough python -m pytest tests/security -q -p no:cacheprovider

Both profiles have no deadline (timing is measured in benchmarks, never
asserted; a slow example on a busy CI machine is not a failure), no example
database (nothing written into the repository; a failure prints the
``@reproduce_failure`` blob instead), and allow the function-scoped
fixtures used here (a deployment and a store reused across examples, which
is what a long-running server does too).

Tests take their settings from :func:`budget`, never from hypothesis'
global default, so another suite that loads its own profile cannot change
this one's size.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["ACTIVE", "PROFILE", "THOROUGH_EXAMPLES", "budget"]

THOROUGH_EXAMPLES = 100_000
#: Examples per unit of weight in the ci profile (see :func:`budget`).
CI_EXAMPLES_PER_WEIGHT = 250

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much,
                              HealthCheck.large_base_example],
}

settings.register_profile("ci", max_examples=CI_EXAMPLES_PER_WEIGHT, **_COMMON)
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "thorough"):
    PROFILE = "ci"
ACTIVE = settings.get_profile(PROFILE)


def budget(weight: float = 1.0) -> settings:
    """Settings for one property test: ``weight`` shares of the ci budget, or 100,000."""
    if PROFILE == "thorough":
        return settings(ACTIVE, max_examples=THOROUGH_EXAMPLES)
    return settings(ACTIVE, max_examples=max(10, int(CI_EXAMPLES_PER_WEIGHT * weight)))
