"""Weights that separate good from great: the documented transform from moving averages
to weights, pinned to hand-computed numbers.

Before this change weights were averages / sum: a 0.9 and a 0.7 miner split 56 / 44
(the linear case below); the default power curve pays them 73 / 27.
"""

import numpy as np
import pytest

from text3d.validator.weights import DEFAULT_CURVE, IncentiveCurve, transform_scores, weights_for_chain


def test_default_split_for_09_07_05():
    # 0.9^4 = 0.6561, 0.7^4 = 0.2401, 0.5^4 = 0.0625; sum 0.9587
    w = transform_scores(np.array([0.9, 0.7, 0.5]))
    np.testing.assert_allclose(w, [0.6561 / 0.9587, 0.2401 / 0.9587, 0.0625 / 0.9587], atol=1e-12)
    np.testing.assert_allclose(w, [0.684364, 0.250443, 0.065193], atol=1e-6)
    assert DEFAULT_CURVE.kind == "power" and DEFAULT_CURVE.exponent == 4.0


def test_two_miners_and_the_linear_case():
    np.testing.assert_allclose(transform_scores(np.array([0.9, 0.7])), [0.6561 / 0.8962, 0.2401 / 0.8962])
    linear = transform_scores(np.array([0.9, 0.7]), IncentiveCurve(exponent=1.0))
    np.testing.assert_allclose(linear, [0.5625, 0.4375])  # the old averages / sum


def test_floor_and_rank_curves():
    floored = transform_scores(np.array([0.9, 0.7, 0.5]), IncentiveCurve(exponent=2.0, floor=0.5))
    np.testing.assert_allclose(floored, [0.16 / 0.20, 0.04 / 0.20, 0.0])  # (a - 0.5)^2
    ranked = transform_scores(np.array([0.5, 0.9, 0.7]), IncentiveCurve(kind="rank", decay=0.5))
    np.testing.assert_allclose(ranked, [0.25 / 1.75, 1 / 1.75, 0.5 / 1.75])
    tied = transform_scores(np.array([0.9, 0.9, 0.5, 0.0]), IncentiveCurve(kind="rank", decay=0.5))
    np.testing.assert_allclose(tied, [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75, 0.0])


def test_broken_values_earn_nothing_and_no_evidence_stays_zero():
    w = transform_scores(np.array([np.nan, np.inf, -1.0, 0.5]))
    np.testing.assert_array_equal(w, [0.0, 0.0, 0.0, 1.0])
    assert transform_scores(np.zeros(3)).sum() == 0.0
    assert transform_scores(np.array([])).shape == (0,)


def test_incentive_weights_cover_every_uid():
    uids, weights = weights_for_chain({0: 0.9, 2: 0.7, 7: 0.5}, 4)
    assert uids.tolist() == [0, 1, 2, 3] and weights.dtype == np.float32
    np.testing.assert_allclose(weights, [0.6561 / 0.8962, 0.0, 0.2401 / 0.8962, 0.0], atol=1e-6)
    with pytest.raises(ValueError):
        weights_for_chain({}, -1)
