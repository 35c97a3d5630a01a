"""The wall clock: the service is the edge that owns it and passes ``now`` to the engine."""

from __future__ import annotations

import time


def wall_clock() -> float:
    return time.time()  # the one wall-clock read of the live control plane
