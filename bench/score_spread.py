"""How much one mesh's score moves with the step seed (the secret rig and the contrast prompts).

Every step draws fresh camera elevations, an azimuth offset, views from below/above and 15
contrast prompts from its seed, so a miner cannot tune for one fixed rig. The price is
spread: the same mesh scores differently from step to step. This prints, for a few meshes,
the mean, standard deviation, min and max of the score over ``--seeds`` step seeds, and
checks that one seed always gives the same score (two calls, compared bit for bit).

Models: the tiny random CLIP (``--models tiny``; real ViT-L-14 weights cannot be had
offline) with a static captioner and the genuine all-mpnet-base-v2 weights, so the caption
component is real and the CLIP component's spread is that of a random network: quote the
figures as "with the test models". 8 views at ``--resolution`` px.
Ends with ONE JSON line. Run from the repo root: ``python bench/score_spread.py``.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()

    from text3d.reward.caption import StaticCaptioner
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import build_reward_model

    model = build_reward_model("tiny", StaticCaptioner("a 3D model of {prompt}"), device="cpu",
                               config=RewardConfig(resolution_px=args.resolution))
    results = {}
    for name, (mesh, prompt) in meshes().items():
        scores = [model.score(mesh, prompt, step_seed=seed).score for seed in range(1, args.seeds + 1)]
        again = model.score(mesh, prompt, step_seed=1).score
        results[name] = {
            "prompt": prompt,
            "mean": round(statistics.mean(scores), 4),
            "stdev": round(statistics.stdev(scores), 4),
            "min": round(min(scores), 4),
            "max": round(max(scores), 4),
            "same_seed_identical": again.hex() == scores[0].hex(),
        }
        r = results[name]
        print(f"{name:28s} {prompt!r:24s} mean {r['mean']:.3f}  sd {r['stdev']:.3f}  "
              f"range {r['min']:.3f}-{r['max']:.3f}  same seed identical: {r['same_seed_identical']}")
    print(json.dumps({"bench": "score_spread", "models": "tiny CLIP + genuine mpnet + static captions",
                      "views": 8, "resolution_px": args.resolution, "seeds": args.seeds, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
