"""Who may ask this miner for work: a pure function of the metagraph, the caller and a policy.

Rules, in order: the caller must be registered on the subnet, hold a validator permit,
and hold at least ``min_validator_stake`` TAO. Checks never raise on unknown hotkeys:
membership is tested before any lookup (``metagraph.hotkeys.index(h)`` on an unknown
hotkey raises -- a known way to crash template miners).
"""

from dataclasses import dataclass
from typing import Any

__all__ = ["BlacklistPolicy", "check_caller", "caller_stake"]


@dataclass(frozen=True)
class BlacklistPolicy:
    min_validator_stake: float = 0.0  # TAO
    require_validator_permit: bool = True


def _uid_of(metagraph: Any, hotkey: str | None) -> int | None:
    if not hotkey:
        return None
    hotkeys = list(metagraph.hotkeys)
    if hotkey not in hotkeys:
        return None
    return hotkeys.index(hotkey)


def caller_stake(metagraph: Any, hotkey: str | None) -> float:
    """The caller's stake in TAO; 0.0 for unknown hotkeys. Used as the request priority."""
    uid = _uid_of(metagraph, hotkey)
    if uid is None:
        return 0.0
    return float(metagraph.S[uid])


def check_caller(metagraph: Any, hotkey: str | None, policy: BlacklistPolicy) -> tuple[bool, str]:
    """``(True, reason)`` when ``hotkey`` must be refused, ``(False, "...")`` when it may call."""
    uid = _uid_of(metagraph, hotkey)
    if uid is None:
        return True, f"hotkey {hotkey} is not registered"
    if policy.require_validator_permit and not bool(metagraph.validator_permit[uid]):
        return True, f"uid {uid} has no validator permit"
    stake = float(metagraph.S[uid])
    if stake < policy.min_validator_stake:
        return True, f"uid {uid} stake {stake:.3f} TAO is below the minimum {policy.min_validator_stake:.3f} TAO"
    return False, f"uid {uid} allowed"
