"""Weights are a pure function of the moving averages; the chain's rules are the adapter's.

Pinned rules: normalised weights sum to 1; NaN, inf and negatives count as 0; all-zero
input stays zero (no evidence is not a ranking); ``weights_for_chain`` covers every uid
0 .. n-1 and keeps the zeros, so a max-weight limit the few scored miners cannot meet
spreads the weight over the subnet instead of being refused.
"""

import numpy as np
import pytest

from text3d.chain.weight_rules import U16_MAX, conform_weights
from text3d.validator.weights import LINEAR, transform_scores, weights_for_chain


def weights_for_chain_linear(averages, n_uids):
    """The linear curve (plain averages / sum): the rules below hold for every curve, most readably here."""
    return weights_for_chain(averages, n_uids, LINEAR)


def normalize_scores(scores):
    return transform_scores(scores, LINEAR)


def test_normalised_weights_sum_to_one():
    weights = normalize_scores(np.array([1.0, 3.0, 0.0]))
    assert weights.dtype == np.float64
    np.testing.assert_allclose(weights, [0.25, 0.75, 0.0])


def test_all_zeros_stay_zero():
    np.testing.assert_array_equal(normalize_scores(np.zeros(4)), np.zeros(4))
    assert normalize_scores(np.array([])).shape == (0,)


def test_nan_inf_and_negative_count_as_zero():
    weights = normalize_scores(np.array([np.nan, 1.0, np.inf, -5.0, 1.0]))
    np.testing.assert_allclose(weights, [0.0, 0.5, 0.0, 0.0, 0.5])
    assert np.isfinite(weights).all()


def test_every_uid_is_listed_and_zeros_are_kept():
    uids, weights = weights_for_chain_linear({1: 0.6, 3: 0.2}, 5)
    assert uids.dtype == np.int64 and weights.dtype == np.float32
    assert uids.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(weights, [0.0, 0.75, 0.0, 0.25, 0.0])


def test_single_miner_takes_everything():
    uids, weights = weights_for_chain_linear({3: 0.4}, 5)
    assert dict(zip(uids.tolist(), weights.tolist())) == {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0, 4: 0.0}


def test_uids_beyond_the_metagraph_are_ignored():
    uids, weights = weights_for_chain_linear({0: 1.0, 9: 1.0, -1: 5.0}, 2)
    assert uids.tolist() == [0, 1]
    np.testing.assert_allclose(weights, [1.0, 0.0])


def test_no_evidence_gives_zero_weights_and_an_empty_subnet_gives_nothing():
    uids, weights = weights_for_chain_linear({0: 0.0, 1: float("nan")}, 3)
    assert uids.tolist() == [0, 1, 2] and not weights.any()
    uids, weights = weights_for_chain_linear({}, 0)
    assert uids.shape == weights.shape == (0,)
    with pytest.raises(ValueError):
        weights_for_chain_linear({}, -1)


def test_kept_zeros_let_an_unmeetable_limit_spread_weight_over_the_subnet():
    """Two scored miners cannot each stay under a 0.2 limit; with the other eight uids
    present the rules spread the weight evenly over all ten (the chain accepts that),
    while the two alone would come out 0.5 each, over the limit."""
    uids, weights = weights_for_chain_linear({0: 1.0, 1: 0.5}, 10)
    kept_uids, values = conform_weights(uids, weights, max_weight_limit=0.2, min_allowed_weights=1, self_uid=None)
    assert kept_uids == list(range(10)) and values == [U16_MAX] * 10
    _, alone = conform_weights([0, 1], [1.0, 0.5], max_weight_limit=0.2, min_allowed_weights=1, self_uid=None)
    assert max(alone) / sum(alone) == 0.5


def test_zeros_never_reach_the_chain():
    uids, weights = weights_for_chain_linear({2: 0.9, 4: 0.1}, 6)
    assert conform_weights(uids, weights, max_weight_limit=1.0, min_allowed_weights=1, self_uid=None)[0] == [2, 4]
