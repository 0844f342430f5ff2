"""Who may queue another job now: a pure decision from a caller's limits and recent usage.

The store counts, inside the same transaction that inserts the job (so the limits hold
across every gateway process sharing one store), the caller's jobs in the last minute and
the last 24 hours -- failed jobs excepted: a failure is never charged -- and its jobs still
queued or running. ``decide`` turns those counts into an ``Admission``:

1. ``concurrency``: jobs queued or running at once (429, ``Retry-After`` 5 s: a job must finish);
2. ``per_minute``: jobs created in the last 60 s (429, ``Retry-After`` until the oldest leaves the window);
3. ``per_day``: jobs created in the last 24 h (429, likewise);
4. the gateway's own queue (``max_queued`` jobs waiting in all): 503 with ``Retry-After``;
   the caller did nothing wrong, the gateway is busy.

The caller's own limits come first, so a flood from one key is refused before it can
fill the shared queue for everyone else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Limits", "Usage", "Admission", "decide", "MINUTE_S", "DAY_S"]

MINUTE_S = 60.0
DAY_S = 86400.0
CONCURRENCY_RETRY_S = 5.0
QUEUE_FULL_RETRY_S = 10.0


@dataclass(frozen=True)
class Limits:
    """A caller's limits; every one at least 1 (a key that may do nothing is a revoked key)."""

    per_minute: int
    per_day: int
    concurrency: int

    def __post_init__(self) -> None:
        for name in ("per_minute", "per_day", "concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class Usage:
    """A caller's charged jobs in the windows, and the oldest of each window (for ``Retry-After``)."""

    last_minute: int = 0
    last_day: int = 0
    in_flight: int = 0
    oldest_in_minute: float | None = None
    oldest_in_day: float | None = None


@dataclass(frozen=True)
class Admission:
    """``allowed``, or the HTTP ``status`` (429/503) with one sentence and a ``Retry-After`` in seconds."""

    allowed: bool
    status: int = 202
    reason: str = ""
    retry_after_s: float | None = None
    limit: str | None = None  # concurrency | per_minute | per_day | queue: for metrics

    @property
    def retry_after_header(self) -> str | None:
        return None if self.retry_after_s is None else str(max(1, int(math.ceil(self.retry_after_s))))


def decide(limits: Limits, usage: Usage, *, now: float, queued_total: int, max_queued: int) -> Admission:
    """Admit one more job, or say which limit refuses it and when to try again."""
    if usage.in_flight >= limits.concurrency:
        return Admission(False, 429, f"{usage.in_flight} of your jobs are queued or running, the limit is "
                         f"{limits.concurrency}: wait for one to finish", CONCURRENCY_RETRY_S, "concurrency")
    if usage.last_minute >= limits.per_minute:
        wait = _until_out(usage.oldest_in_minute, MINUTE_S, now)
        return Admission(False, 429, f"the limit is {limits.per_minute} jobs a minute", wait, "per_minute")
    if usage.last_day >= limits.per_day:
        wait = _until_out(usage.oldest_in_day, DAY_S, now)
        return Admission(False, 429, f"the limit is {limits.per_day} jobs a day", wait, "per_day")
    if queued_total >= max_queued:
        return Admission(False, 503, f"the gateway has {queued_total} jobs waiting, its limit: try again shortly",
                         QUEUE_FULL_RETRY_S, "queue")
    return Admission(True)


def _until_out(oldest: float | None, window_s: float, now: float) -> float:
    """Seconds until the oldest counted job leaves the window (at least 1)."""
    if oldest is None:
        return 1.0
    return max(1.0, oldest + window_s - now)
