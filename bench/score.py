"""Scoring: throughput of the whole RewardModel, render -> caption -> CLIP -> mpnet -> report.

Models: tiny CLIP (random weights, production loader), GENUINE all-mpnet-base-v2,
``StaticCaptioner`` (no LLM: this measures the scoring core, not LLaVA), the canonical
moderngl renderer. Compares, for the same assets:

    single  : score() on 1 asset
    loop    : score() called N times (no cross-asset batching)
    batch   : score_batch() on N assets (one CLIP image batch, one mpnet caption batch)

Every report must be valid with a finite score in [0, 1]. Medians over ``--repeats`` after
one warm-up of each. Run from the repo root:
``python bench/score.py [--assets 32] [--views 8] [--resolution 512] [--smoke]``.

``--production-clip`` measures the production CLIP instead: ``open_clip`` ViT-L-14 built
with ``pretrained=None`` (random weights: the cost does not depend on them, and the real
ones cannot be fetched offline) inside the production ``ClipScorer``; seconds per view
for ``--views`` rendered-size views (one asset), seconds for 20 prompt/distractor texts,
the model's parameters, FLOPs per view and peak memory (RSS on the CPU, allocated memory
on CUDA). With ``--smoke`` it builds the tiny CLIP architecture the same way.
"""

import argparse
import math
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, run  # noqa: E402

SMOKE = {"assets": 2, "views": 2, "resolution": 64, "faces": 200, "repeats": 1, "clip_arch": "tiny"}
SUITE_RUNS = [[], ["--production-clip"]]
PACKAGES = ("torch", "open_clip_torch", "sentence-transformers", "moderngl", "trimesh", "numpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", type=int, default=32)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--production-clip", action="store_true",
                        help="time the production CLIP (ViT-L-14, random weights) per view instead")
    parser.add_argument("--clip-arch", default="ViT-L-14",
                        help="open_clip architecture for --production-clip (tiny: the test CLIP's)")


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


def random_weight_clip(arch: str, device: str = "cpu"):
    """The production ``ClipScorer`` around open_clip's ``arch`` with random weights (``tiny``: the test CLIP's config).

    Time and memory do not depend on the weights' values, so this is the real model's cost.
    """
    import open_clip

    from text3d.reward.clip import ClipScorer
    from text3d.reward.tiny_clip import ensure_tiny_clip

    name = ensure_tiny_clip()[0] if arch == "tiny" else arch
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=device)
    return ClipScorer(model.eval(), preprocess, open_clip.get_tokenizer(name), model_name=name,
                      pretrained="none (random weights)", device=device)


def check_reports(bench: Bench, reports, what: str) -> None:
    for i, report in enumerate(reports):
        bench.check(report.is_valid, f"{what}: asset {i} was judged invalid ({report.invalid_reason})")
        bench.check(math.isfinite(report.score) and 0.0 <= report.score <= 1.0,
                    f"{what}: asset {i} scored {report.score}, outside [0, 1]")


def production_clip(bench: Bench, args: argparse.Namespace) -> dict:
    """Cost of the production CLIP (ViT-L-14, random weights) per view and per batch of texts."""
    import time

    import numpy as np
    import open_clip
    import torch
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from text3d.common.device import resolve_device

    device = resolve_device(args.device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    clip = random_weight_clip(args.clip_arch, device)
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in clip.model.parameters())
    rng = np.random.default_rng(0)
    views = [Image.fromarray(rng.integers(0, 255, (args.resolution, args.resolution, 3), dtype=np.uint8))
             for _ in range(args.views)]
    texts = [f"a 3D model of object number {i}" for i in range(20)]
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def text_batch() -> None:
        clip.clear_cache()
        clip.encode_texts(texts)

    embeddings = clip.encode_images(views)
    bench.check(tuple(embeddings.shape)[0] == args.views and bool(torch.isfinite(embeddings).all()),
                f"CLIP returned {tuple(embeddings.shape)} embeddings for {args.views} views, or non-finite ones")
    with FlopCounterMode(display=False) as counter:
        clip.encode_images(views[:1])
    flops_per_view = counter.get_total_flops()
    image_s = bench.time(lambda: clip.encode_images(views), args.repeats, sync=sync).median_s
    text_s = bench.time(text_batch, args.repeats, sync=sync).median_s
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    arch = clip.name.split("/")[0] if args.clip_arch == "tiny" else args.clip_arch
    bench.table(f"CLIP {arch} with random weights ({device}; {args.views} views of {args.resolution} px, "
                f"median of {args.repeats})", ["measure", "value"],
                [["parameters", f"{params / 1e6:,.1f} M ({params * 4 / 2**20:,.0f} MB in fp32)"],
                 [f"{args.views} views", f"{duration(image_s)} ({duration(image_s / args.views)} a view)"],
                 ["FLOPs per view", f"{flops_per_view / 1e9:,.4g} GFLOP"],
                 [f"{len(texts)} texts (prompt and distractors)", duration(text_s)],
                 ["peak memory", f"{peak_mb:,.0f} MB ({'CUDA allocated' if cuda else 'process max RSS'})"]],
                note="Time and memory do not depend on the weights' values: this is the production CLIP's cost.")
    return {
        "mode": "production-clip", "clip": arch, "weights": "random (pretrained=None)",
        "params": params, "weights_mb_fp32": round(params * 4 / 2**20, 1), "build_s": round(build_s, 2),
        "views": args.views, "view_px": args.resolution, "repeats": args.repeats,
        "images_s": round(image_s, 3), "s_per_view": round(image_s / args.views, 4), "flops_per_view": flops_per_view,
        "texts": len(texts), "texts_s": round(text_s, 3),
        "peak_memory_kind": "cuda_max_allocated" if cuda else "process_max_rss",
        "peak_memory_before_mb": round(rss_before, 1), "peak_memory_mb": round(peak_mb, 1),
        "device": device, "gpu": torch.cuda.get_device_name(0) if cuda else None, "cpu_threads": torch.get_num_threads(),
        "open_clip": open_clip.__version__,
    }


def reward_model(bench: Bench, args: argparse.Namespace) -> dict:
    import time

    import torch

    from text3d.common.device import resolve_device
    from text3d.reward.caption import StaticCaptioner
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
    check_reports(bench, model.score_batch(meshes, prompts), "score_batch")
    check_reports(bench, [model.score(meshes[0], prompts[0])], "score")

    t = {
        "single": bench.time(lambda: model.score(meshes[0], prompts[0]), args.repeats),
        "loop": bench.time(lambda: [model.score(m, p) for m, p in zip(meshes, prompts)], args.repeats),
        "batch": bench.time(lambda: model.score_batch(meshes, prompts), args.repeats),
        "render": bench.time(lambda: [renderer.render(m, args.views, args.resolution) for m in meshes], args.repeats),
    }
    med = {k: v.median_s for k, v in t.items()}
    n = args.assets
    figures = {
        "assets": n, "views": args.views, "resolution_px": args.resolution, "faces_per_mesh": int(len(meshes[0].faces)),
        "repeats": args.repeats, "single_asset_s": round(med["single"], 4), "single_assets_per_s": round(1.0 / med["single"], 3),
        "loop_s": round(med["loop"], 3), "loop_assets_per_s": round(n / med["loop"], 3),
        "batch_s": round(med["batch"], 3), "batch_assets_per_s": round(n / med["batch"], 3),
        "batch_speedup_vs_loop": round(med["loop"] / med["batch"], 3), "render_only_s": round(med["render"], 3),
        "render_share_of_batch": round(med["render"] / med["batch"], 3), "model_load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "gl_renderer": renderer.gl_renderer, "cpu_threads": torch.get_num_threads(), "models": model.models(),
    }
    bench.table(f"Whole RewardModel (tiny CLIP, genuine mpnet, static captioner; {args.views} views at {args.resolution} px, "
                f"{figures['faces_per_mesh']:,}-face meshes; median of {args.repeats})",
                ["", "assets/s", "seconds"],
                [["1 asset", f"{1.0 / med['single']:.2f}", duration(med["single"])],
                 [f"{n} assets one by one", f"{n / med['loop']:.2f}", duration(med["loop"])],
                 [f"{n} assets with score_batch", f"{n / med['batch']:.2f} ({med['loop'] / med['batch']:.2f}x)",
                  duration(med["batch"])]],
                note=f"Rendering alone is {100 * med['render'] / med['batch']:.0f}% of a batch on this machine; batching "
                     f"shares the CLIP and mpnet passes. Peak RSS {figures['peak_rss_mb']:,.0f} MB.")
    return figures


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    return production_clip(bench, args) if args.production_clip else reward_model(bench, args)


if __name__ == "__main__":
    sys.exit(run("score", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
