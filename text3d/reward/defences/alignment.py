"""How far apart two answers' shapes are once each is aligned as well as it can be to the other.

``compare(a, b) -> Match``: ``a`` and ``b`` are ``ShapeCloud``s (``text3d.reward.defences.shape_cloud``),
whitened and in their canonical frames, so a copy made by any affine deformation (stretch,
shear, tilt, turn, mirror) differs from its original by a rotation or reflection plus
whatever non-affine change was added (a warp, jitter, remeshing). The search:

1. every one of the 48 axis permutations with sign flips of ``b`` (the canonical axes are
   ambiguous up to those) is scored by the mean distance from a fixed subsample of ``b``
   to its nearest point of ``a``; the best ``_STARTS`` go on, and with colours on both
   sides also the best by distance plus colour difference (a near-round object fits its
   surface in many orientations; only its colours tell which one is the copy's);
2. each is refined by iterative closest points, ``_ICP_STEPS`` steps of a weighted
   least-squares affine fit on nearest neighbours both ways (affine, not only rotations:
   what whitening left over, e.g. from a copy's crumpled parts, is absorbed too);
3. the result's ``geometry`` is the symmetric point-to-plane chamfer distance: the
   area-weighted mean offset, along the surface normal, from each cloud's points to the
   other's nearest point, averaged over both directions, in whitened units (the object's
   spread is 1 along every axis). Along the normal, so two samplings of one surface are
   close however their points fall.

``colour`` is the agreement of the two surfaces' colours after that alignment: the
weighted Pearson correlation of matched points' colours, per channel and for the luminance,
whichever is highest (a tint or a channel gain changes no correlation), or None when
either surface is almost uniformly coloured (no pattern to compare: no evidence).

Cost (bench/copycat.py): about 0.1 s a pair on this shared 2-core CPU (most of it the
k-d tree queries of ICP); pairs run on a few threads (``fingerprint.parallel_map``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from text3d.reward.defences.shape_cloud import ShapeCloud

__all__ = ["Match", "compare", "profile_distance", "SIGNED_PERMUTATIONS"]

_STARTS = 4
_ICP_STEPS = 10
_COARSE_POINTS = 128
_ICP_POINTS = 400
_COLOUR_WEIGHT = 0.5  # whitened units per unit of summed RGB difference, when choosing starts
_SETTLED = 1e-3  # ICP stops once no entry of the map moves more than this
_PROFILE_BINS = 24
_MIN_COLOUR_STD = 0.03  # RGB in [0, 1]: a surface flatter than this has no colour pattern


def _signed_permutations() -> np.ndarray:
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign
            mats.append(m)
    return np.array(mats)


SIGNED_PERMUTATIONS = _signed_permutations()
"""[48, 3, 3]: every axis permutation with every sign flip (rotations and reflections)."""


@dataclass(frozen=True)
class Match:
    """``geometry``: symmetric chamfer distance after alignment (whitened units, >= 0);
    ``colour``: colour agreement in [-1, 1] after alignment, or None (no pattern on one side);
    ``transform``: [3, 3] the orthogonal map applied to ``b``'s points; ``shift``: [3]."""

    geometry: float
    colour: float | None
    transform: np.ndarray
    shift: np.ndarray


_trees: dict[int, tuple[object, cKDTree]] = {}


def _tree(cloud: ShapeCloud) -> cKDTree:
    """A k-d tree of the cloud's points, cached by identity (clouds are immutable)."""
    key = id(cloud.points)
    hit = _trees.get(key)
    if hit is not None and hit[0] is cloud.points:
        return hit[1]
    tree = cKDTree(cloud.points.astype(np.float64))
    if len(_trees) > 4096:
        _trees.clear()
    _trees[key] = (cloud.points, tree)
    return tree


def _subsample(cloud: ShapeCloud, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(cloud.points) <= n:
        return cloud.points.astype(np.float64), cloud.weights.astype(np.float64)
    pick = np.linspace(0, len(cloud.points) - 1, n).astype(np.int64)
    w = cloud.weights[pick].astype(np.float64)
    return cloud.points[pick].astype(np.float64), w / w.sum()


def _affine(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The linear map ``A`` and shift ``t`` minimising sum w |src A + t - dst|^2 (weighted least squares)."""
    w = w / w.sum()
    cs, cd = w @ src, w @ dst
    s, d = src - cs, dst - cd
    gram = (s * w[:, None]).T @ s
    a = np.linalg.solve(gram + 1e-9 * np.eye(3), (s * w[:, None]).T @ d)
    return a, cd - cs @ a


def _chamfer(a: ShapeCloud, pb: np.ndarray, nb: np.ndarray, wb: np.ndarray,
             tree_b: cKDTree) -> tuple[float, np.ndarray, np.ndarray]:
    """(symmetric point-to-plane distance, nearest a-index of each b point, nearest b-index of each a point).

    Point to plane: the offset to the nearest point measured along that point's surface
    normal, so two different samplings of one surface (points a cell apart along it) are
    close, and only a surface that moved off the other counts."""
    pa, na = a.points.astype(np.float64), a.normals.astype(np.float64)
    _, i_ba = _tree(a).query(pb)
    _, i_ab = tree_b.query(pa)
    d_ba = np.abs(np.einsum("ij,ij->i", pb - pa[i_ba], na[i_ba]))
    d_ab = np.abs(np.einsum("ij,ij->i", pa - pb[i_ab], nb[i_ab]))
    return 0.5 * float(wb @ d_ba + a.weights.astype(np.float64) @ d_ab), i_ba, i_ab


def _colour_agreement(ca: np.ndarray | None, cb: np.ndarray | None, w: np.ndarray) -> float | None:
    if ca is None or cb is None:
        return None
    w = w / w.sum()
    lum = np.array([0.299, 0.587, 0.114])
    best = None
    for xa, xb in [(ca @ lum, cb @ lum)] + [(ca[:, k], cb[:, k]) for k in range(3)]:
        ma, mb = w @ xa, w @ xb
        sa, sb = np.sqrt(w @ (xa - ma) ** 2), np.sqrt(w @ (xb - mb) ** 2)
        if sa < _MIN_COLOUR_STD or sb < _MIN_COLOUR_STD:
            continue
        corr = float(w @ ((xa - ma) * (xb - mb)) / (sa * sb))
        best = corr if best is None else max(best, corr)
    return best


def _profile(cloud: ShapeCloud) -> np.ndarray:
    """The cumulative share of the surface within each radius of the centre (whitened units):
    unchanged by any rotation or reflection, so by any affine copy, and cheap."""
    radius = np.linalg.norm(cloud.points.astype(np.float64), axis=1)
    share, _ = np.histogram(radius, bins=_PROFILE_BINS, range=(0.0, 4.0), weights=cloud.weights.astype(np.float64))
    return np.cumsum(share)


def profile_distance(a: ShapeCloud, b: ShapeCloud) -> float:
    """Mean absolute difference of the two clouds' radial profiles, in [0, 1]: a cheap lower
    bound on dissimilarity, used to skip the alignment of pairs that cannot be copies
    (measured: copies 0.0085 at most, ``fingerprint.PROFILE_MAX`` allows 0.02)."""
    return float(np.abs(_profile(a) - _profile(b)).mean())


def compare(a: ShapeCloud, b: ShapeCloud) -> Match:
    """The best alignment of ``b`` onto ``a`` and what is left of their difference (see the module docstring)."""
    tree_a = _tree(a)
    sub, sub_w = _subsample(b, _COARSE_POINTS)
    # with colours on both sides, a start must also put colours where they were: near-round objects
    # fit their surfaces in many orientations, and only the colours tell which one is the copy's
    sub_rgb = None
    if a.colours is not None and b.colours is not None:
        pick = np.linspace(0, len(b.points) - 1, len(sub)).astype(np.int64) if len(b.points) > len(sub) \
            else np.arange(len(b.points))
        sub_rgb = b.colours[pick].astype(np.float64)
    by_shape, by_colour = [], []
    for k, m in enumerate(SIGNED_PERMUTATIONS):
        d, i = tree_a.query(sub @ m)
        score = float(sub_w @ d)
        by_shape.append((score, k))
        if sub_rgb is not None:
            by_colour.append((score + _COLOUR_WEIGHT * float(sub_w @ np.abs(a.colours[i] - sub_rgb).sum(axis=1)), k))
    starts = [k for _, k in sorted(by_shape)[:_STARTS]]
    starts += [k for _, k in sorted(by_colour)[:1] if k not in starts]  # the colours' choice, when it differs
    pa, wa = _subsample(a, _ICP_POINTS)  # ICP on subsamples, the verdict on the whole clouds
    pb0, wb = _subsample(b, _ICP_POINTS)
    tree_b = cKDTree(pb0)  # a -> b matches are found in b's own frame: one tree, no rebuild per step
    weights = np.concatenate([wb, wa])
    fits = []
    for k in starts:
        r, t = SIGNED_PERMUTATIONS[k].copy(), np.zeros(3)
        for _ in range(_ICP_STEPS):
            _, i_ba = tree_a.query(pb0 @ r + t)
            # b -> a matches and a -> b matches together: a copy missing a part does not drag the fit
            _, i_ab = tree_b.query((pa - t) @ np.linalg.inv(r))
            src = np.concatenate([pb0, pb0[i_ab]])
            dst = np.concatenate([a.points[i_ba].astype(np.float64), pa])
            r_new, t_new = _affine(src, dst, weights)
            settled = np.abs(r_new - r).max() < _SETTLED and np.abs(t_new - t).max() < _SETTLED
            r, t = r_new, t_new
            if settled:  # the matches no longer move the fit
                break
        d_ba, _ = tree_a.query(pb0 @ r + t)
        d_ab, _ = tree_b.query((pa - t) @ np.linalg.inv(r))
        fits.append((float(wb @ d_ba + wa @ d_ab), r, t))
    _, r, t = min(fits, key=lambda fit: fit[0])
    pb = b.points.astype(np.float64) @ r + t
    nb = b.normals.astype(np.float64) @ np.linalg.inv(r).T
    nb /= np.maximum(np.linalg.norm(nb, axis=1, keepdims=True), 1e-300)
    wb_full = b.weights.astype(np.float64)
    dist, i_ba, _ = _chamfer(a, pb, nb, wb_full, cKDTree(pb))
    colour = _colour_agreement(None if a.colours is None else a.colours[i_ba].astype(np.float64),
                               None if b.colours is None else b.colours.astype(np.float64), wb_full)
    return Match(dist, colour, r, t)
