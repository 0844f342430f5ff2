"""Rendering: 8 views of a ~100k-face coloured mesh, moderngl (the canonical backend) vs pyrender.

Calls the production entry point ``text3d.reward.render.views.render_views`` (mesh validation,
normalisation, upload, 8 draws, MSAA resolve, readback, PIL images), warms each backend up,
then reports the median, p95 and minimum of several runs at each resolution, wall and CPU
(CPU time includes llvmpipe's threads; on a shared machine wall time grows with the load,
CPU time much less). Every view must show the mesh (a blank render fails the bench).
Targets: moderngl >= 3x faster than pyrender; 8 views at 512 px <= 0.6 s on this CPU
(reported, not enforced: timing depends on the machine's load).

    python bench/render.py [--runs 7] [--pyrender-runs 3] [--faces 100000] [--resolutions 256,512] [--smoke]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import Bench, duration, run  # noqa: E402

N_VIEWS = 8
BACKENDS = ("moderngl", "pyrender")
SMOKE = {"faces": 2_000, "runs": 1, "pyrender_runs": 1, "resolutions": "64"}
PACKAGES = ("numpy", "trimesh", "moderngl", "glcontext", "pyrender-maintained", "PyOpenGL")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (moderngl)")
    parser.add_argument("--pyrender-runs", type=int, default=3, help="timed runs per case (pyrender, slow)")
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--resolutions", default="256,512", help="view sizes in px, comma separated")


def bumpy_coloured_sphere(target_faces: int, seed: int = 0):
    """A UV sphere with about ``target_faces`` faces, bumpy radius, smooth colour bands."""
    import numpy as np
    import trimesh

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


def check_views(bench: Bench, views, backend: str, px: int) -> None:
    """Eight images of ``px`` px, each with the mesh in it: not blank, not the background alone."""
    import numpy as np

    bench.check(len(views) == N_VIEWS, f"{backend} returned {len(views)} views, expected {N_VIEWS}")
    for i, view in enumerate(views):
        pixels = np.asarray(view.convert("RGB"), dtype=np.int16)
        bench.check(pixels.shape[:2] == (px, px), f"{backend} view {i} is {pixels.shape[:2]}, expected {px} px")
        foreground = (np.abs(pixels - pixels[0, 0]).max(axis=2) > 8).mean()
        bench.check(0.05 < foreground < 0.95, f"{backend} view {i} at {px} px shows no mesh "
                                              f"({foreground:.1%} of the pixels differ from the background)")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    from text3d.reward.render.arrays import prepare_mesh
    from text3d.reward.render.views import get_renderer, render_views

    resolutions = [int(r) for r in args.resolutions.split(",")]
    mesh = bumpy_coloured_sphere(args.faces)
    prepare_s = bench.time(lambda: prepare_mesh(mesh), args.runs).median_s
    results: dict[str, dict[str, dict[str, float]]] = {backend: {} for backend in BACKENDS}
    for px in resolutions:
        for backend in BACKENDS:
            check_views(bench, render_views(mesh, N_VIEWS, px, backend=backend), backend, px)
            runs = args.runs if backend == "moderngl" else args.pyrender_runs
            t = bench.time(lambda: render_views(mesh, N_VIEWS, px, backend=backend), runs)
            results[backend][str(px)] = {
                "views_s_median": round(t.median_s, 4), "views_s_p95": round(t.p95_s, 4),
                "views_s_min": round(min(t.wall_s), 4),  # closest to an idle machine's figure
                "per_view_ms": round(1000 * t.median_s / N_VIEWS, 2), "cpu_s_median": round(t.cpu_median_s, 4),
            }
            bench.log(f"{backend:9s} {px:4d} px: {N_VIEWS} views median {t.median_s:.3f} s, p95 {t.p95_s:.3f} s, "
                      f"CPU {t.cpu_median_s:.3f} s")

    gl_renderers = {backend: get_renderer(backend).gl_renderer or "unknown" for backend in BACKENDS}  # known once drawn
    speedup = {str(px): round(results["pyrender"][str(px)]["views_s_median"]
                              / results["moderngl"][str(px)]["views_s_median"], 2) for px in resolutions}
    targets = {"speedup_ge_3": min(speedup.values()) >= 3.0}
    if "512" in results["moderngl"]:
        targets["views_512px_le_0p6s"] = results["moderngl"]["512"]["views_s_median"] <= 0.6
    target_512 = {True: "met", False: "missed on this run", None: "not measured"}[targets.get("views_512px_le_0p6s")]
    cell = lambda r: f"{duration(r['views_s_median'])} ({r['per_view_ms']:.0f} ms/view; CPU {duration(r['cpu_s_median'])})"  # noqa: E731
    rows = [[f"{backend} ({gl_renderers[backend]})", *(cell(results[backend][str(px)]) for px in resolutions)]
            for backend in BACKENDS]
    rows.append(["speed-up, moderngl vs pyrender", *(f"{speedup[str(px)]:.1f}x" for px in resolutions)])
    bench.table(f"Rendering: {N_VIEWS} views of a {len(mesh.faces):,}-face coloured mesh, 4x MSAA "
                f"(median of {args.runs} moderngl / {args.pyrender_runs} pyrender runs)",
                ["backend", *(f"{px} px" for px in resolutions)], rows,
                note=f"Targets: moderngl >= 3x faster than pyrender ({'met' if targets['speedup_ge_3'] else 'missed'}); "
                     f"8 views at 512 px <= 0.6 s on the CPU ({target_512}). "
                     f"Preparing the mesh (validation, normalisation): {duration(prepare_s)}.")
    return {"n_views": N_VIEWS, "mesh_faces": int(len(mesh.faces)), "runs": args.runs,
            "pyrender_runs": args.pyrender_runs, "gl_renderer": gl_renderers, "prepare_mesh_ms": round(1000 * prepare_s, 2),
            "results": results, "speedup_moderngl_vs_pyrender": speedup, "targets_met": targets}


if __name__ == "__main__":
    sys.exit(run("render", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
