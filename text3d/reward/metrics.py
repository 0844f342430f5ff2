"""Similarity metrics and aggregations: pure numpy functions, higher is always better.

Metrics compare every row of A with every row of B and return an [N, M] float64 matrix:

* ``cosine(a, b)``    -- a.b / (|a||b|), in [-1, 1]; zero vectors give 0.
* ``dot(a, b)``       -- a.b; equals cosine for the unit vectors the embedders return.
* ``euclidean(a, b)`` -- the distance d = |a - b| turned into a similarity 1 / (1 + d),
                         in (0, 1]; identical vectors give 1.
* ``jaccard(a, b)``   -- works on TEXTS, not vectors: |A & B| / |A | B| over the sets of
                         lower-cased word tokens, in [0, 1]. Two texts without any tokens
                         score 0 (an empty caption never matches anything).

Aggregations reduce a vector or matrix of similarities to what a report shows:
``sum``, ``mean``, ``median`` (scalars over all entries) and ``none`` (the raw values
as a flat list). ``aggregate_unit`` maps the same reduction into [0, 1] for a score:
``sum`` is divided by the number of terms there (so it ranks like ``mean``) and
``none`` is reduced with ``mean``.
"""

import re
from typing import Sequence

import numpy as np

__all__ = [
    "cosine",
    "dot",
    "euclidean",
    "jaccard",
    "tokens",
    "similarity_matrix",
    "aggregate",
    "aggregate_unit",
    "rescale",
]

_TOKEN = re.compile(r"[a-z0-9]+")


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] cosine similarity (1-D inputs count as one row)."""
    a, b = _as_2d(a), _as_2d(b)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return a @ b.T


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] inner products."""
    return _as_2d(a) @ _as_2d(b).T


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] similarity 1 / (1 + |a - b|)."""
    a, b = _as_2d(a), _as_2d(b)
    distance = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0))
    return 1.0 / (1.0 + distance)


def tokens(text: str) -> frozenset[str]:
    """Lower-cased alphanumeric word tokens of ``text``."""
    return frozenset(_TOKEN.findall(text.lower()))


def jaccard(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """N texts x M texts -> [N, M] token-set Jaccard similarity in [0, 1]."""
    sets_a = [tokens(t) for t in a]
    sets_b = [tokens(t) for t in b]
    out = np.zeros((len(sets_a), len(sets_b)), dtype=np.float64)
    for i, sa in enumerate(sets_a):
        for j, sb in enumerate(sets_b):
            union = len(sa | sb)
            out[i, j] = len(sa & sb) / union if union else 0.0
    return out


def similarity_matrix(
    metric: str,
    texts_a: Sequence[str],
    vectors_a: np.ndarray,
    texts_b: Sequence[str],
    vectors_b: np.ndarray,
) -> np.ndarray:
    """[N, M] similarity under ``metric``; ``jaccard`` reads the texts, the others the vectors."""
    if metric == "jaccard":
        return jaccard(texts_a, texts_b)
    functions = {"cosine": cosine, "dot": dot, "euclidean": euclidean}
    if metric not in functions:
        raise ValueError(f"unknown metric {metric!r}; choose one of cosine, jaccard, euclidean, dot")
    return functions[metric](vectors_a, vectors_b)


def aggregate(values: np.ndarray | Sequence[float], how: str) -> float | list[float]:
    """Reduce all entries: ``sum``/``mean``/``median`` -> float, ``none`` -> flat list.

    An empty input gives 0.0 (``none``: an empty list)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if how == "none":
        return [float(v) for v in flat]
    if how not in ("sum", "mean", "median"):
        raise ValueError(f"unknown aggregation {how!r}; choose one of sum, mean, median, none")
    if flat.size == 0:
        return 0.0
    return float({"sum": np.sum, "mean": np.mean, "median": np.median}[how](flat))


def aggregate_unit(values: np.ndarray | Sequence[float], how: str) -> float:
    """``aggregate`` of values already in [0, 1], kept in [0, 1] (see the module docstring)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return 0.0
    if how == "none":
        how = "mean"
    result = aggregate(flat, how)
    if how == "sum":
        result = result / flat.size
    return float(np.clip(result, 0.0, 1.0))


def rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low`` -> 0 and ``high`` -> 1 linearly, clipped to [0, 1]."""
    return np.clip((np.asarray(values, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
