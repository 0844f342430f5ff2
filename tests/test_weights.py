"""Weights are a pure function of the moving averages, then the subnet's own rules.

Pinned rules: normalised weights sum to 1; NaN, inf and negatives count as 0; all-zero
input stays zero (no evidence is not a ranking); a single scoring miner takes all the
weight; the chain-ready weights go through bittensor's ``process_weights_for_netuid``
with the subnet's ``max_weight_limit``.
"""

import bittensor as bt
import numpy as np
import pytest

from neurons.weights import SubnetLimits, limits_of, normalize_scores, weights_for_chain


def graph(n):
    metagraph = bt.Metagraph(1, network="local", sync=False)
    metagraph.n = np.array(n)
    return metagraph


def test_normalised_weights_sum_to_one():
    weights = normalize_scores(np.array([1.0, 3.0, 0.0]))
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [0.25, 0.75, 0.0])


def test_all_zeros_stay_zero():
    np.testing.assert_array_equal(normalize_scores(np.zeros(4)), np.zeros(4))
    assert normalize_scores(np.array([])).shape == (0,)


def test_nan_inf_and_negative_count_as_zero():
    weights = normalize_scores(np.array([np.nan, 1.0, np.inf, -5.0, 1.0]))
    np.testing.assert_allclose(weights, [0.0, 0.5, 0.0, 0.0, 0.5])
    assert np.isfinite(weights).all()


def test_single_miner_takes_everything():
    uids, weights = weights_for_chain({3: 0.4}, 5, netuid=1, limits=SubnetLimits(), metagraph=graph(5))
    assert dict(zip(uids.tolist(), weights.tolist())) == {3: pytest.approx(1.0)}


def test_chain_weights_respect_max_weight_limit():
    averages = {0: 0.9, 1: 0.05, 2: 0.05, 3: 0.05}
    uids, weights = weights_for_chain(averages, 4, netuid=1, limits=SubnetLimits(1, 0.5), metagraph=graph(4))
    assert weights.max() <= 0.5 + 1e-6
    assert weights.sum() == pytest.approx(1.0)
    assert uids.dtype == np.int64


def test_uids_beyond_the_metagraph_are_ignored():
    uids, weights = weights_for_chain({0: 1.0, 9: 1.0}, 2, netuid=1, limits=SubnetLimits(), metagraph=graph(2))
    assert 9 not in uids.tolist()


def test_limits_come_from_the_adapter_when_it_has_them():
    class Adapter:
        netuid = 4

        def min_allowed_weights(self, netuid):
            return 2

        def max_weight_limit(self, netuid):
            return 0.25

    assert limits_of(Adapter()) == SubnetLimits(2, 0.25)
    assert limits_of(object()) == SubnetLimits()
