"""From moving averages to the weights a validator sets: pure normalisation, then chain rules.

``normalize_scores`` is pure: non-finite or negative values become 0, the rest are
divided by their sum; all-zero input stays all-zero (the caller decides what to do:
the chain's own ``process_weights`` then spreads weight uniformly, as subtensor
expects from a validator with no evidence yet).

``weights_for_chain`` applies the subnet's ``min_allowed_weights`` and
``max_weight_limit`` through ``bittensor.utils.weight_utils.process_weights_for_netuid``
(works offline). That function wants a subtensor-like object; ``SubnetLimits`` is the
minimal one, built from whatever the chain adapter exposes.
"""

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["SubnetLimits", "normalize_scores", "limits_of", "weights_for_chain"]


@dataclass(frozen=True)
class SubnetLimits:
    """The two hyperparameters ``process_weights_for_netuid`` asks a subtensor for."""

    min_allowed_weights_: int = 1
    max_weight_limit_: float = 1.0

    def min_allowed_weights(self, netuid: int) -> int:
        return self.min_allowed_weights_

    def max_weight_limit(self, netuid: int) -> float:
        return self.max_weight_limit_


def normalize_scores(scores: np.ndarray) -> np.ndarray:
    """float32 weights of the same shape summing to 1, or all zeros when nothing scored.

    NaN, inf and negative entries count as 0.
    """
    values = np.asarray(scores, dtype=np.float64)
    values = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    total = values.sum()
    if total <= 0:
        return np.zeros(values.shape, dtype=np.float32)
    return (values / total).astype(np.float32)


def limits_of(chain: Any) -> SubnetLimits:
    """Subnet limits from the adapter when it exposes them, else permissive defaults."""
    values = {}
    for name in ("min_allowed_weights", "max_weight_limit"):
        getter = getattr(chain, name, None)
        if callable(getter):
            try:
                values[name + "_"] = getter()
            except TypeError:  # a bt.Subtensor-style getter wanting the netuid
                values[name + "_"] = getter(netuid=chain.netuid)
    return SubnetLimits(**values)


def weights_for_chain(
    averages: Mapping[int, float],
    n_uids: int,
    netuid: int,
    limits: SubnetLimits,
    metagraph: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``(uids int64, weights float32)`` ready for ``chain.set_weights``.

    ``averages`` maps uid -> moving average; uids >= ``n_uids`` are ignored.
    """
    from bittensor.utils.weight_utils import process_weights_for_netuid

    raw = np.zeros(n_uids, dtype=np.float32)
    for uid, value in averages.items():
        if 0 <= uid < n_uids:
            raw[uid] = value
    uids = np.arange(n_uids, dtype=np.int64)
    processed_uids, processed = process_weights_for_netuid(
        uids=uids, weights=normalize_scores(raw), netuid=netuid, subtensor=limits, metagraph=metagraph
    )
    return np.asarray(processed_uids, dtype=np.int64), np.asarray(processed, dtype=np.float32)
