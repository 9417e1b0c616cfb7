"""How torch's OpenMP threads wait between parallel regions: chosen per preset, set before torch is imported.

The OpenMP runtime torch ships (GNU libgomp) keeps idle threads spinning after each parallel region (300 000
spins by default). On a 2-core CPU the spinning threads take the cores from ``predict``'s prefetch thread, which
decodes the next video while this one is scored, so decoding and scoring add up instead of overlapping. The light
preset is decode-bound: its idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``). The full preset is compute-bound,
with many short parallel regions that sleeping threads would wake late for: it spins briefly
(``GOMP_SPINCOUNT=10000``). Measured on the 2-core CPU: docs/bench.md, thirty-fifth session. The runtime reads
these variables once, when torch loads it, so the command lines call :func:`set_wait_policy` before their first
torch import; a variable the user set stays as it is.
"""
from __future__ import annotations

import logging
import os
import sys

LOGGER = logging.getLogger(__name__)
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
POLICIES = {"light": {"OMP_WAIT_POLICY": "PASSIVE"}, "full": {"GOMP_SPINCOUNT": "10000"}}


def policy_for(preset: str) -> dict[str, str]:
    """The variables :func:`set_wait_policy` would set for ``preset``; none where the user set either one."""
    if any(name in os.environ for name in VARIABLES):
        return {}
    return dict(POLICIES.get(preset, POLICIES["full"]))


def set_wait_policy(preset: str) -> dict[str, str]:
    """Set ``preset``'s wait policy (:data:`POLICIES`) in the environment, unless the user set either variable or
    torch is already imported (too late to take effect: said in the log). Returns what was set."""
    wanted = policy_for(preset)
    if wanted and "torch" in sys.modules:
        LOGGER.debug("OpenMP wait policy not set: torch was imported first and keeps the runtime's default")
        return {}
    os.environ.update(wanted)
    return wanted


def in_force() -> dict[str, str | None]:
    """The two variables as this process has them (``None``: the runtime's default)."""
    return {name: os.environ.get(name) for name in VARIABLES}
