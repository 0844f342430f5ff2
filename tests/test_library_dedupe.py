"""Asset libraries, duplicates (``text3d dedupe``). Rules pinned here:

- copies of one object made the ways a copycat miner makes them -- re-encoded (PLY, GLB,
  Draco), vertex and face order permuted, jittered, scaled and moved, turned about the up
  axis, all at once, and with hidden geometry added inside (caught by the views under the
  index's one rig) -- form one group, listed with its members;
- distinct objects (other seeds of the same generator, a box, a torus) are not grouped;
- the groups come from the validator's own rule (``cluster_copies``): the nearest-neighbour
  path for large libraries finds the same groups as comparing every pair.
"""

import json

import numpy as np
import pytest
import trimesh

from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from tests.library_fixtures import TINY, text3d
from tests.meshes import coloured_sphere
from tests.test_fingerprint import jittered, permuted, scaled_moved, turned

pytestmark = pytest.mark.timeout(600)


def _with_hidden_inside(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The same surface with a small box hidden at its centre (changes the geometry statistics,
    not a single rendered pixel)."""
    inner = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    inner.apply_translation(mesh.vertices.mean(axis=0))
    colours = np.vstack([mesh.visual.vertex_colors, np.tile([255, 0, 0, 255], (len(inner.vertices), 1))])
    return trimesh.Trimesh(np.vstack([mesh.vertices, inner.vertices]),
                           np.vstack([mesh.faces, inner.faces + len(mesh.vertices)]), vertex_colors=colours,
                           process=False)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    base = coloured_sphere(4000, seed=0)
    copies = {
        "copies/original.ply": encode_mesh(base, MeshFormat.PLY),
        "copies/recoded.glb": encode_mesh(base, MeshFormat.GLB),
        "copies/recoded.drc": encode_mesh(base, MeshFormat.DRACO),
        "copies/permuted.ply": encode_mesh(permuted(base), MeshFormat.PLY),
        "copies/jittered.ply": encode_mesh(jittered(base), MeshFormat.PLY),
        "copies/scaled_moved.glb": encode_mesh(scaled_moved(base), MeshFormat.GLB),
        "copies/turned.ply": encode_mesh(turned(base), MeshFormat.PLY),
        "copies/all_at_once.drc": encode_mesh(turned(scaled_moved(jittered(permuted(base)))), MeshFormat.DRACO),
        "copies/hidden_inside.ply": encode_mesh(_with_hidden_inside(base), MeshFormat.PLY),
    }
    distinct = {f"distinct/blob{seed}.ply": encode_mesh(coloured_sphere(4000, seed=seed), MeshFormat.PLY)
                for seed in range(1, 5)}
    box, torus = trimesh.creation.box(), trimesh.creation.torus(1.0, 0.3)
    distinct["distinct/box.ply"] = box.export(file_type="ply")
    distinct["distinct/torus.ply"] = torus.export(file_type="ply")
    for name, data in {**copies, **distinct}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    index = tmp_path_factory.mktemp("index") / "index"
    from text3d.cli.main import main

    assert main(["index", str(folder), "--index", str(index), *TINY]) == 0
    return index, sorted(copies), sorted(distinct)


def test_copycat_families_are_one_group_and_distinct_objects_are_not(library, tmp_path, capsys):
    index, copies, distinct = library
    status, out, _ = text3d(capsys, "dedupe", index, "--json", tmp_path / "groups.json")
    assert status == 0
    document = json.loads((tmp_path / "groups.json").read_text())
    assert [g["members"] for g in document["groups"]] == [copies]
    assert document["groups"][0]["keep"] == copies[0] and document["copies"] == len(copies) - 1
    assert document["exhaustive"] is True and document["assets"] == len(copies) + len(distinct)
    assert f"1 groups of near-duplicates among {len(copies) + len(distinct)} assets" in out
    assert all(f"copy  {name}" in out for name in copies[1:]) and f"keep  {copies[0]}" in out
    assert not any(name in out for name in distinct)


def test_the_neighbour_path_finds_the_same_groups_by_the_same_rule(library):
    from text3d.library.dedupe import find_duplicates
    from text3d.library.store import AssetStore

    index, copies, _ = library
    store = AssetStore.open(index)
    whole = find_duplicates(store)
    by_neighbours = find_duplicates(store, exhaustive_max=0, neighbours=4)
    assert not by_neighbours.exhaustive and by_neighbours.pairs_compared > 0
    assert [g.members for g in by_neighbours.groups] == [g.members for g in whole.groups] == [copies]
