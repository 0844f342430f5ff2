"""Shared test meshes: small, deterministic, coloured -- import these, don't redraw them.

    coloured_sphere(target_faces, seed)  Shap-E-like blob, smooth per-vertex colours
    red_cube()                           unit cube, 8 vertices, all red
    uncoloured_cube()                    the same cube without colours (encode refuses it)
    tetrahedron_arrays()                 raw (vertices, faces, colours) for hand-built payloads
    glb_split(data) / glb_join(tree, bin) a GLB's JSON tree and BIN chunk, and back (to craft payloads)

Every mesh is built with ``process=False`` so vertex order is what the caller sees,
and carries ``visual.vertex_colors`` as uint8 RGBA (N, 4) like a decoded mesh.
"""

import json
import struct

import numpy as np
import trimesh

__all__ = ["coloured_sphere", "red_cube", "uncoloured_cube", "tetrahedron_arrays", "glb_split", "glb_join"]

RED = (255, 0, 0, 255)


def coloured_sphere(target_faces: int = 100_000, seed: int = 0) -> trimesh.Trimesh:
    """A closed, lumpy, smoothly coloured blob with about ``target_faces`` triangles.

    Like a Shap-E marching-cubes mesh: +Z up, roughly unit size, a few low-frequency
    bumps (the seed picks them), vertices jittered by about a quarter of a grid-128
    cell, and per-vertex colours that vary smoothly over the
    surface. The face count is within a few percent of ``target_faces`` (>= 64).
    Deterministic for a given (target_faces, seed).
    """
    rng = np.random.default_rng(seed)
    rows = max(4, int(round(np.sqrt(max(target_faces, 64) / 4.0))))
    sphere = trimesh.creation.uv_sphere(radius=1.0, count=[rows, rows])
    unit = sphere.vertices / np.linalg.norm(sphere.vertices, axis=1, keepdims=True)
    bumps = np.zeros(len(unit))
    for _ in range(4):  # low-frequency radial displacement: a blob, not a ball
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        bumps += rng.uniform(0.05, 0.15) * np.cos(rng.uniform(1.0, 3.0) * unit @ direction + rng.uniform(0, np.pi))
    vertices = unit * (0.5 + bumps)[:, None]
    # marching cubes places vertices irregularly along grid edges (cell 1/128 at grid 128);
    # a quarter-cell jitter keeps a compressor from exploiting a perfectly regular UV grid
    vertices += rng.normal(scale=0.002, size=vertices.shape)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    rgb = 0.5 + 0.5 * np.sin(2.0 * unit + phase)  # smooth colour field on the sphere
    colours = np.concatenate([np.round(rgb * 255).astype(np.uint8), np.full((len(unit), 1), 255, np.uint8)], axis=1)
    return trimesh.Trimesh(vertices, sphere.faces, vertex_colors=colours, process=False)


def red_cube() -> trimesh.Trimesh:
    """The unit cube [0, 1]^3: 8 vertices, 12 outward-facing triangles, every vertex red."""
    box = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
    colours = np.tile(np.array(RED, np.uint8), (len(box.vertices), 1))
    return trimesh.Trimesh(box.vertices, box.faces, vertex_colors=colours, process=False)


def uncoloured_cube() -> trimesh.Trimesh:
    """``red_cube`` without any colours: ``mesh.visual.kind is None``."""
    box = trimesh.creation.box(bounds=[[0, 0, 0], [1, 1, 1]])
    return trimesh.Trimesh(box.vertices, box.faces, process=False)


def tetrahedron_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices float64 (4, 3), faces int64 (4, 3), colours uint8 (4, 4)) of a tetrahedron."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
    colours = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [255, 255, 0, 255]], np.uint8)
    return vertices, faces, colours


def glb_split(data: bytes) -> tuple[dict, bytes]:
    """(JSON tree, BIN chunk bytes) of a well-formed GLB, for crafting modified payloads."""
    (json_length,) = struct.unpack_from("<I", data, 12)
    tree = json.loads(data[20 : 20 + json_length])
    offset = 20 + json_length
    (bin_length,) = struct.unpack_from("<I", data, offset)
    return tree, bytes(data[offset + 8 : offset + 8 + bin_length])


def glb_join(tree: dict, binary: bytes) -> bytes:
    """A GLB container around ``tree`` and ``binary`` (chunks padded to 4 bytes, lengths exact)."""
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks
