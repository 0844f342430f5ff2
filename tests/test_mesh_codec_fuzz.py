"""Hostile bytes never get past the codec: for any input, decode_mesh returns a valid
mesh or raises MeshDecodeError -- nothing else escapes, memory stays bounded and the
process survives. The child reports the slowest case's CPU and wall time for people to
read; no duration is asserted here (on a shared 2-core machine wall time mostly measures
the neighbours): the per-input time budget belongs to the codec bench.

The mutation fuzz runs in a child process (``python -m tests.test_mesh_codec_fuzz FMT
CASES SEED``) so that a native crash in DracoPy or numpy shows up as a failed test with
the signal, instead of killing pytest. Property-based round trips run in-process.
"""

import json
import re
import resource
import subprocess
import sys
import time
from typing import Callable, Iterator

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text3d.protocol.limits import DEFAULT_LIMITS, MeshDecodeError
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
from tests.meshes import coloured_sphere, glb_join, glb_split, red_cube

CASES = {"draco": 3000, "ply": 1200, "glb": 1200}
MAX_RSS_GROWTH_MB = 400


# ------------------------------------------------------------------ mutations


def _seeds(fmt: str) -> list[bytes]:
    meshes = [red_cube(), coloured_sphere(target_faces=1500, seed=3)]
    payloads = [encode_mesh(m, fmt) for m in meshes]
    if fmt == "draco":
        import DracoPy

        sphere = meshes[1]
        payloads.append(DracoPy.encode(sphere.vertices, sphere.faces, compression_level=0, colors=sphere.visual.vertex_colors))
    if fmt == "glb":  # textured GLB: PNG and JPEG base-colour textures, and their image headers
        import io

        from PIL import Image

        from tests.asset_corpus import quadrant_texture, textured_cube

        buffer = io.BytesIO()
        quadrant_texture(16).save(buffer, format="JPEG")
        payloads.append(encode_mesh(textured_cube(quadrant_texture(16)), fmt))
        payloads.append(textured_cube(Image.open(io.BytesIO(buffer.getvalue()))).export(file_type="glb"))
    return payloads


def _huge(rng: np.random.Generator) -> int:
    return int(rng.choice([2**31, 2**32 - 1, 2**63, 10**12, DEFAULT_LIMITS.max_faces, DEFAULT_LIMITS.max_faces + 1, 0, 1]))


def _ply_specific(data: bytes, rng: np.random.Generator) -> bytes:
    body = data.index(b"end_header\n") + 11
    if rng.random() < 0.5:  # huge or odd declared counts
        count = _huge(rng)
        return re.sub(rb"element (vertex|face) \d+", lambda m: m.group(0).split()[0] + b" " + m.group(1) + b" " + str(count).encode(), data, count=1 + int(rng.integers(2)))
    floats = bytearray(data)  # NaN / inf into the vertex block (x y z are the first 12 bytes of a row)
    bad = np.array([np.nan, np.inf, -np.inf, 3e38], "<f4")[rng.integers(4)].tobytes()
    offset = body + 16 * int(rng.integers(4)) + 4 * int(rng.integers(3))
    floats[offset : offset + 4] = bad
    return bytes(floats)


def _glb_specific(data: bytes, rng: np.random.Generator) -> bytes:
    tree, binary = glb_split(data)
    target = [tree["accessors"], tree["bufferViews"], tree["nodes"], tree["meshes"][0]["primitives"]][rng.integers(4)]
    item = target[rng.integers(len(target))]
    key = rng.choice(["count", "byteLength", "byteOffset", "byteStride", "bufferView", "mesh", "mode", "indices", "componentType", "children"])
    value = [_huge(rng), -1, 1.5, "x", None, [0, 0], {"a": 1}][rng.integers(7)]
    if rng.random() < 0.2:
        item.pop(key, None)  # e.g. an accessor without bufferView
    else:
        item[str(key)] = value
    if rng.random() < 0.2:
        tree["nodes"] = [{"mesh": 0}] * int(rng.integers(2, 400))
    return glb_join(tree, binary)


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not out[-1] & 0x80:
            return bytes(out)


def _draco_specific(data: bytes, rng: np.random.Generator) -> bytes:
    if data[8] == 1 and rng.random() < 0.5:
        # decompression bomb: a consistent edgebreaker header (vertices, faces, attribute
        # data, symbols, split symbols) claiming up to the limits over a few KB of body
        from text3d.protocol.prescan import _varint

        offset = 12
        for _ in range(2):
            _, offset = _varint(data, offset)
        attribute_data, offset = data[offset], offset + 1
        for _ in range(2):
            _, offset = _varint(data, offset)
        faces = int(rng.integers(1, DEFAULT_LIMITS.max_faces + 1))
        vertices = int(rng.integers(1, DEFAULT_LIMITS.max_vertices + 1))
        symbols = int(rng.integers(faces * 3 // 4, faces + 1))
        header = _leb128(vertices) + _leb128(faces) + bytes([attribute_data]) + _leb128(symbols) + _leb128(int(rng.integers(0, 64)))
        return data[:12] + header + data[offset:]
    offset = int(rng.integers(11, 20))  # a huge LEB128 where the header's counts live
    return data[:offset] + _leb128(_huge(rng) & 0xFFFFFFFF) + data[offset + int(rng.integers(0, 6)) :]


SPECIFIC: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "ply": _ply_specific,
    "glb": _glb_specific,
    "draco": _draco_specific,
}


def mutants(fmt: str, n_cases: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``n_cases`` (operator, payload) pairs derived from valid payloads of ``fmt``."""
    rng = np.random.default_rng(seed)
    seeds = _seeds(fmt)
    others = [encode_mesh(red_cube(), f) for f in MeshFormat if f.value != fmt]
    fixed = [("empty", b""), ("magic-only", seeds[0][:5]), ("wrong-magic", b"XXXX" + seeds[0][4:])]
    yield from fixed
    for _ in range(n_cases - len(fixed)):
        data = bytearray(seeds[rng.integers(len(seeds))])
        op = str(rng.choice(["truncate", "bitflip", "header-bitflip", "overwrite", "insert", "delete", "splice", "specific", "specific"]))
        if op == "truncate":
            data = data[: rng.integers(len(data))]
        elif op in ("bitflip", "header-bitflip"):
            span = min(len(data), 96) if op == "header-bitflip" else len(data)
            for _ in range(rng.integers(1, 17)):
                data[rng.integers(span)] ^= 1 << int(rng.integers(8))
        elif op == "overwrite":
            at, size = int(rng.integers(len(data))), int(rng.integers(1, 64))
            data[at : at + size] = bytes([int(rng.choice([0, 0xFF, rng.integers(256)]))]) * size
        elif op == "insert":
            at = int(rng.integers(len(data)))
            data[at:at] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif op == "delete":
            at = int(rng.integers(len(data)))
            del data[at : at + int(rng.integers(1, 64))]
        elif op == "splice":
            other = others[rng.integers(len(others))]
            cut = int(rng.integers(len(data)))
            data = data[:cut] + other[rng.integers(len(other)) :]
        else:
            data = bytearray(SPECIFIC[fmt](bytes(data), rng))
        yield op, bytes(data)


def run_fuzz(fmt: str, n_cases: int, seed: int) -> dict:
    """Decode every mutant; report escapes (non-MeshDecodeError), timing and peak RSS growth."""
    decode_mesh(encode_mesh(red_cube(), fmt))  # warm up imports and caches
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {"fmt": fmt, "cases": 0, "decoded": 0, "refused": 0, "escaped": [], "max_case_s": 0.0, "max_case_cpu_s": 0.0, "slowest": ""}
    for op, data in mutants(fmt, n_cases, seed):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            mesh = decode_mesh(data)
            assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) <= DEFAULT_LIMITS.max_faces
            report["decoded"] += 1
        except MeshDecodeError:
            report["refused"] += 1
        except BaseException as error:  # noqa: BLE001 -- exactly what the test looks for
            report["escaped"].append(f"{op}: {type(error).__name__}: {str(error)[:200]}")
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        report["max_case_s"] = max(report["max_case_s"], elapsed)
        if elapsed_cpu > report["max_case_cpu_s"]:
            report["max_case_cpu_s"], report["slowest"] = elapsed_cpu, op
        report["cases"] += 1
    report["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kb) / 1024
    return report


# ---------------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["draco", "ply", "glb"])
def test_mutation_fuzz_in_a_child_process(fmt):
    child = subprocess.run(
        [sys.executable, "-m", "tests.test_mesh_codec_fuzz", fmt, str(CASES[fmt]), "20261126"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, f"fuzz child died (rc {child.returncode}): {child.stderr[-2000:]}"
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["cases"] == CASES[fmt]
    assert report["escaped"] == []
    assert report["rss_growth_mb"] < MAX_RSS_GROWTH_MB, report
    assert report["refused"] > report["cases"] // 3  # the mutations do bite


meshes_strategy = st.builds(
    lambda n_vertices, seed: _random_mesh(n_vertices, seed),
    st.integers(min_value=3, max_value=200),
    st.integers(min_value=0, max_value=2**32 - 1),
)


def _random_mesh(n_vertices: int, seed: int) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    vertices = rng.uniform(-10, 10, size=(n_vertices, 3)) * rng.uniform(1e-3, 1e3)
    faces = np.array([rng.choice(n_vertices, 3, replace=False) for _ in range(rng.integers(1, 2 * n_vertices))])
    colours = rng.integers(0, 256, size=(n_vertices, 4), dtype=np.uint8)
    return trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mesh=meshes_strategy, fmt=st.sampled_from([MeshFormat.PLY, MeshFormat.GLB]))
def test_property_lossless_formats_round_trip_any_mesh(mesh, fmt):
    decoded = decode_mesh(encode_mesh(mesh, fmt))
    np.testing.assert_array_equal(decoded.vertices, mesh.vertices.astype(np.float32))
    np.testing.assert_array_equal(decoded.faces, mesh.faces)
    np.testing.assert_array_equal(decoded.visual.vertex_colors, mesh.visual.vertex_colors)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mesh=meshes_strategy)
def test_property_draco_keeps_every_vertex_within_1e3_of_the_diagonal(mesh):
    from scipy.spatial import cKDTree

    used = np.unique(mesh.faces)  # Draco drops vertices no face references
    decoded = decode_mesh(encode_mesh(mesh, MeshFormat.DRACO))
    diagonal = np.linalg.norm(np.ptp(mesh.vertices, axis=0))
    distance, _ = cKDTree(mesh.vertices[used]).query(decoded.vertices)
    assert distance.max() <= 1e-3 * diagonal
    assert len(decoded.faces) <= len(mesh.faces)


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"ply\n", b"ply\nformat binary_little_endian 1.0\n", b"glTF\x02\x00\x00\x00", b"DRACO\x02\x02\x01\x01\x00\x00"]),
    body=st.binary(max_size=512),
)
def test_property_arbitrary_bytes_only_raise_mesh_decode_error(prefix, body):
    try:
        decode_mesh(prefix + body)
    except MeshDecodeError as error:
        assert str(error)


if __name__ == "__main__":
    fmt_arg, cases_arg, seed_arg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run_fuzz(fmt_arg, cases_arg, seed_arg)))
