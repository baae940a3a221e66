"""Hypothesis profiles for the robustness tests and a tally of what they tried (printed after the run).

`GRADTRACE_FUZZ=ci` (default) keeps every property test to a modest, fixed set of examples; `GRADTRACE_FUZZ=long`
multiplies them by LONG_FACTOR, drawn afresh each time, for a separate, longer fuzzing run.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

PROFILES = ("ci", "long")
LONG_FACTOR = 25

PROFILE = os.environ.get("GRADTRACE_FUZZ", "ci")
if PROFILE not in PROFILES:
    raise ValueError(f"unknown GRADTRACE_FUZZ: {PROFILE!r} (must be one of {list(PROFILES)})")

# Random graphs call torch and take milliseconds each: no per-example deadline, and building them by drawing
# ops one at a time is meant to be slow-ish and data-heavy.
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# CI draws the same examples every run (derandomize): a failure there reproduces anywhere, and the figures the
# README quotes stay the same; the long run draws fresh ones each time, to explore.
settings.register_profile(
    "gradtrace-ci", deadline=None, suppress_health_check=_RELAXED, print_blob=True, derandomize=True
)
settings.register_profile("gradtrace-long", parent=settings.get_profile("gradtrace-ci"), derandomize=False)

# What the property tests tried, by kind: 'random graphs', 'steps checked against their Jacobian', ...
TALLY: Counter[str] = Counter()


def fuzz_settings(ci_examples: int) -> settings:
    """Settings of one property test: `ci_examples` in CI, LONG_FACTOR times as many under GRADTRACE_FUZZ=long."""
    parent = settings.get_profile(f"gradtrace-{PROFILE}")
    factor = LONG_FACTOR if PROFILE == "long" else 1
    return settings(parent, max_examples=ci_examples * factor)
