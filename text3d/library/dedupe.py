"""``find_duplicates``: groups of near-identical assets, by the validator's copycat rule.

The rule is ``text3d.reward.defences.fingerprint.cluster_copies`` -- the same code the
validator's step calls on miners' answers -- applied to the fingerprints the index stored
(the canonical outer-surface cloud, plus the views under the index's one canonical rig, so
the view check applies to every pair). A group is its leader and the assets that copy it
(``cluster_copies``: each asset, in name order, joins the earliest leader it copies), so one
pair of honest look-alikes judged alike by mistake never chains a library into one group;
members are listed in name order and the first is the one a tidy library would keep.

Cost: the rule aligns the two surfaces of every pair it judges (about 32 ms a pair of honest
blobs on a 2-core CPU, docs/performance.md), so a library of up to ``exhaustive_max`` assets
(at most 1,770 pairs, under a minute) is handed to ``cluster_copies`` whole. Past that, a
pair is judged only when one asset is among the other's ``neighbours`` nearest by appearance
(mean CLIP view embedding) or by shape (the histogram of distances from the centre of its
whitened surface cloud, which stretches and turns leave alone; a scene's parts are searched
as well, so a copy with a second object beside it is found) -- copies look alike and have
alike shapes -- and each connected set of pairs the rule joined is handed to
``cluster_copies`` again as a whole. The result says which way it went (``exhaustive``) and
how many pairs were judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from text3d.library.schema import vectors
from text3d.library.store import AssetStore, LibraryError

__all__ = ["DuplicateGroup", "DedupeResult", "find_duplicates"]


@dataclass(frozen=True)
class DuplicateGroup:
    members: list[str]  # names, sorted; members[0] is the one to keep
    sizes: list[int]  # bytes of each member's file


@dataclass
class DedupeResult:
    groups: list[DuplicateGroup]
    assets: int  # indexed assets with a fingerprint
    exhaustive: bool
    pairs_compared: int | None = None  # None when cluster_copies compared every pair itself
    skipped: list[str] = field(default_factory=list)  # names without a usable fingerprint

    @property
    def duplicates(self) -> int:
        """Assets that are copies of an earlier member of their group."""
        return sum(len(g.members) - 1 for g in self.groups)


def find_duplicates(store: AssetStore, *, exhaustive_max: int = 60, neighbours: int = 8,
                    exhaustive: bool = False) -> DedupeResult:
    """Duplicate groups among the indexed assets of ``store`` (see the module docstring)."""
    from text3d.library.schema import load_fingerprint
    from text3d.reward.defences.fingerprint import cluster_copies, parallel_map

    if store.meta is None:
        raise LibraryError(f"{store.path} holds no index yet")
    table = store.scan(["name", "fingerprint", "size_bytes", "clip_mean"], status="indexed")
    rows = sorted(range(table.num_rows), key=lambda i: table.column("name")[i].as_py())
    names = [table.column("name")[i].as_py() for i in rows]
    sizes = [table.column("size_bytes")[i].as_py() or 0 for i in rows]
    fingerprints: list[Any] = []
    skipped = []
    for i, name in zip(rows, names):
        data = table.column("fingerprint")[i].as_py()
        try:
            fingerprints.append(load_fingerprint(data) if data else None)
        except ValueError:
            fingerprints.append(None)
        if fingerprints[-1] is None:
            skipped.append(name)
    present = sum(fp is not None for fp in fingerprints)
    if exhaustive or present <= exhaustive_max:
        groups = cluster_copies(fingerprints)
        pairs = None
        whole = True
    else:
        appearance, _ = vectors(table.column("clip_mean"), store.meta.clip_dim)
        appearance = appearance[rows]
        groups, pairs = _by_neighbours(fingerprints, appearance, neighbours, cluster_copies, parallel_map)
        whole = False
    out = [DuplicateGroup([names[i] for i in g], [int(sizes[i]) for i in g]) for g in groups]
    return DedupeResult(out, present, whole, pairs, skipped)


def _by_neighbours(fingerprints: list, appearance: np.ndarray, k: int, cluster_copies,
                   parallel_map) -> tuple[list[list[int]], int]:
    """Candidate pairs from nearest neighbours, each pair judged by ``cluster_copies`` (on
    threads); each connected set of joined pairs is judged again as a whole."""
    index = [i for i, fp in enumerate(fingerprints) if fp is not None]
    # one shape row per cloud: a scene's parts are more rows of its asset, so a copy with a
    # second object set beside it is still near its original by the shape of its largest object
    clouds = [(i, cloud) for i in index for cloud in (fingerprints[i].cloud, *fingerprints[i].parts)]
    shapes = np.stack([_radii_histogram(cloud) for _, cloud in clouds])
    candidates: set[tuple[int, int]] = set()
    for owner, block in ((index, appearance[index]), ([i for i, _ in clouds], shapes)):
        for a, b in _neighbour_pairs(block, k):
            if owner[a] != owner[b]:
                candidates.add((min(owner[a], owner[b]), max(owner[a], owner[b])))
    parent = {i: i for i in index}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pending = sorted(candidates)
    joined = parallel_map(lambda pair: bool(cluster_copies([fingerprints[pair[0]], fingerprints[pair[1]]], workers=1)),
                          pending)
    for (a, b), same in zip(pending, joined):
        if same and root(a) != root(b):
            parent[max(root(a), root(b))] = min(root(a), root(b))
    components: dict[int, list[int]] = {}
    for i in index:
        components.setdefault(root(i), []).append(i)
    groups = []
    for members in components.values():
        if len(members) < 2:
            continue
        for group in cluster_copies([fingerprints[i] for i in members]):  # the rule on the whole group
            groups.append(sorted(members[j] for j in group))
    return sorted(groups, key=lambda g: g[0]), len(candidates)


def _radii_histogram(cloud: Any, bins: int = 16) -> np.ndarray:
    """Where a surface cloud (``ShapeCloud``) lies from its centre: the weighted histogram of its
    point radii in the whitened frame (a neighbour search key, not a verdict)."""
    points = np.asarray(cloud.points, np.float64)
    weights = np.asarray(cloud.weights, np.float64)
    radii = np.linalg.norm(points - weights @ points, axis=1)
    histogram, _ = np.histogram(radii, bins=bins, range=(0.0, 3.0), weights=weights)
    return histogram.astype(np.float32)


def _neighbour_pairs(points: np.ndarray, k: int, block: int = 2048) -> list[tuple[int, int]]:
    """(i, j) for each point and its ``k`` nearest others by Euclidean distance, in blocks of
    rows (memory: block x n floats)."""
    points = np.asarray(points, dtype=np.float32)
    n = len(points)
    k = min(k, n - 1)
    if k < 1:
        return []
    norms = (points * points).sum(axis=1)
    pairs = []
    for start in range(0, n, block):
        chunk = points[start:start + block]
        distance = norms[start:start + block, None] - 2.0 * chunk @ points.T + norms[None, :]
        distance[np.arange(len(chunk)), np.arange(start, start + len(chunk))] = np.inf
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        for row, cols in enumerate(nearest):
            pairs.extend((start + row, int(c)) for c in cols)
    return pairs
