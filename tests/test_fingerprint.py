"""Copycat fingerprints survive re-encoding (PLY, GLB, Draco), vertex and face
permutation, small jitter, uniform scale and translation (and a turn about +Y), and tell
different objects apart; ``first_come`` pays the earliest answer; ``RecentAnswers`` catches
one object served for different prompts.

Attacks pinned (fail before this change: there was no fingerprint, and three hotkeys
answering one mesh -- same bytes, re-encoded as PLY, as GLB with permuted vertices --
were each paid a third; one mesh returned for six prompts was scored every time).
"""

import numpy as np
import pytest
import trimesh

from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
from text3d.reward.render.camera import draw_secret_rig
from text3d.reward.defences.fingerprint import (
    FINGERPRINT_DIM,
    Fingerprint,
    RecentAnswers,
    first_come,
    fingerprint,
    geometry_distance,
    geometry_fingerprint,
    same_object,
    view_distance,
    view_fingerprint,
)
from text3d.reward.render.views import get_renderer
from text3d.reward.scoring_protocol import PROTOCOL
from tests.meshes import coloured_sphere

THRESHOLD = PROTOCOL.defences.fingerprint_max_distance
rng = np.random.default_rng(7)


def _coloured(mesh: trimesh.Trimesh, rgb=(200, 120, 60)) -> trimesh.Trimesh:
    colours = np.tile(np.array([*rgb, 255], np.uint8), (len(mesh.vertices), 1))
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colours, process=False)


def _remake(mesh, vertices=None, faces=None, colours=None):
    return trimesh.Trimesh(mesh.vertices if vertices is None else vertices, mesh.faces if faces is None else faces,
                           vertex_colors=mesh.visual.vertex_colors if colours is None else colours, process=False)


def permuted(mesh):
    order = rng.permutation(len(mesh.vertices))
    inverse = np.argsort(order)
    faces = inverse[mesh.faces][rng.permutation(len(mesh.faces))]
    return _remake(mesh, mesh.vertices[order], faces, mesh.visual.vertex_colors[order])


def jittered(mesh, share=0.002):
    size = float(np.ptp(mesh.vertices, axis=0).max())
    return _remake(mesh, mesh.vertices + rng.normal(scale=share * size, size=mesh.vertices.shape))


def scaled_moved(mesh):
    return _remake(mesh, mesh.vertices * 3.7 + np.array([5.0, -2.0, 9.0]))


def turned(mesh, degrees=137.0):
    rotation = trimesh.transformations.rotation_matrix(np.radians(degrees), [0, 1, 0])[:3, :3]
    return _remake(mesh, mesh.vertices @ rotation.T)


def recoded(fmt):
    return lambda mesh: decode_mesh(encode_mesh(mesh, fmt))


BASE = coloured_sphere(20_000, seed=0)
TRANSFORMS = {
    "ply": recoded(MeshFormat.PLY),
    "glb": recoded(MeshFormat.GLB),
    "draco": recoded(MeshFormat.DRACO),
    "permuted": permuted,
    "glb+permuted": lambda m: recoded(MeshFormat.GLB)(permuted(m)),
    "jitter 0.2%": jittered,
    "scale+translate": scaled_moved,
    "turn about +Y": turned,
    "all at once": lambda m: recoded(MeshFormat.DRACO)(turned(scaled_moved(jittered(permuted(m))))),
}
SHAPES = {
    "sphere": _coloured(trimesh.creation.icosphere(4)),
    "box": _coloured(trimesh.creation.box()),
    "torus": _coloured(trimesh.creation.torus(1.0, 0.3)),
    "cylinder": _coloured(trimesh.creation.cylinder(0.5, 2.0, sections=64)),
    "capsule": _coloured(trimesh.creation.capsule(1.0, 0.5)),
    **{f"blob{s}": coloured_sphere(20_000, seed=s) for s in range(6)},
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_the_same_object_survives(name):
    a, b = geometry_fingerprint(BASE), geometry_fingerprint(TRANSFORMS[name](BASE))
    assert a.shape == (FINGERPRINT_DIM,) and a.dtype == np.float32
    assert geometry_distance(a, b) < THRESHOLD / 2, name
    assert same_object(Fingerprint(a), Fingerprint(b))


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_shape_survives_its_own_jitter_and_reencoding(name):
    mesh = SHAPES[name]
    a = geometry_fingerprint(mesh)
    for other in (jittered(mesh), recoded(MeshFormat.DRACO)(mesh), turned(mesh, 33.0)):
        assert geometry_distance(a, geometry_fingerprint(other)) < THRESHOLD, name


def test_different_shapes_are_told_apart():
    prints = {name: geometry_fingerprint(mesh) for name, mesh in SHAPES.items()}
    names = list(prints)
    closest = min(geometry_distance(prints[a], prints[b]) for i, a in enumerate(names) for b in names[i + 1 :])
    assert closest > 1.5 * THRESHOLD  # measured 0.098 (cylinder vs capsule), blobs 0.12 or more
    assert not any(same_object(Fingerprint(prints[a]), Fingerprint(prints[b]))
                   for i, a in enumerate(names) for b in names[i + 1 :])


def test_first_come_pays_the_earliest_answer_only():
    original = BASE
    answers = [
        coloured_sphere(20_000, seed=3),  # an honest, different answer
        original,  # the first of the copies: it earns
        recoded(MeshFormat.PLY)(original),
        recoded(MeshFormat.GLB)(permuted(original)),
        jittered(scaled_moved(original)),
        coloured_sphere(20_000, seed=4),  # another honest answer
    ]
    prints = [Fingerprint(geometry_fingerprint(m)) for m in answers]
    assert first_come(prints) == {2: 1, 3: 1, 4: 1}
    assert first_come([None, prints[1], None, prints[2]]) == {3: 1}


def test_view_fingerprint_catches_hidden_interior_geometry_under_one_rig():
    """Geometry statistics move when a copy hides a blob inside; the pixels do not."""
    hidden = coloured_sphere(4000, seed=9)
    hidden = _remake(hidden, hidden.vertices * 0.3)  # well inside BASE (radius ~0.5)
    stuffed = trimesh.util.concatenate([BASE, hidden])
    rig = draw_secret_rig(PROTOCOL, 3)
    renderer = get_renderer()
    a = fingerprint(BASE, renderer.render(BASE, 8, 128, rig), rig_key="r3")
    b = fingerprint(stuffed, renderer.render(stuffed, 8, 128, rig), rig_key="r3")
    c = fingerprint(SHAPES["blob1"], renderer.render(SHAPES["blob1"], 8, 128, rig), rig_key="r3")
    assert geometry_distance(a.geometry, b.geometry) > THRESHOLD  # the geometry alone is fooled ...
    assert view_distance(a.views, b.views) < PROTOCOL.defences.fingerprint_view_max_distance / 2  # ... the views not
    assert same_object(a, b) and not same_object(a, c)
    assert view_distance(a.views, c.views) > 4 * PROTOCOL.defences.fingerprint_view_max_distance
    assert not same_object(a, Fingerprint(b.geometry, b.views, rig_key="another rig"))
    assert view_fingerprint(renderer.render(BASE, 2, 64, rig=None)).shape == (2, 32, 32, 3)


def test_recent_answers_catch_one_object_for_different_prompts():
    recent = RecentAnswers(max_steps=4)
    fp = Fingerprint(geometry_fingerprint(BASE))
    copy = Fingerprint(geometry_fingerprint(recoded(MeshFormat.GLB)(jittered(BASE))))
    other = Fingerprint(geometry_fingerprint(SHAPES["torus"]))
    assert recent.repeat_of("hk1", "a red chair", fp) is None
    recent.add("hk1", 10, "a red chair", fp)
    assert recent.repeat_of("hk1", "a red chair", copy) is None  # same prompt again: not a repeat
    assert recent.repeat_of("hk1", "a golden crown", copy) == 10  # one object for another prompt
    assert recent.repeat_of("hk2", "a golden crown", copy) is None  # another hotkey (first_come handles copies)
    assert recent.repeat_of("hk1", "a golden crown", other) is None
    for step in range(11, 15):
        recent.add("hk1", step, f"prompt {step}", other)
    assert recent.repeat_of("hk1", "a golden crown", copy) is None  # step 10 is forgotten after 4 steps
    assert len(recent) == 4
    recent.forget("hk1")
    assert len(recent) == 0


def test_copies_cluster_whatever_the_order_pairs_are_compared_in():
    """A copy of a copy joins its original's group; groups do not depend on input order."""
    from text3d.reward.defences.fingerprint import cluster_copies

    sphere, box = trimesh.creation.icosphere(subdivisions=3), trimesh.creation.box()
    bigger = sphere.copy()
    bigger.apply_scale(3.0)
    moved = sphere.copy()
    moved.apply_translation([5.0, 0.0, 0.0])
    fps = [fingerprint(sphere), fingerprint(box), None, fingerprint(bigger), fingerprint(moved)]
    assert cluster_copies(fps) == [[0, 3, 4]]
    reordered = [fps[4], fps[1], fps[3], None, fps[0]]
    assert cluster_copies(reordered) == [[0, 2, 4]]


def test_a_fingerprint_survives_its_own_serialisation_and_nothing_else_loads():
    from text3d.reward.defences.fingerprint import Fingerprint

    fp = fingerprint(trimesh.creation.icosphere(subdivisions=2))
    back = Fingerprint.from_bytes(fp.to_bytes())
    np.testing.assert_array_equal(back.geometry, fp.geometry)
    assert back.views is None and back.rig_key is None
    with pytest.raises(ValueError):
        Fingerprint.from_bytes(b"\x80\x04not a fingerprint")
