"""Render benchmark: 8 views of a ~100k-face coloured mesh, moderngl vs pyrender.

Calls the production entry point ``text3d.reward.render.views.render_views`` (mesh validation,
normalisation, upload, 8 draws, MSAA resolve, readback, PIL images), warms each
backend up, then reports the median and p95 of several runs at 256 and 512 px.
Targets: moderngl >= 3x faster than pyrender; 8 views at 512 px <= 0.6 s on CPU.

    python bench/render.py [--runs 7] [--faces 100000]

The last line is one JSON object.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from text3d.reward.render.views import get_renderer, render_views  # noqa: E402
from text3d.reward.render.arrays import prepare_mesh  # noqa: E402

N_VIEWS = 8
RESOLUTIONS_PX = (256, 512)
BACKENDS = ("moderngl", "pyrender")


def bumpy_coloured_sphere(target_faces: int, seed: int = 0) -> trimesh.Trimesh:
    """A UV sphere with about ``target_faces`` faces, bumpy radius, smooth colour bands."""
    rng = np.random.default_rng(seed)
    rings = max(8, int(round(np.sqrt(target_faces / 3.95))))  # uv_sphere: ~3.95 n^2 faces
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[rings, rings])
    freq = rng.uniform(2.0, 5.0, size=3)
    v = mesh.vertices
    radius = 1.0 + 0.08 * np.sin(freq[0] * v[:, 0]) * np.sin(freq[1] * v[:, 1]) * np.sin(freq[2] * v[:, 2] * 3)
    vertices = v * radius[:, None]
    colors = np.empty((len(vertices), 4), dtype=np.uint8)
    colors[:, :3] = (127.5 + 127.5 * np.sin(vertices * freq * 2.0)).astype(np.uint8)
    colors[:, 3] = 255
    return trimesh.Trimesh(vertices, mesh.faces, vertex_colors=colors, process=False)


def time_runs(fn, runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds incl. llvmpipe's threads) per run, after one warm-up.

    CPU time is reported beside wall time because the bench may share its cores:
    wall time then grows with the machine's load, CPU time much less so."""
    fn()  # warm-up: context, framebuffers, shader compile
    wall, cpu = [], []
    for _ in range(runs):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (moderngl)")
    parser.add_argument("--pyrender-runs", type=int, default=3, help="timed runs per case (pyrender, slow)")
    parser.add_argument("--faces", type=int, default=100_000)
    args = parser.parse_args()

    mesh = bumpy_coloured_sphere(args.faces)
    prepare_s = statistics.median(time_runs(lambda: prepare_mesh(mesh), args.runs)[0])
    gl_renderers = {backend: get_renderer(backend) for backend in BACKENDS}
    results: dict[str, dict[str, dict[str, float]]] = {backend: {} for backend in BACKENDS}
    for resolution in RESOLUTIONS_PX:
        for backend in BACKENDS:
            runs = args.runs if backend == "moderngl" else args.pyrender_runs
            timings, cpu = time_runs(lambda: render_views(mesh, N_VIEWS, resolution, backend=backend), runs)
            median_s = statistics.median(timings)
            results[backend][str(resolution)] = {
                "views_s_median": round(median_s, 4),
                "views_s_p95": round(p95(timings), 4),
                "views_s_min": round(min(timings), 4),  # closest to an idle machine's figure
                "per_view_ms": round(1000 * median_s / N_VIEWS, 2),
                "cpu_s_median": round(statistics.median(cpu), 4),
            }
            print(
                f"{backend:9s} {resolution:4d} px: {N_VIEWS} views median {median_s:.3f} s "
                f"({1000 * median_s / N_VIEWS:.1f} ms/view), p95 {p95(timings):.3f} s, "
                f"CPU {statistics.median(cpu):.3f} s  [load {os.getloadavg()[0]:.1f}]"
            )

    speedup = {
        str(r): round(results["pyrender"][str(r)]["views_s_median"] / results["moderngl"][str(r)]["views_s_median"], 2)
        for r in RESOLUTIONS_PX
    }
    renderers = {backend: gl_renderers[backend].gl_renderer for backend in BACKENDS}
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "trimesh": trimesh.__version__,
        "moderngl": version("moderngl"),
        "glcontext": version("glcontext"),
        "pyrender-maintained": version("pyrender-maintained"),
        "PyOpenGL": version("PyOpenGL"),
    }
    ok_speedup = min(speedup.values()) >= 3.0
    ok_512 = results["moderngl"]["512"]["views_s_median"] <= 0.6
    print(f"GL_RENDERER: {renderers}")
    print(f"versions: {versions}")
    print(f"mesh: {len(mesh.faces)} faces, {len(mesh.vertices)} vertices; prepare_mesh {1000 * prepare_s:.1f} ms")
    print(f"pyrender / moderngl: {speedup}  (target >= 3: {'met' if ok_speedup else 'MISSED'})")
    print(f"moderngl 8 views @ 512 px: {results['moderngl']['512']['views_s_median']:.3f} s (target <= 0.6 s: {'met' if ok_512 else 'MISSED'})")
    print(
        json.dumps(
            {
                "bench": "render",
                "n_views": N_VIEWS,
                "mesh_faces": int(len(mesh.faces)),
                "runs": args.runs,
                "cpu_count": os.cpu_count(),
                "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
                "gl_renderer": renderers,
                "prepare_mesh_ms": round(1000 * prepare_s, 2),
                "results": results,
                "speedup_moderngl_vs_pyrender": speedup,
                "target_speedup_3x_met": ok_speedup,
                "target_512px_8views_0p6s_met": ok_512,
                "versions": versions,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
