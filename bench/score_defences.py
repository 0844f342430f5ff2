"""Defences: the cost of each scoring defence per asset at the production protocol (8 views at 512 px).

For an honest Shap-E-sized mesh (a lumpy coloured sphere of ``--faces`` faces) under the
step's secret rig, through the production entry points:

    budget       text3d.reward.defences.budget.estimate_overdraw (before drawing)
    render       the moderngl renderer, 8 views
    flatness     text3d.reward.defences.flatness.thickness + silhouettes
    fingerprint  text3d.reward.defences.fingerprint.fingerprint (geometry + 32 px views)
    ocr          text3d.reward.defences.ocr.RapidOcrEngine on the 8 views (per view and per asset)
    guard        text3d.reward.defences.caption_guard on 8 captions
    clip         the CLIP image batch + contrast texts: tiny CLIP, or with ``--production-clip``
                 open_clip ViT-L-14 built with pretrained=None (random weights: same cost)
    canary       text3d.reward.defences.canary.check_canary without a captioner (renders + CLIP)
    attack       an overdraw mesh (``--attack-faces`` huge triangles) and a needle mesh (as many
                 zero-width triangles across the view): time until the budget refuses each

Each defence must also give the honest answer (the honest mesh within the budget, no OCR
text, no caption flag, the canary ok, the attack refused), or the bench fails. Medians
over ``--repeats`` after a warm-up. Run from the repo root:
``python bench/score_defences.py [--faces 100000] [--repeats 3] [--production-clip] [--smoke]``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, run  # noqa: E402

SMOKE = {"faces": 2_000, "repeats": 1, "attack_faces": 200_000, "clip_arch": "tiny"}  # 200k needles: edges ~580
SUITE_RUNS = [["--production-clip"]]
PACKAGES = ("torch", "open_clip_torch", "moderngl", "trimesh", "numpy", "rapidocr-onnxruntime", "onnxruntime")
STEP_SEED = 2024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attack-faces", type=int, default=1_000_000)
    parser.add_argument("--production-clip", action="store_true", help="time open_clip ViT-L-14 (random weights)")
    parser.add_argument("--clip-arch", default="ViT-L-14", help="the architecture --production-clip builds")
    parser.add_argument("--no-ocr", action="store_true")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    import torch

    from bench.score import random_weight_clip
    from tests.attack_meshes import needle_mesh, overdraw_mesh
    from tests.meshes import coloured_sphere
    from text3d.reward.clip import ClipScorer
    from text3d.reward.config import RewardConfig
    from text3d.reward.defences.budget import estimate_overdraw
    from text3d.reward.defences.canary import CanaryExpectations, check_canary
    from text3d.reward.defences.caption_guard import caption_flags
    from text3d.reward.defences.fingerprint import fingerprint
    from text3d.reward.defences.flatness import silhouette_fractions, thickness
    from text3d.reward.model import RewardModel
    from text3d.reward.render.views import get_renderer
    from text3d.reward.scoring_protocol import PROTOCOL
    from text3d.reward.tiny_clip import ensure_tiny_clip

    config = RewardConfig()
    rig_model = RewardModel(None, None, config=config)  # rig_for and distractors_for only
    rig = rig_model.rig_for(step_seed=STEP_SEED)
    n, px = config.n_views, config.resolution_px
    mesh = coloured_sphere(args.faces, seed=1)
    renderer = get_renderer()
    views = renderer.render(mesh, n, px, rig)
    t = {}
    honest = estimate_overdraw(mesh, rig, n, px, config.max_overdraw, config.max_edge_overdraw)
    bench.check(honest.over_budget(config.max_overdraw, config.max_edge_overdraw) is None,
                f"the honest mesh is over the budget: {honest.as_dict}")
    t["budget"] = bench.time(lambda: estimate_overdraw(mesh, rig, n, px, config.max_overdraw, config.max_edge_overdraw),
                             args.repeats)
    t["render"] = bench.time(lambda: renderer.render(mesh, n, px, rig), args.repeats)
    t["flatness"] = bench.time(lambda: (thickness(mesh), silhouette_fractions(views, rig.background_rgb)), args.repeats)
    t["fingerprint"] = bench.time(lambda: fingerprint(mesh, views, "bench"), args.repeats)
    captions = ["a colourful lumpy ball on a white background"] * n
    bench.check(not any(caption_flags(captions, "a colourful blob")), "the caption guard flagged an honest caption")
    t["guard"] = bench.time(lambda: caption_flags(captions, "a colourful blob"), args.repeats)
    figures: dict = {}
    if not args.no_ocr:
        from text3d.reward.defences.ocr import RapidOcrEngine, ocr_views

        engine = RapidOcrEngine()
        read = ocr_views(engine, views, max_chars=5, min_confidence=0.6)
        bench.check(not any(v.rejected for v in read), f"OCR read text on the honest mesh: {[v.text for v in read]}")
        t["ocr"] = bench.time(lambda: ocr_views(engine, views, max_chars=5, min_confidence=0.6), args.repeats)
        figures["ocr_per_view_s"] = round(t["ocr"].median_s / n, 4)
    if args.production_clip:
        clip = random_weight_clip(args.clip_arch)
    else:
        name, weights = ensure_tiny_clip()
        clip = ClipScorer.from_pretrained(name, weights, device="cpu")
    texts = ["a colourful blob", *rig_model.distractors_for("a colourful blob", STEP_SEED), *config.reject_texts]
    t["clip"] = bench.time(lambda: (clip.encode_images(views), clip.clear_cache(), clip.encode_texts(texts)), args.repeats)
    model = RewardModel(clip, None, config=config, renderer=renderer)
    expectations = CanaryExpectations(min_clip=None)  # random CLIP weights carry no meaning: the renderer's checks
    canary = check_canary(model, step_seed=STEP_SEED, expectations=expectations)
    bench.check(canary.ok, f"the canary failed: {canary.reason}")
    t["canary"] = bench.time(lambda: check_canary(model, step_seed=STEP_SEED, expectations=expectations),
                             max(1, args.repeats - 1))
    attack, needles = overdraw_mesh(args.attack_faces), needle_mesh(args.attack_faces)
    start = time.perf_counter()
    refused = estimate_overdraw(attack, rig, n, px, config.max_overdraw, config.max_edge_overdraw)
    attack_s = time.perf_counter() - start
    bench.check(refused.overdraw > config.max_overdraw, f"the {args.attack_faces:,}-face overdraw attack was not refused "
                                                        f"(overdraw {refused.overdraw:.1f} <= {config.max_overdraw})")
    start = time.perf_counter()
    slivers = estimate_overdraw(needles, rig, n, px, config.max_overdraw, config.max_edge_overdraw)
    needles_s = time.perf_counter() - start
    bench.check(slivers.edge_overdraw > config.max_edge_overdraw,
                f"the {args.attack_faces:,}-needle attack was not refused ({slivers.as_dict})")
    seconds = {k: round(v.median_s, 4) for k, v in t.items()} | {"attack_refused": round(attack_s, 4),
                                                                  "needles_refused": round(needles_s, 4)}
    clip_label = f"CLIP {clip.name.split('/')[0]}" + (" (random weights)" if args.production_clip else " (tiny test CLIP)")
    rows = [["render budget (overdraw estimate, before drawing)", duration(seconds["budget"])],
            [f"render, {n} views at {px} px", duration(seconds["render"])],
            ["flatness (geometry + silhouettes)", duration(seconds["flatness"])],
            ["fingerprint (geometry + 32 px views)", duration(seconds["fingerprint"])]]
    if "ocr" in seconds:
        rows.append([f"OCR, rapidocr ({n} views)", f"{duration(seconds['ocr'])} ({duration(seconds['ocr'] / n)} a view)"])
    rows += [["caption guard (8 captions)", duration(seconds["guard"])],
             [f"{clip_label}, {n} views + {len(texts)} texts", duration(seconds["clip"])],
             ["canary (no captioner), per step", duration(seconds["canary"])],
             [f"overdraw attack, {args.attack_faces:,} faces: refused after", duration(attack_s)],
             [f"needle attack, {args.attack_faces:,} faces: refused after", duration(needles_s)]]
    bench.table(f"Per-asset validation cost at the production protocol (a {len(mesh.faces):,}-face coloured mesh under a "
                f"secret rig; {renderer.gl_renderer}; median of {args.repeats})", ["stage", "cost per asset"], rows,
                note="Captioning is not included (bench/caption_7b.py). On a validator GPU the CLIP and OCR rows shrink "
                     "by one to two orders of magnitude; rendering stays on the GPU's EGL.")
    if args.production_clip and "ocr" in seconds:
        total = sum(v for k, v in seconds.items() if k not in ("canary", "attack_refused", "needles_refused"))
        bench.headline(f"Validation without captions: {duration(total)} per asset on this CPU at the production "
                       f"protocol ({n} views at {px} px, {clip_label}, OCR and every defence).")
    return {**figures, "faces": len(mesh.faces), "n_views": n, "resolution_px": px, "protocol": PROTOCOL.digest()[:12],
            "gl_renderer": renderer.gl_renderer, "threads": torch.get_num_threads(), "clip_model": clip.name,
            "attack_faces": args.attack_faces, "attack_overdraw": round(refused.overdraw, 1),
            "needles_edge_overdraw": round(slivers.edge_overdraw, 1), "honest_overdraw": round(honest.overdraw, 2),
            "honest_edge_overdraw": round(honest.edge_overdraw, 2), "seconds": seconds}


if __name__ == "__main__":
    sys.exit(run("score_defences", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
