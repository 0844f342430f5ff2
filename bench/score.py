"""Throughput of the whole RewardModel: render -> caption -> CLIP -> mpnet -> report.

Models: tiny CLIP (random weights, production loader), GENUINE all-mpnet-base-v2,
``StaticCaptioner`` (no LLM: this measures the scoring core, not LLaVA), the canonical
moderngl renderer. Compares, for the same assets:

    single  : score() on 1 asset
    loop    : score() called N times (no cross-asset batching)
    batch   : score_batch() on N assets (one CLIP image batch, one mpnet caption batch)

Prints medians over ``--repeats`` after one warm-up of each, then ONE JSON line.
Run from the repo root: ``python bench/score.py [--assets 32] [--views 8] [--resolution 512]``.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_assets(n: int, faces: int, seed: int = 0):
    """n coloured, lumpy spheres (Shap-E-sized meshes) with distinct prompts."""
    import numpy as np
    import trimesh

    rng = np.random.default_rng(seed)
    subdivisions = max(1, int(round(np.log(max(faces, 80) / 20) / np.log(4))))
    meshes, prompts = [], []
    for i in range(n):
        sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
        bumps = 1.0 + 0.15 * np.sin(sphere.vertices @ rng.normal(size=3) * 3.0)
        colours = np.concatenate([(rng.uniform(0, 1, 3) * 255 * np.ones((len(sphere.vertices), 3))).astype(np.uint8),
                                  np.full((len(sphere.vertices), 1), 255, np.uint8)], axis=1)
        meshes.append(trimesh.Trimesh(sphere.vertices * bumps[:, None], sphere.faces, vertex_colors=colours, process=False))
        prompts.append(f"a colourful lumpy ball number {i}")
    return meshes, prompts


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=32)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from reward.caption import StaticCaptioner
    from reward.config import RewardConfig, resolve_device
    from reward.factory import build_reward_model

    device = resolve_device(args.device)
    config = RewardConfig(n_views=args.views, resolution_px=args.resolution)
    load_start = time.perf_counter()
    model = build_reward_model("tiny", StaticCaptioner("a 3D model of {prompt}, seen from view {view}"),
                               device=device, config=config)
    load_s = time.perf_counter() - load_start
    # The EGL context only after torch/open_clip are imported: importing triton (pulled in by
    # torchvision) after Mesa llvmpipe has loaded its LLVM segfaults the process.
    renderer = model.renderer
    meshes, prompts = make_assets(args.assets, args.faces)

    single = timed(lambda: model.score(meshes[0], prompts[0]), args.repeats)
    loop = timed(lambda: [model.score(m, p) for m, p in zip(meshes, prompts)], args.repeats)
    batch = timed(lambda: model.score_batch(meshes, prompts), args.repeats)
    render_only = timed(lambda: [renderer.render(m, args.views, args.resolution) for m in meshes], args.repeats)

    med = {k: statistics.median(v) for k, v in {"single": single, "loop": loop, "batch": batch, "render": render_only}.items()}
    n = args.assets
    result = {
        "bench": "score",
        "assets": n,
        "views": args.views,
        "resolution_px": args.resolution,
        "faces_per_mesh": int(len(meshes[0].faces)),
        "repeats": args.repeats,
        "single_asset_s": round(med["single"], 4),
        "single_assets_per_s": round(1.0 / med["single"], 3),
        "loop_s": round(med["loop"], 3),
        "loop_assets_per_s": round(n / med["loop"], 3),
        "batch_s": round(med["batch"], 3),
        "batch_assets_per_s": round(n / med["batch"], 3),
        "batch_speedup_vs_loop": round(med["loop"] / med["batch"], 3),
        "render_only_s": round(med["render"], 3),
        "render_share_of_batch": round(med["render"] / med["batch"], 3),
        "model_load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "gl_renderer": renderer.gl_renderer,
        "cpu_threads": torch.get_num_threads(),
        "models": model.models(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "open_clip": __import__("open_clip").__version__,
                     "sentence_transformers": __import__("sentence_transformers").__version__},
    }
    print(f"1 asset: {med['single']:.3f} s; {n} assets: loop {med['loop']:.2f} s ({n / med['loop']:.2f}/s), "
          f"batch {med['batch']:.2f} s ({n / med['batch']:.2f}/s); rendering alone {med['render']:.2f} s",
          file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
