"""Score spread: how much one mesh's score moves with the step seed (the secret rig and the contrast prompts).

Every step draws fresh camera elevations, an azimuth offset, views from below/above and 15
contrast prompts from its seed, so a miner cannot tune for one fixed rig. The price is
spread: the same mesh scores differently from step to step. This prints, for a few meshes,
the mean, standard deviation, min and max of the score over ``--seeds`` step seeds, and
checks that one seed always gives the same score (two calls, compared bit for bit).

Models: the tiny random CLIP (``--models tiny``; real ViT-L-14 weights cannot be had
offline) with a static captioner and the genuine all-mpnet-base-v2 weights, so the caption
component is real and the CLIP component's spread is that of a random network: quote the
figures as "with the test models". 8 views at ``--resolution`` px. Every report must be
valid and one seed must always give the bit-identical score, or the bench fails.
Run from the repo root: ``python bench/score_spread.py [--seeds 12] [--resolution 256] [--smoke]``.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, run  # noqa: E402

SMOKE = {"seeds": 2, "resolution": 64}
PACKAGES = ("torch", "open_clip_torch", "sentence-transformers", "moderngl", "trimesh", "numpy")


def meshes():
    import numpy as np
    import trimesh

    def coloured(mesh, rgb):
        mesh.visual.vertex_colors = np.tile(np.array([*rgb, 255], dtype=np.uint8), (len(mesh.vertices), 1))
        return mesh

    return {
        "red chair-like box stack": (coloured(trimesh.util.concatenate([
            trimesh.creation.box(extents=(1.0, 0.1, 1.0)),
            trimesh.creation.box(extents=(1.0, 1.0, 0.1), transform=trimesh.transformations.translation_matrix((0, 0.5, -0.45))),
        ]), (190, 40, 30)), "a red wooden chair"),
        "blue torus": (coloured(trimesh.creation.torus(major_radius=0.7, minor_radius=0.25), (40, 80, 200)), "a blue ring"),
        "green cylinder": (coloured(trimesh.creation.cylinder(radius=0.3, height=1.2, sections=48), (60, 160, 60)),
                           "a green vase"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256)


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    from text3d.reward.caption import StaticCaptioner
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import build_reward_model

    bench.check(args.seeds >= 2, "--seeds must be at least 2 for a spread")
    model = build_reward_model("tiny", StaticCaptioner("a 3D model of {prompt}"), device="cpu",
                               config=RewardConfig(resolution_px=args.resolution))
    results = {}
    for name, (mesh, prompt) in meshes().items():
        reports = [model.score(mesh, prompt, step_seed=seed) for seed in range(1, args.seeds + 1)]
        for seed, report in enumerate(reports, start=1):
            bench.check(report.is_valid, f"{name} at step seed {seed} was judged invalid ({report.invalid_reason})")
        scores = [r.score for r in reports]
        again = model.score(mesh, prompt, step_seed=1).score
        bench.check(again.hex() == scores[0].hex(), f"{name}: step seed 1 scored {scores[0]!r} and then {again!r}: "
                                                    f"scoring is not deterministic")
        results[name] = {"prompt": prompt, "mean": round(statistics.mean(scores), 4),
                         "stdev": round(statistics.stdev(scores), 4), "min": round(min(scores), 4),
                         "max": round(max(scores), 4), "same_seed_identical": True}
        r = results[name]
        bench.log(f"{name:28s} {prompt!r:24s} mean {r['mean']:.3f}  sd {r['stdev']:.3f}  range {r['min']:.3f}-{r['max']:.3f}")
    bench.table(f"Score spread over {args.seeds} step seeds (tiny random CLIP, static captions, genuine mpnet; "
                f"8 views at {args.resolution} px)", ["mesh", "prompt", "mean ± sd", "range"],
                [[name, r["prompt"], f"{r['mean']:.3f} ± {r['stdev']:.3f}", f"{r['min']:.3f}-{r['max']:.3f}"]
                 for name, r in results.items()],
                note="The same step seed gives the bit-identical score (checked on every run). The CLIP part of the "
                     "spread is a random network's: quote these figures as \"with the test models\".")
    return {"models": "tiny CLIP + genuine mpnet + static captions", "views": 8, "resolution_px": args.resolution,
            "seeds": args.seeds, "results": results}


if __name__ == "__main__":
    sys.exit(run("score_spread", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
