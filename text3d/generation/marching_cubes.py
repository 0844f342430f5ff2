"""Marching-cubes lookup tables in the layout of diffusers' Shap-E ``MeshDecoder``.

The real ``openai/shap-e`` checkpoint ships these tables as the ``cases``/``masks``
buffers of ``shap_e_renderer.mesh_decoder``; a randomly initialised renderer has them
all zero and its ``decode_to_mesh`` produces nothing useful. This module derives the
tables from first principles so the tiny offline pipeline decodes real meshes.

Layout (read off ``diffusers.pipelines.shap_e.renderer``):

* a cube's configuration is an 8-bit mask; corner ``i`` sits at
  ``(x, y, z) = (i & 1, (i >> 1) & 1, (i >> 2) & 1)`` and its bit is set when the
  field there is ``> 0`` (inside the shape);
* edges ``0-3`` run along x at ``(y, z) = (0,0), (1,0), (0,1), (1,1)``, edges ``4-7``
  along y at ``(x, z)`` in the same order, edges ``8-11`` along z at ``(x, y)``;
* ``cases[mask]`` is ``(5, 3)`` edge indices (one triangle per row) and
  ``masks[mask]`` says which of the 5 rows are real triangles.

How the table is built: on each cube face the sign changes along its four edges are
joined by segments; an ambiguous face (diagonal corners alike) always separates its
*inside* corners. That choice depends only on the face's four corners, which the
neighbouring cube sees identically, so adjacent cubes agree and the surface is closed.
Segments are oriented with the inside on their left seen from outside the cube, chained
into loops, and each loop is fanned into triangles whose normals point out of the shape
(from positive to negative field), i.e. counter-clockwise seen from outside.
"""

from functools import lru_cache

import numpy as np

__all__ = ["MAX_TRIANGLES_PER_CUBE", "marching_cubes_tables"]

MAX_TRIANGLES_PER_CUBE = 5


def _corner(index: int) -> np.ndarray:
    return np.array([index & 1, (index >> 1) & 1, (index >> 2) & 1])


def _corner_index(point: np.ndarray) -> int:
    return int(point[0]) | int(point[1]) << 1 | int(point[2]) << 2


def _edges() -> list[tuple[int, int]]:
    """Corner pairs of the 12 edges, in the decoder's edge order."""
    edges = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for k in range(4):
            start = np.zeros(3, dtype=int)
            start[others[0]] = k & 1
            start[others[1]] = k >> 1
            end = start.copy()
            end[axis] = 1
            edges.append((_corner_index(start), _corner_index(end)))
    return edges


_EDGES = _edges()
_MIDPOINTS = np.array([(_corner(a) + _corner(b)) / 2.0 for a, b in _EDGES])


def _face_segments(mask: int) -> list[tuple[int, int]]:
    """Oriented segments (edge index pairs) where the surface crosses the cube faces."""
    inside = [bool(mask >> i & 1) for i in range(8)]
    segments = []
    for axis in range(3):
        for side in (0, 1):
            normal = np.zeros(3)
            normal[axis] = 1.0 if side else -1.0
            corners = [i for i in range(8) if _corner(i)[axis] == side]
            face_edges = [e for e, (a, b) in enumerate(_EDGES) if _corner(a)[axis] == side and _corner(b)[axis] == side]
            crossing = [e for e in face_edges if inside[_EDGES[e][0]] != inside[_EDGES[e][1]]]
            if not crossing:
                continue
            if len(crossing) == 2:
                inner = [_corner(i) for i in corners if inside[i]]
                pairs = [(crossing[0], crossing[1], np.mean(inner, axis=0))]
            else:  # ambiguous face: cut off each inside corner on its own
                pairs = []
                for c in (i for i in corners if inside[i]):
                    own = [e for e in crossing if c in _EDGES[e]]
                    pairs.append((own[0], own[1], _corner(c).astype(float)))
            for p, q, reference in pairs:
                turn = np.cross(_MIDPOINTS[q] - _MIDPOINTS[p], reference - _MIDPOINTS[p]) @ normal
                segments.append((p, q) if turn > 0 else (q, p))
    return segments


def _triangles(mask: int) -> list[tuple[int, int, int]]:
    following = dict(_face_segments(mask))
    triangles = []
    while following:
        start, current = following.popitem()
        loop = [start]
        while current != start:
            loop.append(current)
            current = following.pop(current)
        # The loop runs with the inside on its left seen from outside the cube, i.e.
        # clockwise seen from outside the *shape*; reverse it for outward normals.
        loop.reverse()
        triangulation = _triangulate(tuple(loop))
        if triangulation is None:  # cannot happen for the 256 cube cases
            raise AssertionError(f"cube case {mask}: no triangulation of loop {loop}")
        triangles.extend(triangulation)
    return triangles


def _share_a_face(edge_a: int, edge_b: int) -> bool:
    corners = {*_EDGES[edge_a], *_EDGES[edge_b]}
    return len(corners) <= 4 and any(len({_corner(c)[axis] for c in corners}) == 1 for axis in range(3))


def _triangulate(loop: tuple[int, ...]) -> list[tuple[int, int, int]] | None:
    """Triangulate a loop without a diagonal between two points on one cube face.

    Such a chord lies in the face the neighbouring cube shares; if both cubes drew it,
    that edge would belong to four triangles and the mesh would not be manifold.
    Keeps the loop's orientation. Loops have at most 12 points, so brute force is fine.
    """
    if len(loop) == 3:
        return [loop]
    first, last = loop[0], loop[-1]
    for k in range(1, len(loop) - 1):
        apex = loop[k]
        if k > 1 and _share_a_face(first, apex):
            continue
        if k < len(loop) - 2 and _share_a_face(apex, last):
            continue
        left = _triangulate(loop[: k + 1]) if k > 1 else []
        right = _triangulate(loop[k:]) if k < len(loop) - 2 else []
        if left is not None and right is not None:
            return [*left, *right, (first, apex, last)]
    return None


@lru_cache(maxsize=1)
def marching_cubes_tables() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(cases, masks)``: int64 ``(256, 5, 3)`` edge indices and bool ``(256, 5)``.

    Copy them into ``ShapERenderer.mesh_decoder.cases`` / ``.masks``. The arrays are
    cached and must not be modified in place.
    """
    cases = np.zeros((256, MAX_TRIANGLES_PER_CUBE, 3), dtype=np.int64)
    masks = np.zeros((256, MAX_TRIANGLES_PER_CUBE), dtype=bool)
    for mask in range(256):
        triangles = _triangles(mask)
        if len(triangles) > MAX_TRIANGLES_PER_CUBE:  # cannot happen with the rule above
            raise AssertionError(f"cube case {mask} needs {len(triangles)} triangles")
        for row, triangle in enumerate(triangles):
            cases[mask, row] = triangle
            masks[mask, row] = True
    cases.setflags(write=False)
    masks.setflags(write=False)
    return cases, masks
