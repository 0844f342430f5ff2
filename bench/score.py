"""Throughput of the whole RewardModel: render -> caption -> CLIP -> mpnet -> report.

Models: tiny CLIP (random weights, production loader), GENUINE all-mpnet-base-v2,
``StaticCaptioner`` (no LLM: this measures the scoring core, not LLaVA), the canonical
moderngl renderer. Compares, for the same assets:

    single  : score() on 1 asset
    loop    : score() called N times (no cross-asset batching)
    batch   : score_batch() on N assets (one CLIP image batch, one mpnet caption batch)

Prints medians over ``--repeats`` after one warm-up of each, then ONE JSON line.
Run from the repo root: ``python bench/score.py [--assets 32] [--views 8] [--resolution 512]``.

``--production-clip`` measures the production CLIP instead: ``open_clip`` ViT-L-14 built
with ``pretrained=None`` (random weights: the cost does not depend on them, and the real
ones cannot be fetched offline) inside the production ``ClipScorer``; seconds per view
for ``--views`` rendered-size views (one asset), seconds for 20 prompt/distractor texts,
the model's parameters and peak memory (RSS on the CPU, allocated memory on CUDA).
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


def production_clip(args) -> dict:
    """Cost of the production CLIP (ViT-L-14, random weights) per view and per batch of texts."""
    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    from text3d.reward.clip import ClipScorer
    from text3d.common.device import resolve_device

    device = resolve_device(args.device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None, device=device)
    model.eval()
    clip = ClipScorer(model, preprocess, open_clip.get_tokenizer("ViT-L-14"), model_name="ViT-L-14",
                      pretrained="none (random weights)", device=device)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    views = [Image.fromarray(rng.integers(0, 255, (args.resolution, args.resolution, 3), dtype=np.uint8))
             for _ in range(args.views)]
    texts = [f"a 3D model of object number {i}" for i in range(20)]
    cuda = device.startswith("cuda")
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def images() -> None:
        clip.encode_images(views)
        sync()

    def text_batch() -> None:
        clip.clear_cache()
        clip.encode_texts(texts)
        sync()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        clip.encode_images(views[:1])
    flops_per_view = counter.get_total_flops()
    image_s = statistics.median(timed(images, args.repeats))
    text_s = statistics.median(timed(text_batch, args.repeats))
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"production CLIP ViT-L-14 on {device}: {image_s:.2f} s for {args.views} views "
          f"({image_s / args.views:.3f} s/view), {text_s:.2f} s for {len(texts)} texts; peak {peak_mb:.0f} MB",
          file=sys.stderr)
    return {
        "bench": "score", "mode": "production-clip", "clip": "ViT-L-14", "weights": "random (pretrained=None)",
        "params": params, "weights_mb_fp32": round(params * 4 / 2**20, 1), "build_s": round(build_s, 2),
        "views": args.views, "view_px": args.resolution, "clip_input_px": 224, "repeats": args.repeats,
        "images_s": round(image_s, 3), "s_per_view": round(image_s / args.views, 4),
        "flops_per_view": flops_per_view,
        "texts": len(texts), "texts_s": round(text_s, 3),
        "peak_memory_kind": "cuda_max_allocated" if cuda else "process_max_rss",
        "peak_memory_before_mb": round(rss_before, 1), "peak_memory_mb": round(peak_mb, 1),
        "device": device, "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cpu_threads": torch.get_num_threads(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                     "open_clip": open_clip.__version__},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=32)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--production-clip", action="store_true",
                        help="time the production CLIP (ViT-L-14, random weights) per view instead")
    args = parser.parse_args()
    if args.production_clip:
        print(json.dumps(production_clip(args)))
        return 0

    import torch

    from text3d.reward.caption import StaticCaptioner
    from text3d.common.device import resolve_device
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import build_reward_model

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
