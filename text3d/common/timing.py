"""How the project times work: repeated runs after a warm-up, medians and percentiles.

One home for the benches and the reports, so every figure the docs quote is computed the
same way: ``time_runs`` returns wall and CPU seconds of each run after ``warmup`` runs
that are not counted; ``percentile`` interpolates linearly (numpy's default), ``q`` in [0, 100].
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

__all__ = ["Timings", "time_runs", "percentile", "median", "Stopwatch"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation; ``ValueError`` when empty."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(float(v) for v in values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median of ``values``; ``ValueError`` when empty."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


@dataclass
class Timings:
    """Seconds of each counted run: ``wall_s`` (perf_counter) and ``cpu_s`` (this process's CPU)."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return median(self.wall_s)

    @property
    def p95_s(self) -> float:
        return percentile(self.wall_s, 95)

    @property
    def cpu_median_s(self) -> float:
        return median(self.cpu_s)


def time_runs(fn: Callable[[], object], runs: int, *, warmup: int = 1,
              sync: Callable[[], None] | None = None, deadline: float | None = None) -> Timings:
    """Run ``fn`` ``warmup`` times uncounted, then ``runs`` times counted.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read, so queued GPU
    work is counted in the run that queued it. ``deadline`` (a ``time.monotonic()`` value)
    stops counting early, after at least one counted run, when the next run (as long as
    the slowest so far) would end after it: a bench under a time budget gets fewer runs
    instead of none.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    timings = Timings()
    for _ in range(runs):
        if deadline is not None and timings.wall_s and time.monotonic() + max(timings.wall_s) > deadline:
            break
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if sync is not None:
            sync()
        timings.wall_s.append(time.perf_counter() - wall)
        timings.cpu_s.append(time.process_time() - cpu)
    return timings


class Stopwatch:
    """Named phase durations: ``with watch.phase("render"): ...`` then ``watch.seconds``."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.seconds: dict[str, float] = {}

    def phase(self, name: str) -> "_Phase":
        return _Phase(self, name)


class _Phase:
    def __init__(self, watch: Stopwatch, name: str) -> None:
        self.watch, self.name = watch, name

    def __enter__(self) -> "_Phase":
        self.started = self.watch._clock()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = self.watch._clock() - self.started
        self.watch.seconds[self.name] = self.watch.seconds.get(self.name, 0.0) + elapsed
