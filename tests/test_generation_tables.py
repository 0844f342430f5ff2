"""The genuine pieces of the tiny pipeline and the mesh convention, without a pipeline.

Rules pinned here: the marching-cubes table we compute closes every surface (watertight,
outward normals) in diffusers' own ``MeshDecoder``; the CLIP tokenizer built from
open_clip's vocabulary tokenizes exactly like CLIP; generated meshes are +Y up, front
+Z, centred and inside the unit sphere.
"""

import numpy as np
import open_clip
import pytest
import torch
import trimesh
from diffusers.pipelines.shap_e.renderer import MeshDecoder

from text3d.generation.clip_tokenizer import CLIP_VOCAB_SIZE, build_clip_tokenizer
from text3d.generation.marching_cubes import MAX_TRIANGLES_PER_CUBE, marching_cubes_tables
from text3d.generation.mesh import SHAP_E_TO_GLTF, normalize_to_unit_sphere, to_trimesh


@pytest.fixture(scope="module")
def decoder() -> MeshDecoder:
    cases, masks = marching_cubes_tables()
    module = MeshDecoder()
    module.cases.copy_(torch.from_numpy(cases.copy()))
    module.masks.copy_(torch.from_numpy(masks.copy()))
    return module


def _grid(points_per_axis: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    axis = torch.linspace(-1.0, 1.0, points_per_axis)
    return torch.meshgrid(axis, axis, axis, indexing="ij")


def _march(decoder: MeshDecoder, field: torch.Tensor, pad: bool = True) -> trimesh.Trimesh:
    """Mesh a field on [-1, 1]^3 the way ``decode_to_mesh`` does (outside border of -1)."""
    if pad:
        padded = torch.full([n + 2 for n in field.shape], -1.0)
        padded[1:-1, 1:-1, 1:-1] = field
        field = padded
    out = decoder(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))
    return trimesh.Trimesh(out.verts.numpy(), out.faces.numpy(), process=False)


def test_table_layout() -> None:
    cases, masks = marching_cubes_tables()
    assert cases.shape == (256, MAX_TRIANGLES_PER_CUBE, 3) and cases.dtype == np.int64
    assert masks.shape == (256, MAX_TRIANGLES_PER_CUBE) and masks.dtype == bool
    assert cases.min() >= 0 and cases.max() <= 11
    assert not masks[0].any() and not masks[255].any()  # all outside / all inside: no surface
    assert masks[1].sum() == 1 and masks[0b00010111].sum() >= 2
    # Triangles fill the rows in order, and a case and its complement need the same edges.
    for mask in range(256):
        n = masks[mask].sum()
        assert masks[mask, :n].all() and not masks[mask, n:].any()
        assert set(cases[mask, :n].ravel()) == set(cases[255 - mask, : masks[255 - mask].sum()].ravel())


def test_sphere_field_gives_a_closed_outward_sphere(decoder: MeshDecoder) -> None:
    x, y, z = _grid(32)
    radius = 0.6
    mesh = _march(decoder, radius - torch.sqrt(x**2 + y**2 + z**2), pad=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.euler_number == 2  # one sphere, no handles
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.03)  # positive: normals point out
    assert np.linalg.norm(mesh.vertices, axis=1) == pytest.approx(np.full(len(mesh.vertices), radius), abs=0.01)


def test_torus_field_keeps_its_handle(decoder: MeshDecoder) -> None:
    x, y, z = _grid(32)
    mesh = _march(decoder, 0.25 - torch.sqrt((torch.sqrt(x**2 + y**2) - 0.6) ** 2 + z**2), pad=False)
    assert mesh.is_watertight and mesh.euler_number == 0
    assert mesh.volume == pytest.approx(2 * np.pi**2 * 0.6 * 0.25**2, rel=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_field_gives_a_closed_manifold(decoder: MeshDecoder, seed: int) -> None:
    """Noise hits every cube case, ambiguous faces included: neighbours must still agree."""
    field = torch.randn(14, 14, 14, generator=torch.Generator().manual_seed(seed))
    mesh = _march(decoder, field)
    edges, counts = np.unique(np.sort(mesh.edges, axis=1), axis=0, return_counts=True)
    assert len(edges) and (counts == 2).all()
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    hit = np.unique(_cube_cases(field))
    assert len(hit) > 200


def _cube_cases(field: torch.Tensor) -> np.ndarray:
    bits = (field > 0).to(torch.uint8)
    bits = bits[:-1] | (bits[1:] << 1)
    bits = bits[:, :-1] | (bits[:, 1:] << 2)
    bits = bits[:, :, :-1] | (bits[:, :, 1:] << 4)
    return bits.numpy().ravel()


def test_clip_tokenizer_matches_open_clip() -> None:
    tokenizer = build_clip_tokenizer()
    assert len(tokenizer) == CLIP_VOCAB_SIZE and tokenizer.model_max_length == 77
    for text in ["a red chair", "A  SHARK swimming\tin 日本 water's edge 🦈!", "3 legs, 42 mm; Mörk"]:
        ids = tokenizer(text).input_ids
        assert ids == open_clip.tokenize([text])[0][: len(ids)].tolist()
        assert ids[0] == 49406 and ids[-1] == 49407
    padded = tokenizer(["x " * 200], padding="max_length", max_length=77, truncation=True).input_ids
    assert len(padded[0]) == 77


def test_convention_is_y_up_front_z_centred_unit_sphere() -> None:
    # A Shap-E-frame box: tall along +Z (up), thin along Y; its -Y face is the front.
    box = trimesh.creation.box(extents=(0.4, 0.2, 1.0))
    box.apply_translation((0.3, -0.1, 0.2))
    rgb = np.tile([[1.0, 0.5, -0.2]], (len(box.vertices), 1))
    mesh = to_trimesh(box.vertices, box.faces, rgb)
    extents = mesh.bounding_box.extents
    assert extents[1] == pytest.approx(extents.max())  # up is +Y
    assert extents[2] == pytest.approx(extents.min())  # Shap-E's thin Y became Z
    assert mesh.bounds.mean(axis=0) == pytest.approx(np.zeros(3), abs=1e-12)
    assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)
    assert mesh.volume > 0  # a rotation, not a mirror: winding and normals kept
    assert mesh.visual.vertex_colors.dtype == np.uint8
    assert mesh.visual.vertex_colors[0].tolist() == [255, 128, 0, 255]
    front = np.array([0.0, -1.0, 0.0]) @ SHAP_E_TO_GLTF
    assert front.tolist() == [0.0, 0.0, 1.0]
    assert np.linalg.det(SHAP_E_TO_GLTF) == pytest.approx(1.0)


def test_normalize_handles_a_single_point() -> None:
    assert normalize_to_unit_sphere(np.ones((3, 3))).tolist() == np.zeros((3, 3)).tolist()
