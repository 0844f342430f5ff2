"""From moving averages to weights that separate good from great (pure, no chain).

``weights = averages / sum`` pays a 0.9 miner and a 0.7 miner 56 / 44: a miner barely
worse than the best earns almost as much, and copying a mediocre answer pays. The
transform sharpens the averages before normalising:

* ``power`` (default): ``w_i = max(a_i - floor, 0) ** exponent / sum_j max(a_j - floor, 0) ** exponent``
  with ``exponent`` 4 and ``floor`` 0. The ratio of two miners' weights is the ratio of
  their averages to the 4th power: 0.9 vs 0.7 earns (9/7)^4 = 2.73x.
* ``rank``: ``w_i = decay ** rank_i / sum_j decay ** rank_j`` over miners with a positive
  average (rank 0 = best; ties share the mean of their ranks' weights). Only the order
  counts: the gap between averages does not.

The default's split for three miners at 0.9 / 0.7 / 0.5::

    power, exponent 4:  0.6844 / 0.2504 / 0.0652     (68.4 % / 25.0 % / 6.5 %)
    linear (exponent 1): 0.4286 / 0.3333 / 0.2381    (the old averages / sum)
    rank, decay 0.5:    0.5714 / 0.2857 / 0.1429

and for two at 0.9 / 0.7: 0.7321 / 0.2679 (linear: 0.5625 / 0.4375).

NaN, infinite and non-positive averages get weight 0; all zero stays all zero (no
evidence is no ranking: the caller skips setting weights). ``weights_for_chain`` spreads
the vector over every uid for ``chain.set_weights``.
"""

from typing import Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IncentiveCurve", "DEFAULT_CURVE", "LINEAR", "transform_scores", "weights_for_chain", "averages_vector"]


class IncentiveCurve(BaseModel):
    """The transform's settings (one section of the validator's settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["power", "rank"] = Field(
        "power", description="power: weights follow the averages raised to the exponent; rank: by place."
    )
    exponent: float = Field(4.0, gt=0.0, le=64.0, description="Power curve: the exponent (1: linear).")
    floor: float = Field(0.0, ge=0.0, lt=1.0, description="Power curve: averages at or below this earn nothing.")
    decay: float = Field(0.5, gt=0.0, le=1.0, description="Rank curve: each place down earns this share of the one above.")


DEFAULT_CURVE = IncentiveCurve()
LINEAR = IncentiveCurve(exponent=1.0)  # plain averages / sum


def transform_scores(averages: np.ndarray, curve: IncentiveCurve = DEFAULT_CURVE) -> np.ndarray:
    """float64 weights of the same shape, summing to 1 (or all zero when nothing scored)."""
    values = np.asarray(averages, dtype=np.float64)
    values = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    if curve.kind == "power":
        raw = np.maximum(values - curve.floor, 0.0) ** curve.exponent
    else:
        raw = np.zeros_like(values)
        positive = np.flatnonzero(values > 0)
        if positive.size:
            order = positive[np.argsort(-values[positive], kind="stable")]
            share = curve.decay ** np.arange(order.size, dtype=np.float64)
            sorted_values = values[order]
            start = 0
            while start < order.size:  # ties share their places' weights equally
                end = start + 1
                while end < order.size and sorted_values[end] == sorted_values[start]:
                    end += 1
                raw[order[start:end]] = share[start:end].mean()
                start = end
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def weights_for_chain(averages: Mapping[int, float], n_uids: int,
                      curve: IncentiveCurve = DEFAULT_CURVE) -> tuple[np.ndarray, np.ndarray]:
    """``(uids int64, weights float32)`` over every uid 0 .. n_uids-1, for ``chain.set_weights``.

    ``averages`` maps uid -> moving average; uids outside 0 .. n_uids-1 are ignored and
    uids missing from it count as 0. The weights are ``transform_scores`` of that vector.

    Zeros are **kept**: the chain's max-weight clip measures its limit against every uid
    it is given, so with zeros present a limit the few scored miners cannot meet on their
    own spreads the weight evenly over the subnet, which the chain accepts, instead of
    over those few, which it would refuse. Quantisation drops zeros before anything is
    stored, so they cost nothing on chain. ``weights.sum() == 0`` means nothing scored:
    skip the setting (``set_weights`` would answer ``(False, "all weights are zero ...")``).
    The chain's own rules (max-weight clip, u16, minimum count) are the chain adapter's:
    bittensor 11's ``SetWeights`` on subtensor, ``text3d.chain.weight_rules`` on the devnet.
    """
    raw = averages_vector(averages, n_uids)
    return np.arange(n_uids, dtype=np.int64), transform_scores(raw, curve).astype(np.float32)


def averages_vector(averages: Mapping[int, float], n_uids: int) -> np.ndarray:
    """float64 vector of length ``n_uids``: ``averages[uid]`` where given, 0 elsewhere; uids out of range ignored."""
    if n_uids < 0:
        raise ValueError(f"n_uids must be >= 0, got {n_uids}")
    raw = np.zeros(n_uids, dtype=np.float64)
    for uid, value in averages.items():
        if 0 <= uid < n_uids:
            raw[uid] = value
    return raw
