"""Every metric works with every aggregation, and higher always means more similar.

The seed's prototype crashed on its own default (sum); here each of the 4 x 4
combinations is pinned on hand-computed values.
"""

import itertools
import math

import numpy as np
import pytest

from text3d.reward.config import AGGREGATIONS, METRICS
from text3d.reward.metrics import (
    aggregate,
    aggregate_unit,
    cosine,
    dot,
    euclidean,
    jaccard,
    rescale,
    similarity_matrix,
    tokens,
)

A = np.array([[1.0, 0.0], [0.0, 2.0]])
B = np.array([[1.0, 0.0], [3.0, 4.0]])
TEXTS_A = ["a red cube", "a blue sphere"]
TEXTS_B = ["red cube", "a green cone on a sphere"]

# Expected [2, 2] matrices for A x B (vectors) and TEXTS_A x TEXTS_B (jaccard).
EXPECTED = {
    "cosine": np.array([[1.0, 0.6], [0.0, 0.8]]),
    "dot": np.array([[1.0, 3.0], [0.0, 8.0]]),
    "euclidean": np.array([[1.0, 1.0 / (1.0 + math.sqrt(4 + 16))], [1.0 / (1.0 + math.sqrt(5)), 1.0 / (1.0 + math.sqrt(9 + 4))]]),
    # {a,red,cube} vs {red,cube}: 2/3; vs {a,green,cone,on,sphere}: 1/7
    # {a,blue,sphere} vs {red,cube}: 0; vs {a,green,cone,on,sphere}: 2/6
    "jaccard": np.array([[2 / 3, 1 / 7], [0.0, 2 / 6]]),
}


@pytest.mark.parametrize("metric", METRICS)
def test_metric_matrix_matches_hand_computed_values(metric):
    got = similarity_matrix(metric, TEXTS_A, A, TEXTS_B, B)
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, EXPECTED[metric], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metric,how", list(itertools.product(METRICS, AGGREGATIONS)))
def test_every_metric_aggregation_combination(metric, how):
    values = similarity_matrix(metric, TEXTS_A, A, TEXTS_B, B)
    flat = EXPECTED[metric].reshape(-1)
    expected = {"sum": flat.sum(), "mean": flat.mean(), "median": float(np.median(flat)), "none": list(flat)}[how]
    got = aggregate(values, how)
    if how == "none":
        np.testing.assert_allclose(got, expected)
        assert isinstance(got, list) and all(isinstance(x, float) for x in got)
    else:
        assert isinstance(got, float)
        assert got == pytest.approx(expected)
    unit = aggregate_unit(rescale(values, 0.0, 1.0), how)
    assert 0.0 <= unit <= 1.0


def test_higher_is_more_similar_for_every_metric():
    near, far = np.array([[1.0, 0.1]]), np.array([[-1.0, 0.5]])
    query = np.array([[1.0, 0.0]])
    for metric in ("cosine", "dot", "euclidean"):
        assert similarity_matrix(metric, [], query, [], near)[0, 0] > similarity_matrix(metric, [], query, [], far)[0, 0]
    assert jaccard(["a red cube"], ["red cube"])[0, 0] > jaccard(["a red cube"], ["blue sphere"])[0, 0]


def test_edge_cases():
    assert cosine(np.zeros(3), np.ones(3))[0, 0] == 0.0  # zero vector: no direction, no similarity
    assert euclidean(np.ones(3), np.ones(3))[0, 0] == 1.0
    assert dot(np.ones(2), np.ones(2))[0, 0] == 2.0
    assert jaccard([""], [""])[0, 0] == 0.0  # an empty caption never matches
    assert jaccard(["Red, CUBE!"], ["red cube"])[0, 0] == 1.0
    assert tokens("A red-cube") == {"a", "red", "cube"}
    assert aggregate([], "mean") == 0.0 and aggregate([], "none") == []
    assert aggregate_unit([1.0, 1.0, 1.0], "sum") == 1.0  # sum is normalised by the term count for scores
    assert aggregate_unit([0.2, 0.4], "none") == pytest.approx(0.3)
    np.testing.assert_allclose(rescale(np.array([0.0, 0.45, 1.0]), 0.1, 0.8), [0.0, 0.5, 1.0])


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown metric"):
        similarity_matrix("manhattan", [], A, [], B)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate([1.0], "max")
