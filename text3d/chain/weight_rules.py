"""The subnet's weight rules as one pure function: what a chain stores for given weights.

bittensor 11's ``SetWeights`` conforms a validator's weights to the subnet's
hyperparameters before it signs anything; the devnet applies the same rules through
``conform_weights``, so both chains store the same u16 values for the same averages.
``tests/test_weight_rules.py`` pins the rules to hand-computed vectors and checks them
against the SDK's own ``clip_to_max_weight`` + ``normalize`` on random vectors.

The rules, in order:

1. Input checks: as many weights as uids, uids unique and in 0 .. 65535, every weight
   finite and >= 0. A NaN, an infinity or a negative weight is **refused**, not read as
   0: it means the caller's scoring is broken, and quietly zeroing it would set weights
   nobody computed. (``text3d.validator.weights.transform_scores`` zeroes them on purpose, one step
   earlier, where the validator's policy lives.)
2. Max-weight clip (skipped when ``max_weight_limit`` is 1, or for a lone self-weight):
   the weights are normalised to sum 1 and, when the largest share is above the limit,
   every share above a cut-off is lowered to it, the cut-off chosen so the largest share
   lands a hair (``_MARGIN`` of the total) under the limit: the clipped mass is spread
   over the rest in proportion, not dropped. The cut-off counts every uid given,
   zeros included; when no cut-off above the kept shares can satisfy the limit (the
   limit times the number of uids is at most 1, or the non-zero shares are too few to
   share the mass) every uid given gets the same weight.
3. Quantisation to u16 by max-upscaling: the largest weight becomes 65535, each other
   ``round(w / max * 65535)`` (Python's round, half to even); uids whose value rounds to
   0 are dropped. All-zero input is refused.
4. Minimum count: fewer than ``min_allowed_weights`` non-zero values is refused, except
   for a lone self-weight (``uids == [self_uid]``), which the chain exempts from both the
   clip and the minimum.

Refusals raise ``WeightsRefused`` (a ``ValueError``) whose message is one sentence; the
devnet returns it as ``(False, message)`` from ``set_weights``, as subtensor does.
"""

from math import isfinite
from typing import Sequence

__all__ = ["U16_MAX", "WeightsRefused", "conform_weights", "clip_to_max_weight"]

U16_MAX = 65535

_MARGIN = 1e-7
"""Share of the total the largest clipped weight stays under the limit by (the SDK's value),
so float error cannot put it over. u16 rounding afterwards can still move ``max / sum`` by
up to half a unit per uid, as it does in the SDK."""


class WeightsRefused(ValueError):
    """The chain would not accept these weights; ``str(error)`` says why."""


def conform_weights(
    uids: Sequence[int],
    weights: Sequence[float],
    *,
    max_weight_limit: float,
    min_allowed_weights: int,
    self_uid: int | None,
) -> tuple[list[int], list[int]]:
    """The ``(uids, u16 values)`` a chain stores for these weights (rules in the module doc).

    ``max_weight_limit`` is a fraction in (0, 1]; ``self_uid`` is the setter's own uid
    (None when unknown: no self-weight exemption). The result is parallel lists of
    Python ints, in the input's uid order, zeros dropped, the largest value 65535.
    Raises ``WeightsRefused`` for input the chain would refuse, ``ValueError`` for a
    ``max_weight_limit`` or ``min_allowed_weights`` out of range.
    """
    if not 0.0 < max_weight_limit <= 1.0:
        raise ValueError(f"max_weight_limit must be a fraction in (0, 1], got {max_weight_limit}")
    if min_allowed_weights < 0:
        raise ValueError(f"min_allowed_weights must be >= 0, got {min_allowed_weights}")
    uid_list = [int(uid) for uid in uids]
    values = [float(weight) for weight in weights]
    _check_input(uid_list, values)

    self_weight = self_uid is not None and uid_list == [int(self_uid)]
    if not self_weight and max_weight_limit < 1.0:
        values = clip_to_max_weight(values, max_weight_limit)

    top = max(values, default=0.0)
    if top <= 0.0:
        raise WeightsRefused("all weights are zero; nothing to set")
    kept_uids: list[int] = []
    kept_values: list[int] = []
    for uid, value in zip(uid_list, values):
        quantised = round(value / top * U16_MAX)
        if quantised:
            kept_uids.append(uid)
            kept_values.append(quantised)

    if not self_weight and len(kept_uids) < min_allowed_weights:
        raise WeightsRefused(
            f"the subnet requires at least {min_allowed_weights} non-zero weights, "
            f"only {len(kept_uids)} remain after quantisation"
        )
    return kept_uids, kept_values


def clip_to_max_weight(weights: Sequence[float], limit: float) -> list[float]:
    """Shares summing to 1 with none above ``limit`` (rule 2 of the module doc).

    ``weights`` are finite and >= 0 with a positive sum (raises ``WeightsRefused``
    otherwise). Shares already within the limit are only normalised.
    """
    count = len(weights)
    total = float(sum(weights))
    if count == 0 or not total > 0.0:
        raise WeightsRefused("all weights are zero; nothing to set")
    if count * limit <= 1.0:
        return [1.0 / count] * count  # no distribution over `count` uids can satisfy the limit
    shares = [w / total for w in weights]
    if max(shares) <= limit:
        return shares

    # Walk the shares from the smallest up. A share may stay as it is when, were every
    # larger share lowered to it, it would still be within the limit; the first share
    # that fails, and every larger one, is lowered to the common cut-off.
    ascending = sorted(shares)
    kept = 0
    kept_sum = 0.0
    for position, share in enumerate(ascending):
        running = kept_sum + share
        larger = count - position - 1
        if not share / (larger * share + running + _MARGIN) < limit:
            break
        kept, kept_sum = kept + 1, running
    lowered = count - kept
    denominator = 1.0 - limit * lowered
    if denominator <= 0.0:
        return [1.0 / count] * count
    cutoff = (limit * kept_sum - _MARGIN) / denominator * total
    # A cut-off at or below zero (the kept shares are all ~0) lowers every weight to it:
    # the result is then the same for every uid, as when no limit can be met.
    clipped = [min(float(w), cutoff) for w in weights]
    clipped_total = sum(clipped)
    if clipped_total == 0.0:
        return [1.0 / count] * count
    return [w / clipped_total for w in clipped]


def _check_input(uids: list[int], values: list[float]) -> None:
    if len(uids) != len(values):
        raise WeightsRefused(f"{len(uids)} uids but {len(values)} weights")
    if len(set(uids)) != len(uids):
        raise WeightsRefused("duplicate uids; each uid may appear once")
    if any(not 0 <= uid <= U16_MAX for uid in uids):
        raise WeightsRefused(f"uids must be in 0..{U16_MAX}")
    if any(not isfinite(value) or value < 0.0 for value in values):
        raise WeightsRefused("weights must be finite and non-negative")
