"""Wire codec benchmark: size and speed of each mesh format on a Shap-E-like mesh.

Encodes/decodes ``tests.meshes.coloured_sphere`` (~100k faces, per-vertex colours) with
the production ``encode_mesh`` / ``decode_mesh`` (decode includes the pre-scan and full
validation), reports the median of N runs after a warm-up, the compact format's size
ratio vs binary PLY and its max vertex error relative to the bbox diagonal.

    python bench/codec.py [--faces 100000] [--runs 15]

Also times a textured GLB (the same mesh with spherical UVs and a ``--texture-px`` PNG
base-colour texture; decode includes the image header checks and decoding the texture)
and the refusal of an image bomb (a PNG header declaring 65535 x 65535 pixels inside
that GLB: refused at the header).

Targets: Draco >= 5x smaller than binary PLY, max vertex error <= 1e-3 of the bbox
diagonal, Draco decode <= 50 ms. The last line is one JSON object. Exits 1 if the size or
error target is missed (both deterministic); timings are reported, not enforced.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import DracoPy  # noqa: E402
import numpy as np  # noqa: E402
import trimesh  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from text3d.protocol.mesh_codec import DRACO_QUANTIZATION_BITS, MeshFormat, decode_mesh, encode_mesh  # noqa: E402
from tests.meshes import coloured_sphere  # noqa: E402


def median_ms(fn, runs: int) -> tuple[float, float]:
    """(wall, CPU) medians in ms after one warm-up; CPU time shows the cost when the
    machine is shared (wall time then includes waiting for a core)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return round(1000 * statistics.median(wall), 2), round(1000 * statistics.median(cpu), 2)


def textured_figures(mesh: trimesh.Trimesh, texture_px: int, runs: int) -> dict:
    """Size and speed of a textured GLB of ``mesh``, and of refusing an image bomb in it."""
    from PIL import Image
    from trimesh.visual.material import PBRMaterial
    from trimesh.visual.texture import TextureVisuals

    from text3d.protocol.limits import MeshDecodeError
    from tests.meshes import glb_join, glb_split
    from tests.test_textured_codec import png_bomb

    unit = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    uv = np.stack([0.5 + np.arctan2(unit[:, 0], unit[:, 2]) / (2 * np.pi), 0.5 + np.arcsin(unit[:, 1]) / np.pi], axis=1)
    y, x = np.mgrid[0:texture_px, 0:texture_px] / texture_px
    rng = np.random.default_rng(0)
    rgb = np.stack([np.sin(6 * x), np.cos(5 * y), np.sin(4 * (x + y))], axis=2) * 0.4 + 0.5
    rgb += rng.normal(scale=0.03, size=rgb.shape)  # some grain, so the PNG is not trivially small
    texture = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8))
    textured = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False,
                               visual=TextureVisuals(uv=uv, material=PBRMaterial(baseColorTexture=texture)))
    data = encode_mesh(textured, MeshFormat.GLB)
    encode_ms, _ = median_ms(lambda: encode_mesh(textured, MeshFormat.GLB), max(3, runs // 3))
    decode_ms, decode_cpu_ms = median_ms(lambda: decode_mesh(data), max(3, runs // 3))
    tree, binary = glb_split(data)
    bomb = png_bomb(65535, 65535)
    binary += b"\0" * (-len(binary) % 4)
    tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(bomb)})
    tree["images"][0] = {"bufferView": len(tree["bufferViews"]) - 1, "mimeType": "image/png"}
    tree["buffers"][0]["byteLength"] = len(binary) + len(bomb)
    bombed = glb_join(tree, binary + bomb)

    def refuse() -> None:
        try:
            decode_mesh(bombed)
        except MeshDecodeError:
            return
        raise SystemExit("the image bomb was not refused")

    bomb_ms, bomb_cpu_ms = median_ms(refuse, runs)
    print(f"textured GLB ({texture_px} px PNG): {len(data):,} bytes  encode {encode_ms:.1f} ms  decode {decode_ms:.1f} ms "
          f"(cpu {decode_cpu_ms:.1f}); 65535^2 PNG bomb refused in {bomb_ms:.2f} ms")
    return {"bytes": len(data), "texture_px": texture_px, "encode_ms": encode_ms, "decode_ms": decode_ms,
            "decode_cpu_ms": decode_cpu_ms, "image_bomb_refusal_ms": bomb_ms, "image_bomb_refusal_cpu_ms": bomb_cpu_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--texture-px", type=int, default=1024)
    args = parser.parse_args()

    mesh = coloured_sphere(target_faces=args.faces, seed=0)
    print(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, per-vertex RGBA")
    results = {}
    for fmt in MeshFormat:
        data = encode_mesh(mesh, fmt)
        encode_ms, encode_cpu_ms = median_ms(lambda: encode_mesh(mesh, fmt), args.runs)
        decode_ms, decode_cpu_ms = median_ms(lambda: decode_mesh(data), args.runs)
        results[fmt.value] = {
            "bytes": len(data),
            "encode_ms": encode_ms,
            "decode_ms": decode_ms,
            "encode_cpu_ms": encode_cpu_ms,
            "decode_cpu_ms": decode_cpu_ms,
        }
        print(f"{fmt.value:>6}: {len(data):>10,} bytes  encode {encode_ms:7.2f} ms (cpu {encode_cpu_ms:7.2f})  "
              f"decode {decode_ms:7.2f} ms (cpu {decode_cpu_ms:7.2f})  median of {args.runs}")

    results["glb_textured"] = textured_figures(mesh, args.texture_px, args.runs)

    decoded = decode_mesh(encode_mesh(mesh, MeshFormat.DRACO))
    diagonal = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    error = float(cKDTree(mesh.vertices).query(decoded.vertices)[0].max()) / diagonal
    ratio = results["ply"]["bytes"] / results["draco"]["bytes"]
    print(f"draco vs binary PLY: {ratio:.1f}x smaller; max vertex error {error:.2e} of the bbox diagonal "
          f"({DRACO_QUANTIZATION_BITS} bits)")
    targets = {
        "ratio_ge_5": ratio >= 5.0,
        "error_le_1e-3": error <= 1e-3,
        "draco_decode_le_50ms": results["draco"]["decode_ms"] <= 50.0,
    }
    print(f"load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores -- wall times include waiting")
    print("targets:", ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in targets.items()))
    summary = {
        "bench": "codec",
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "formats": results,
        "draco_ratio_vs_ply": round(ratio, 2),
        "draco_max_vertex_error_rel_diag": float(f"{error:.3e}"),
        "draco_quantization_bits": DRACO_QUANTIZATION_BITS,
        "targets_met": targets,
        "runs": args.runs,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "trimesh": trimesh.__version__,
            "DracoPy": getattr(DracoPy, "__version__", "2.2.0"),
        },
    }
    print(json.dumps(summary))
    # size and error are deterministic; timing depends on how busy the machine is, so it
    # is reported (wall and CPU) but does not fail the run
    return 0 if targets["ratio_ge_5"] and targets["error_le_1e-3"] else 1


if __name__ == "__main__":
    sys.exit(main())
