"""The first pass of a search: which assets are worth judging with the exact formula.

Each indexed asset has a mean CLIP view embedding (unit, D floats). ``Candidates`` holds
them in memory and answers ``top(query, k)``: the ``k`` assets whose mean embedding is most
similar to the query's, by cosine.

Below ``coarse_min`` assets that is one exact matrix-vector product. Above it, reading
n x D float32 for every query is what costs (memory bandwidth: 307 MB per query at 100,000
x 768), so the vectors are also kept projected onto their first ``coarse_dim`` principal
axes (computed when the library is opened, from a sample): the coarse product ranks
everything, the best ``coarse_k`` are re-ranked exactly, and the top ``k`` of those are
returned. CLIP embeddings of real collections are far from isotropic (objects cluster), so
the leading axes carry most of their variance and the exact re-rank of a wide coarse
shortlist keeps the exact top ``k`` (``bench/library.py`` reports the agreement with the
exact pass on clustered synthetic embeddings).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Candidates"]


class Candidates:
    """Mean embeddings ``vectors`` [n, D] float32 (unit rows; zero rows never win)."""

    def __init__(self, vectors: np.ndarray, *, coarse_min: int = 20_000, coarse_dim: int = 128,
                 coarse_k: int = 4096, sample: int = 20_000, seed: int = 0) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.coarse_k = coarse_k
        self.basis = None
        self.projected = None
        n, dim = self.vectors.shape
        if n >= coarse_min and dim > coarse_dim:
            rng = np.random.default_rng(seed)
            rows = self.vectors[rng.choice(n, size=min(sample, n), replace=False)].astype(np.float64)
            centred = rows - rows.mean(axis=0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            self.basis = np.ascontiguousarray(vt[:coarse_dim].T, dtype=np.float32)  # [D, coarse_dim]
            self.projected = np.ascontiguousarray(self.vectors @ self.basis)  # [n, coarse_dim]

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def coarse(self) -> bool:
        return self.projected is not None

    def similarity(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact cosine of ``query`` (unit, [D]) with every asset, or with ``rows`` only."""
        vectors = self.vectors if rows is None else self.vectors[rows]
        return vectors @ np.asarray(query, dtype=np.float32)

    def top(self, query: np.ndarray, k: int) -> np.ndarray:
        """Indices of the ``k`` assets most similar to ``query`` (unordered)."""
        n = len(self.vectors)
        if k >= n:
            return np.arange(n)
        query = np.asarray(query, dtype=np.float32)
        if self.projected is None:
            return _largest(self.similarity(query), k)
        shortlist = _largest(self.projected @ (query @ self.basis), min(max(self.coarse_k, 4 * k), n))
        return shortlist[_largest(self.similarity(query, shortlist), k)]

    def exact_top(self, query: np.ndarray, k: int) -> np.ndarray:
        """The exact pass whatever the size (for measuring the coarse pass against it)."""
        return _largest(self.similarity(np.asarray(query, dtype=np.float32)), min(k, len(self.vectors)))


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    if k >= len(values):
        return np.arange(len(values))
    return np.argpartition(-values, k - 1)[:k]
