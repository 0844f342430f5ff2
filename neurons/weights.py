"""From moving averages to the weights a validator sends: pure normalisation, nothing more.

The chain's own rules (max-weight clip, u16 quantisation, minimum count) belong to the
chain adapter: bittensor 11's ``SetWeights`` applies them on subtensor, and the devnet
applies the same rules through ``neurons.chain.weight_rules.conform_weights``. This module
only turns scores into a normalised vector over every uid; the validator then calls::

    uids, weights = weights_for_chain(state.averages, metagraph.n)
    ok, message = chain.set_weights(wallet, uids, weights, SPEC_VERSION)
"""

from typing import Mapping

import numpy as np

__all__ = ["normalize_scores", "weights_for_chain", "averages_vector"]


def normalize_scores(scores: np.ndarray) -> np.ndarray:
    """float32 weights of the same shape summing to 1, or all zeros when nothing scored.

    NaN, inf and negative entries count as 0 (a broken score is no evidence). All-zero
    input stays all-zero: no evidence is not a ranking, and the chain refuses an all-zero
    setting, so the caller skips setting weights instead.
    """
    values = np.asarray(scores, dtype=np.float64)
    values = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    total = values.sum()
    if total <= 0:
        return np.zeros(values.shape, dtype=np.float32)
    return (values / total).astype(np.float32)


def weights_for_chain(averages: Mapping[int, float], n_uids: int) -> tuple[np.ndarray, np.ndarray]:
    """``(uids int64, weights float32)`` over every uid 0 .. n_uids-1, for ``chain.set_weights``.

    ``averages`` maps uid -> moving average; uids outside 0 .. n_uids-1 are ignored and
    uids missing from it count as 0. The weights are ``normalize_scores`` of that vector.

    Zeros are **kept**: the chain's max-weight clip measures its limit against every uid
    it is given, so with zeros present a limit the few scored miners cannot meet on their
    own spreads the weight evenly over the subnet, which the chain accepts, instead of
    over those few, which it would refuse. Quantisation drops zeros before anything is
    stored, so they cost nothing on chain. ``weights.sum() == 0`` means nothing scored:
    skip the setting (``set_weights`` would answer ``(False, "all weights are zero ...")``).
    """
    return np.arange(n_uids, dtype=np.int64), normalize_scores(averages_vector(averages, n_uids))


def averages_vector(averages: Mapping[int, float], n_uids: int) -> np.ndarray:
    """float64 vector of length ``n_uids``: ``averages[uid]`` where given, 0 elsewhere; uids out of range ignored."""
    if n_uids < 0:
        raise ValueError(f"n_uids must be >= 0, got {n_uids}")
    raw = np.zeros(n_uids, dtype=np.float64)
    for uid, value in averages.items():
        if 0 <= uid < n_uids:
            raw[uid] = value
    return raw
