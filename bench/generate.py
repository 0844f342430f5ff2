"""Benchmark Shap-E generation: prior sampling and mesh decoding, per mesh and per batch.

    python bench/generate.py                       # tiny pipeline, CPU (or CUDA fp16 if present)
    python bench/generate.py --device cuda --model openai/shap-e --steps 64 --grids 128

Times the production entry points (``ShapEGenerator.sample_latents`` / ``decode_mesh``)
separately: the prior for one prompt and for a batch of ``--batch`` prompts at each
``--steps`` count, and decoding one latent at each ``--grids`` size. One warm-up run per
measurement, then the median of ``--repeats``. Prints the device and versions; the
last line is one JSON object.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["a red chair", "a shark", "a small wooden boat", "a green cactus in a pot"]


def _median_s(run: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    run()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, a hub id or a local folder (default: tiny)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] (default: auto; fp16 on CUDA)")
    parser.add_argument("--steps", default="64,4", help="prior step counts, comma-separated (default: 64,4)")
    parser.add_argument("--grids", default="32,128", help="marching-cubes grid sizes (default: 32,128)")
    parser.add_argument("--batch", type=int, default=4, help="prompts per prior batch (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default: 3)")
    args = parser.parse_args()

    import diffusers
    import torch
    import transformers

    from generation import GenerationConfig, ShapEGenerator

    steps_list = [int(s) for s in args.steps.split(",")]
    grids = [int(g) for g in args.grids.split(",")]
    prompts = (PROMPTS * args.batch)[: args.batch]
    config = GenerationConfig(model=args.model, device=args.device, max_batch_size=args.batch, show_progress=False)
    started = time.perf_counter()
    generator = ShapEGenerator.from_pretrained(config=config)
    load_s = time.perf_counter() - started
    device = generator.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"model {args.model} on {device} ({device_name}, {generator.dtype}), torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} CPU threads; load {load_s:.2f} s"
    )

    prior: dict[str, dict[str, float]] = {}
    latent = None
    for steps in steps_list:
        timed = ShapEGenerator(generator.pipeline, config.model_copy(update={"num_inference_steps": steps}), device)
        one = _median_s(lambda: timed.sample_latents(prompts[:1], [0]), args.repeats, sync)
        batch = _median_s(lambda: timed.sample_latents(prompts, list(range(len(prompts)))), args.repeats, sync)
        prior[str(steps)] = {"s_per_mesh": one, f"s_per_batch_{len(prompts)}": batch, "s_per_mesh_in_batch": batch / len(prompts)}
        print(f"prior {steps:4d} steps: {one:.3f} s alone, {batch:.3f} s per batch of {len(prompts)} ({batch / len(prompts):.3f} s/mesh)")
        latent = timed.sample_latents(prompts[:1], [0])[0]

    decode: dict[str, dict[str, float]] = {}
    for grid in grids:
        timed = ShapEGenerator(generator.pipeline, config.model_copy(update={"grid_size": grid}), device)
        seconds = _median_s(lambda: timed.decode_mesh(latent), args.repeats, sync)
        faces = len(timed.decode_mesh(latent).faces)
        decode[str(grid)] = {"s_per_mesh": seconds, "faces": faces}
        print(f"decode grid {grid:4d}: {seconds:.3f} s per mesh ({faces} faces); batch of {len(prompts)}: {seconds * len(prompts):.3f} s")

    total = {
        f"steps{s}_grid{g}": {
            "s_per_mesh": prior[str(s)]["s_per_mesh"] + decode[str(g)]["s_per_mesh"],
            f"s_per_batch_{len(prompts)}": prior[str(s)][f"s_per_batch_{len(prompts)}"] + len(prompts) * decode[str(g)]["s_per_mesh"],
        }
        for s in steps_list
        for g in grids
    }
    result = {
        "bench": "generate",
        "model": args.model,
        "device": str(device),
        "device_name": device_name,
        "dtype": str(generator.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cpu_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "load_s": round(load_s, 3),
        "prior": {k: {n: round(v, 4) for n, v in d.items()} for k, d in prior.items()},
        "decode": {k: {n: round(v, 4) for n, v in d.items()} for k, d in decode.items()},
        "total": {k: {n: round(v, 4) for n, v in d.items()} for k, d in total.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
