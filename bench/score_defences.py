"""Cost of each scoring defence per asset at the production protocol (8 views at 512 px).

For honest Shap-E-sized meshes (lumpy coloured spheres of ``--faces`` faces) under the
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
    attack       the 1M-face overdraw mesh: time until the budget refuses it

Medians over ``--repeats`` after a warm-up; ends with ONE JSON line.
Run from the repo root: ``python bench/score_defences.py [--faces 100000] [--repeats 3]``.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--production-clip", action="store_true")
    parser.add_argument("--no-ocr", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from text3d.reward.defences.budget import estimate_overdraw
    from text3d.reward.defences.canary import CanaryExpectations, check_canary
    from text3d.reward.defences.caption_guard import caption_flags
    from text3d.reward.clip import ClipScorer
    from text3d.reward.config import RewardConfig
    from text3d.reward.defences.fingerprint import fingerprint
    from text3d.reward.defences.flatness import silhouette_fractions, thickness
    from text3d.reward.model import RewardModel
    from text3d.reward.render.views import get_renderer
    from text3d.reward.scoring_protocol import PROTOCOL
    from text3d.reward.tiny_clip import ensure_tiny_clip
    from tests.attack_meshes import overdraw_mesh
    from tests.meshes import coloured_sphere

    config = RewardConfig()
    rig_model = RewardModel(None, None, config=config)  # rig_for and distractors_for only
    rig = rig_model.rig_for(step_seed=2024)
    n, px = config.n_views, config.resolution_px
    mesh = coloured_sphere(args.faces, seed=1)
    renderer = get_renderer()
    views = renderer.render(mesh, n, px, rig)
    out: dict = {"bench": "score_defences", "faces": len(mesh.faces), "n_views": n, "resolution_px": px,
                 "protocol": PROTOCOL.digest()[:12], "gl_renderer": renderer.gl_renderer,
                 "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    t = {}
    t["budget"] = median_time(lambda: estimate_overdraw(mesh, rig, n, px, config.max_overdraw), args.repeats)
    t["render"] = median_time(lambda: renderer.render(mesh, n, px, rig), args.repeats)
    t["flatness"] = median_time(lambda: (thickness(mesh), silhouette_fractions(views, rig.background_rgb)),
                                args.repeats)
    t["fingerprint"] = median_time(lambda: fingerprint(mesh, views, "bench"), args.repeats)
    captions = ["a colourful lumpy ball on a white background"] * n
    t["guard"] = median_time(lambda: caption_flags(captions, "a colourful blob"), args.repeats)
    if not args.no_ocr:
        from text3d.reward.defences.ocr import RapidOcrEngine, ocr_views

        engine = RapidOcrEngine()
        t["ocr"] = median_time(lambda: ocr_views(engine, views, max_chars=5, min_confidence=0.6), args.repeats)
        out["ocr_per_view_s"] = round(t["ocr"] / n, 4)
    if args.production_clip:
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None)
        clip = ClipScorer(model.eval(), preprocess, open_clip.get_tokenizer("ViT-L-14"), model_name="ViT-L-14",
                          pretrained="random")
    else:
        name, weights = ensure_tiny_clip()
        clip = ClipScorer.from_pretrained(name, weights, device="cpu")
    texts = ["a colourful blob", *rig_model.distractors_for("a colourful blob", 2024), *config.reject_texts]
    t["clip"] = median_time(lambda: (clip.encode_images(views), clip.clear_cache(), clip.encode_texts(texts)),
                            args.repeats)
    model = RewardModel(clip, None, config=config, renderer=renderer)
    t["canary"] = median_time(lambda: check_canary(model, step_seed=2024, expectations=CanaryExpectations(
        min_clip=None)), max(1, args.repeats - 1))
    attack = overdraw_mesh(1_000_000)
    start = time.perf_counter()
    refused = estimate_overdraw(attack, rig, n, px, config.max_overdraw)
    t["attack_refused"] = time.perf_counter() - start
    out["attack_overdraw"] = round(refused.overdraw, 1)
    out["clip_model"] = clip.name
    out["seconds"] = {k: round(v, 4) for k, v in t.items()}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
