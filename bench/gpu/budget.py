"""One time budget for the whole run: how long a part may take now, or that it no longer fits.

Stdlib only. Each part has a timeout (its cap) and a minimum (what the budget keeps for it); a
part gets the smaller of its timeout and what is left after the minimums of the required parts
still to come, or is skipped when that is below its own minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PartSpec", "plan_timeout"]


@dataclass(frozen=True)
class PartSpec:
    name: str
    timeout_s: float
    minimum_s: float


def plan_timeout(spec: PartSpec, remaining_s: float, reserved_after_s: float) -> float | None:
    """The timeout a part gets now, or None when what is left cannot fit its minimum.

    ``remaining_s`` is the budget left; ``reserved_after_s`` the minimum of the required parts after it.
    """
    available = remaining_s - reserved_after_s
    if available < spec.minimum_s:
        return None
    return min(spec.timeout_s, available)
