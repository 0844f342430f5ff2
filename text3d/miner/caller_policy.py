"""Who may ask this miner for work: a pure function of the metagraph, the claimed hotkey and a policy.

Rules, in order: the caller must be registered on the subnet, hold a validator permit
(unless the policy waives it), and hold at least ``min_validator_stake`` TAO. The check
runs on the hotkey the btauth headers *claim*, before the body is read or the signature
checked: refusing a stranger costs a dictionary lookup, not a body read and an sr25519
verification. A caller that passes is then verified cryptographically, so a forged
claim gains nothing but a 401 after a 4 KiB read.

Never raises on unknown hotkeys: membership is tested before any lookup (indexing a
metagraph with an unknown hotkey is a known way to crash template miners).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CallerPolicy", "CallerDecision", "check_caller"]


@dataclass(frozen=True)
class CallerPolicy:
    min_validator_stake: float = 0.0  # TAO
    require_validator_permit: bool = True


@dataclass(frozen=True)
class CallerDecision:
    """``allowed`` and, when refused, the one-line ``reason`` sent back with HTTP 403.

    ``stake`` (TAO) orders the miner's queue: higher stake is served first.
    """

    allowed: bool
    reason: str
    uid: int | None = None
    stake: float = 0.0


def check_caller(metagraph: Any, hotkey: str | None, policy: CallerPolicy) -> CallerDecision:
    """Decide for ``hotkey`` on ``metagraph`` (anything with ``uid_of`` and ``neuron``)."""
    if metagraph is None:
        return CallerDecision(False, "the miner has not synced the metagraph yet")
    uid = metagraph.uid_of(hotkey) if hotkey else None
    if uid is None:
        return CallerDecision(False, "hotkey is not registered on this subnet")
    neuron = metagraph.neuron(uid)
    stake = float(neuron.stake)
    if policy.require_validator_permit and not bool(neuron.validator_permit):
        return CallerDecision(False, f"uid {uid} has no validator permit", uid, stake)
    if stake < policy.min_validator_stake:
        return CallerDecision(
            False, f"uid {uid} stake {stake:.3f} TAO is below the minimum {policy.min_validator_stake:.3f} TAO", uid, stake
        )
    return CallerDecision(True, f"uid {uid} allowed", uid, stake)
