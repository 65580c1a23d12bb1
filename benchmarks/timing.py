"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import time
from collections.abc import Callable


def run_times(repeat: int, action: Callable[[], object]) -> list[float]:
    """Seconds each of ``repeat`` runs of ``action`` took, in order."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times
