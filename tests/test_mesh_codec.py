"""The codec's contract: every format round-trips, the bytes decide the format, and
anything that is not a valid, bounded, coloured triangle mesh raises MeshDecodeError
(one type, with a reason) before a library allocates for it."""

import struct
import subprocess
import sys

import DracoPy
import numpy as np
import pytest
from scipy.spatial import cKDTree

from text3d.protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, detect_format, encode_mesh, validate_mesh
from tests.meshes import coloured_sphere, glb_join, glb_split, red_cube, tetrahedron_arrays, uncoloured_cube

SPHERE = coloured_sphere(target_faces=4000, seed=1)


def refuses(data: bytes, reason: str, limits: MeshLimits = DEFAULT_LIMITS) -> MeshDecodeError:
    with pytest.raises(MeshDecodeError, match=reason) as caught:
        decode_mesh(data, limits)
    return caught.value


def ply_payload(vertices, faces, colours, header_extra: str = "") -> bytes:
    """Binary PLY written by hand (float32 xyz, uchar RGBA, uchar-count int32 triangles)."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"{header_extra}element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_rows = np.zeros(len(vertices), dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
    vertex_rows["xyz"], vertex_rows["rgba"] = vertices, colours
    face_rows = np.zeros(len(faces), dtype=[("n", "u1"), ("idx", "<i4", 3)])
    face_rows["n"], face_rows["idx"] = 3, faces
    return header.encode() + vertex_rows.tobytes() + face_rows.tobytes()


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", [MeshFormat.PLY, MeshFormat.GLB])
@pytest.mark.parametrize("mesh", [SPHERE, red_cube()], ids=["sphere", "cube"])
def test_ply_and_glb_round_trip_exactly_at_float32(fmt, mesh):
    decoded = decode_mesh(encode_mesh(mesh, fmt))
    np.testing.assert_array_equal(decoded.vertices, mesh.vertices.astype(np.float32))
    np.testing.assert_array_equal(decoded.faces, mesh.faces)
    np.testing.assert_array_equal(decoded.visual.vertex_colors, mesh.visual.vertex_colors)


@pytest.mark.parametrize("mesh", [SPHERE, red_cube()], ids=["sphere", "cube"])
def test_draco_round_trips_within_1e3_of_the_bbox_diagonal(mesh):
    decoded = decode_mesh(encode_mesh(mesh, MeshFormat.DRACO))
    assert decoded.vertices.shape == mesh.vertices.shape and decoded.faces.shape == mesh.faces.shape
    diagonal = np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])
    distance, nearest = cKDTree(mesh.vertices).query(decoded.vertices)
    assert distance.max() <= 1e-3 * diagonal
    assert len(np.unique(nearest)) == len(mesh.vertices)  # a bijection, only reordered
    # same triangles (up to rotation of each), same colours per vertex
    np.testing.assert_array_equal(decoded.visual.vertex_colors, mesh.visual.vertex_colors[nearest])
    def canonical(faces):
        rolled = np.stack([np.roll(faces, -k, axis=1) for k in range(3)], axis=1)
        first = rolled[np.arange(len(faces)), np.argmin(rolled[:, :, 0], axis=1)]
        return np.unique(first, axis=0)
    np.testing.assert_array_equal(canonical(nearest[decoded.faces]), canonical(mesh.faces))


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_decoded_mesh_has_float64_int64_and_uint8_rgba(fmt):
    decoded = decode_mesh(encode_mesh(SPHERE, fmt))
    assert decoded.vertices.dtype == np.float64 and decoded.faces.dtype == np.int64
    colours = decoded.visual.vertex_colors
    assert colours.dtype == np.uint8 and colours.shape == (len(decoded.vertices), 4)


def test_rgb_without_alpha_decodes_as_opaque_rgba():
    vertices, faces, colours = tetrahedron_arrays()
    data = DracoPy.encode(vertices, faces.astype(np.uint32), quantization_bits=11, colors=colours[:, :3])
    np.testing.assert_array_equal(np.sort(decode_mesh(data).visual.vertex_colors[:, 3]), [255] * 4)


def test_encode_refuses_a_mesh_without_colours_and_converts_face_colours():
    with pytest.raises(ValueError, match="no colours"):
        encode_mesh(uncoloured_cube())
    faced = uncoloured_cube()
    faced.visual.face_colors = [0, 0, 255, 255]
    decoded = decode_mesh(encode_mesh(faced, MeshFormat.PLY))
    assert (decoded.visual.vertex_colors == [0, 0, 255, 255]).all()


# ----------------------------------------------------------- format detection


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_format_is_read_from_the_magic_bytes(fmt):
    assert detect_format(encode_mesh(red_cube(), fmt)) is fmt


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, b"OBJ v 0 0 0", b"PLY\n", b"gltf", b"draco"])
def test_unknown_or_empty_payloads_are_refused(data):
    refuses(data, "unknown mesh format")


def test_non_bytes_are_refused():
    refuses("ply\n", "must be bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------- limits


def test_limits_are_validated_and_frozen():
    with pytest.raises(ValueError):
        MeshLimits(max_faces=0)
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_faces = 5  # type: ignore[misc]


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_payload_limit(fmt):
    data = encode_mesh(SPHERE, fmt)
    refuses(data, "payload is", MeshLimits(max_payload_bytes=len(data) - 1))
    decode_mesh(data, MeshLimits(max_payload_bytes=len(data)))


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_vertex_face_and_decoded_size_limits(fmt):
    data = encode_mesh(SPHERE, fmt)
    n_vertices, n_faces = len(SPHERE.vertices), len(SPHERE.faces)
    refuses(data, "vertices, the limit", MeshLimits(max_vertices=n_vertices - 1))
    refuses(data, "faces, the limit", MeshLimits(max_faces=n_faces - 1))
    needed = DEFAULT_LIMITS.decoded_bytes(n_vertices, n_faces)
    refuses(data, "would decode to", MeshLimits(max_decoded_bytes=needed - 1))
    decode_mesh(data, MeshLimits(max_vertices=n_vertices, max_faces=n_faces, max_decoded_bytes=needed))


def test_header_limit_covers_ply_header_and_glb_json():
    ply = encode_mesh(red_cube(), MeshFormat.PLY)
    refuses(ply, "no end_header line within", MeshLimits(max_header_bytes=ply.index(b"end_header")))
    glb = encode_mesh(red_cube(), MeshFormat.GLB)
    (json_length,) = struct.unpack_from("<I", glb, 12)
    refuses(glb, "bounded JSON chunk", MeshLimits(max_header_bytes=json_length - 1))


def test_gltf_object_limit():
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    tree["nodes"] += [{"name": f"empty{i}"} for i in range(10)]
    refuses(glb_join(tree, binary), "11 nodes, the limit is 10", MeshLimits(max_gltf_objects=10))


def test_default_limits_hold_a_grid_256_scale_mesh_in_every_format():
    assert DEFAULT_LIMITS.max_faces >= 1_000_000 and DEFAULT_LIMITS.max_payload_bytes >= 64 << 20
    assert DEFAULT_LIMITS.decoded_bytes(DEFAULT_LIMITS.max_vertices, DEFAULT_LIMITS.max_faces) <= DEFAULT_LIMITS.max_decoded_bytes


# ------------------------------------------- huge declared counts, refused cheaply


def _refused_before_decoding(decoder_calls, data: bytes, reason: str) -> None:
    """Refused by the pre-scan: neither DracoPy nor trimesh is ever handed the payload."""
    decoder_calls.reset()
    refuses(data, reason)
    assert decoder_calls.none(), decoder_calls.counts


def test_ply_declaring_2_31_vertices_is_refused_before_allocation(decoder_calls):
    data = encode_mesh(red_cube(), MeshFormat.PLY).replace(b"element vertex 8", b"element vertex 2147483648")
    _refused_before_decoding(decoder_calls, data, "2147483648 vertices")
    _refused_before_decoding(decoder_calls, data.replace(b"element vertex 2147483648", b"element vertex 99999999999999999999"), "bounded integer")


def test_glb_bufferless_accessor_with_huge_count_is_refused(decoder_calls):
    # trimesh would allocate np.zeros(count) for an accessor without a bufferView
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    tree["accessors"][1] = {"componentType": 5126, "type": "VEC3", "count": 2**31}
    _refused_before_decoding(decoder_calls, glb_join(tree, binary), "must read a bufferView")
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    tree["accessors"][0]["count"] = 2**31
    _refused_before_decoding(decoder_calls, glb_join(tree, binary), "outside 1..")


def test_glb_mesh_instanced_by_many_nodes_counts_every_instance():
    tree, binary = glb_split(encode_mesh(SPHERE, MeshFormat.GLB))
    tree["nodes"] = [{"mesh": 0} for _ in range(200)]
    tree["scenes"] = [{"nodes": list(range(200))}]
    refuses(glb_join(tree, binary), "faces, the limit", MeshLimits(max_faces=100 * len(SPHERE.faces)))


def test_draco_header_declaring_huge_counts_is_refused(decoder_calls):
    data = encode_mesh(red_cube(), MeshFormat.DRACO)
    assert data[8] == 1  # edgebreaker: traversal byte, varint vertices, varint faces
    bomb = data[:12] + b"\xff\xff\xff\xff\x0f" + b"\x80\x80\x80\x80\x08" + data[14:]
    _refused_before_decoding(decoder_calls, bomb, "4294967295 vertices")
    sequential = DracoPy.encode(red_cube().vertices, red_cube().faces, compression_level=0, colors=red_cube().visual.vertex_colors)
    assert sequential[8] == 0  # sequential: varint faces, varint points
    _refused_before_decoding(decoder_calls, sequential[:11] + b"\xff\xff\xff\x7f" + sequential[12:], "faces, the limit")


# ---------------------------------------------------- validation, every format


def test_non_finite_coordinates_are_refused():
    vertices, faces, colours = tetrahedron_arrays()
    for bad in (np.nan, np.inf, -np.inf):
        vertices[1, 2] = bad
        refuses(ply_payload(vertices, faces, colours), "non-finite")
        with pytest.raises(MeshDecodeError, match="non-finite"):
            validate_mesh(vertices, faces, colours)


def test_out_of_range_face_indices_are_refused():
    vertices, faces, colours = tetrahedron_arrays()
    for bad in (4, -1, 2**31 - 1):
        faces[2, 1] = bad
        refuses(ply_payload(vertices, faces, colours), "outside")
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    indices = bytearray(binary)
    indices[0:4] = struct.pack("<I", 8)  # first index accessor value: one past the last vertex
    refuses(glb_join(tree, bytes(indices)), "outside")


def test_all_degenerate_faces_are_refused():
    vertices, faces, colours = tetrahedron_arrays()
    refuses(ply_payload(np.zeros_like(vertices), faces, colours), "non-zero area")
    refuses(ply_payload(vertices, np.array([[0, 0, 1], [2, 2, 2]]), colours), "non-zero area")


def test_empty_meshes_are_refused():
    vertices, faces, colours = tetrahedron_arrays()
    refuses(ply_payload(vertices, faces[:0], colours), "empty")


def test_meshes_without_colours_are_refused_in_every_format():
    cube = uncoloured_cube()
    refuses(cube.export(file_type="ply"), "no per-vertex colours")
    refuses(cube.export(file_type="glb"), "no per-vertex colours")
    refuses(DracoPy.encode(cube.vertices, cube.faces), "no per-vertex colours")


def test_float_colours_must_be_in_range():
    vertices, faces, colours = tetrahedron_arrays()
    with pytest.raises(MeshDecodeError, match="within"):
        validate_mesh(vertices, faces, np.full((4, 3), 1.5))
    mesh = validate_mesh(vertices, faces, np.full((4, 4), 0.5))
    assert (mesh.visual.vertex_colors == 128).all()
    # a GLB with float COLOR_0 outside [0, 1]
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    floats = np.full((8, 4), 2.0, "<f4").tobytes()
    tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(floats)})
    tree["accessors"][2] = {"componentType": 5126, "type": "VEC4", "bufferView": 3, "count": 8}
    tree["buffers"][0]["byteLength"] = len(binary) + len(floats)
    refuses(glb_join(tree, binary + floats), "float colours")


def test_ascii_ply_and_polygon_faces_are_refused():
    refuses(red_cube().export(file_type="ply", encoding="ascii"), "only binary PLY")
    vertices, faces, colours = tetrahedron_arrays()
    data = bytearray(ply_payload(vertices, faces, colours))
    data[data.index(b"end_header\n") + 11 + 4 * 16] = 4  # first face claims to be a quad
    refuses(bytes(data), "PLY body is|triangles")


@pytest.mark.parametrize(
    "old, new, reason",
    [
        (b"element face", b"comment end_header\nelement face", "not understood"),
        (b"element face", b"elements face", "not understood"),
        (b"format binary_little_endian 1.0", b"format binary_little_endian 2.0", "not a format line"),
        (b"property float y", b"property float x", "duplicate"),
        (b"vertex_indices", b"corners", "named vertex_indices"),
        (b"property uchar red", b"property float red", "must be uchar"),
    ],
    ids=["early-end", "substring-keyword", "version", "duplicate", "list-name", "float-colour"],
)
def test_ply_headers_that_trimesh_could_read_differently_are_refused(old, new, reason):
    refuses(encode_mesh(red_cube(), MeshFormat.PLY).replace(old, new, 1), reason)


def test_ply_body_length_must_match_its_header():
    data = encode_mesh(red_cube(), MeshFormat.PLY)
    refuses(data[:-1], "PLY body is")
    refuses(data + b"\0", "PLY body is")


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda t: t.update(extensionsRequired=["KHR_draco_mesh_compression"]), "requires extensions"),
        (lambda t: t["buffers"][0].update(uri="data:application/octet-stream;base64,AAAA"), "no URIs"),
        (lambda t: t["meshes"][0]["primitives"][0].update(mode=0), "plain triangle lists"),
        (lambda t: t["meshes"][0]["primitives"][0]["attributes"].pop("COLOR_0"), "COLOR_0"),
        (lambda t: t["bufferViews"][1].update(byteLength=10**9), "past the BIN chunk"),
        (lambda t: t["bufferViews"][1].update(byteStride=2), "byteStride"),
        (lambda t: t.update(nodes=[{"mesh": 0, "children": [1]}, {"children": [0]}]), "tree|cycle"),
        (lambda t: t["accessors"][1].update(bufferView=99), "out of range"),
        (lambda t: t["accessors"][0].update(count=35), "multiple of 3"),
    ],
    ids=["extension", "uri", "points", "no-colour", "view-past-end", "stride", "cycle", "bad-index", "not-triangles"],
)
def test_glb_structure_is_checked(edit, reason):
    tree, binary = glb_split(encode_mesh(red_cube(), MeshFormat.GLB))
    edit(tree)
    refuses(glb_join(tree, binary), reason)


def test_glb_declared_length_must_match_payload():
    data = encode_mesh(red_cube(), MeshFormat.GLB)
    refuses(data[:-4], "declares")
    refuses(data + b"\0\0\0\0", "declares")


def test_draco_point_clouds_metadata_and_other_versions_are_refused():
    vertices, faces, colours = tetrahedron_arrays()
    refuses(DracoPy.encode(vertices, colors=colours), "not a triangle mesh")
    mesh = encode_mesh(red_cube(), MeshFormat.DRACO)
    refuses(mesh[:5] + b"\x02\x01" + mesh[7:], "bitstream 2.1")
    refuses(mesh[:10] + b"\x80" + mesh[11:], "metadata")


def test_importing_the_codec_does_not_import_bittensor():
    code = "import sys, text3d.protocol, text3d.protocol.mesh_codec; assert 'bittensor' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

