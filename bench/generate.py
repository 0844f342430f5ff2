"""Generation: Shap-E prior sampling and mesh decoding, per mesh and per batch.

    python bench/generate.py                       # tiny pipeline, CPU (or CUDA fp16 if present)
    python bench/generate.py --device cuda --model openai/shap-e --steps 64 --grids 128
    python bench/generate.py --production-size     # openai/shap-e's architecture, random weights

Times the production entry points (``ShapEGenerator.sample_latents`` / ``decode_mesh``)
separately: the prior for one prompt and for a batch of ``--batch`` prompts at each
``--steps`` count, and decoding one latent at each ``--grids`` size. One warm-up run per
measurement, then the median of ``--repeats``.

``--production-size`` builds the pipeline at ``openai/shap-e``'s real sizes with random
weights (``text3d.generation.production_size``: time and memory do not depend on weight
values, and the real weights cannot be had offline; the renderer's field smoothed so a
decode makes an object-sized mesh, not noise). It measures seconds per denoising step (the difference between two step counts,
so the text encoder and set-up cancel out), the prior's FLOPs, peak memory (RSS on the
CPU, allocated memory on CUDA) and one decode per ``--grids`` size. Minutes on a CPU.
With ``--smoke`` the production-size architecture is built on torch's ``meta`` device
(its configuration and parameter count checked, no memory) and the timed code path runs
on the tiny pipeline.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, run  # noqa: E402

PROMPTS = ["a red chair", "a shark", "a small wooden boat", "a green cactus in a pot"]
SMOKE = {"steps": "2", "grids": "16", "batch": 2, "repeats": 1, "production_steps": "1,32", "step_runs": 3}
SUITE_RUNS = [[], ["--production-size"]]
PACKAGES = ("torch", "diffusers", "transformers", "numpy", "trimesh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", help="tiny, a hub id or a local folder (default: tiny)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] (default: auto; fp16 on CUDA)")
    parser.add_argument("--steps", default="64,4", help="prior step counts, comma-separated (default: 64,4)")
    parser.add_argument("--grids", default="32,128", help="marching-cubes grid sizes (default: 32,128)")
    parser.add_argument("--batch", type=int, default=4, help="prompts per prior batch (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default: 3)")
    parser.add_argument("--production-size", action="store_true",
                        help="time openai/shap-e's architecture with random weights instead (minutes on a CPU)")
    parser.add_argument("--production-steps", default="2,4", help="two step counts for --production-size (default: 2,4)")
    parser.add_argument("--step-runs", type=int, default=1,
                        help="timed runs (median) of each --production-steps count (default: 1; minutes each on a CPU)")


def production_size_on_meta() -> dict:
    """``text3d.generation.production_size``'s three modules, built from its configs on torch's meta device."""
    import torch
    from diffusers import PriorTransformer
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from text3d.generation.production_size import PRIOR_CONFIG, TEXT_ENCODER_CONFIG

    with torch.device("meta"):
        return {"prior": PriorTransformer(**PRIOR_CONFIG), "shap_e_renderer": ShapERenderer(),
                "text_encoder": CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_ENCODER_CONFIG))}


def _parameters(modules) -> dict[str, int]:
    """Parameters per component of a pipeline (or a dict of its modules)."""
    get = modules.get if isinstance(modules, dict) else lambda name: getattr(modules, name)
    return {name: sum(p.numel() for p in get(name).parameters()) for name in ("prior", "text_encoder", "shap_e_renderer")}


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# openai/shap-e's parameter count with diffusers' classes: the smoke run checks the builder still makes it
PRODUCTION_PARAMETERS = {"prior": 316_000_000, "text_encoder": 123_000_000, "shap_e_renderer": 227_000_000}


def production_size(bench: Bench, args: argparse.Namespace) -> dict:
    """Seconds per prior step, FLOPs, peak memory and decode time of the production-size pipeline."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from text3d.generation import GenerationConfig, ShapEGenerator
    from text3d.generation.errors import EmptyMeshError
    from text3d.generation.production_size import build_production_size_pipeline
    from text3d.generation.shap_e import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    rss_before = _rss_peak_mb()
    started = time.perf_counter()
    if bench.smoke:  # the real architecture's configuration, checked without memory; the timings on the tiny one
        from text3d.generation.tiny import build_tiny_pipeline

        params = _parameters(production_size_on_meta())
        for name, expected in PRODUCTION_PARAMETERS.items():
            bench.check(abs(params[name] - expected) / expected < 0.01,
                        f"the production-size {name} has {params[name]:,} parameters, expected about {expected:,}")
        pipeline = build_tiny_pipeline().to(device=device, dtype=dtype)
    else:
        pipeline = build_production_size_pipeline(device=device, dtype=dtype)
    build_s = time.perf_counter() - started
    params = _parameters(pipeline)
    weight_mb = {name: round(n * torch.finfo(dtype).bits / 8 / 2**20, 1) for name, n in params.items()}
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    low, high = (int(s) for s in args.production_steps.split(",")[:2])
    bench.check(high > low, f"--production-steps needs two rising step counts, got {args.production_steps}")
    config = GenerationConfig(model="production-size", device=str(device), max_batch_size=args.batch, show_progress=False)
    captured: dict[str, Any] = {}

    def capture(module, call_args, call_kwargs):  # the prior's real inputs, for counting its FLOPs below
        captured.setdefault("call", (call_args, call_kwargs))

    seconds: dict[int, float] = {}
    latent = None
    for steps in (low, high):
        generator = ShapEGenerator(pipeline, config.model_copy(update={"num_inference_steps": steps}), device)
        hook = pipeline.prior.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            timings = bench.time(lambda: generator.sample_latents(PROMPTS[:1], [0]), args.step_runs,
                                 warmup=1 if steps == low else 0, sync=sync)
        finally:
            hook.remove()
        seconds[steps] = timings.median_s
        latent = generator.sample_latents(PROMPTS[:1], [0])[0]
        bench.log(f"production-size prior, {steps} steps, 1 prompt: {seconds[steps]:.2f} s")
    per_step = (seconds[high] - seconds[low]) / (high - low)
    if bench.smoke and per_step <= 0:
        # the tiny pipeline's step is well under a millisecond, below a loaded machine's noise (CI once
        # measured 32 steps no slower than 1): the smoke run checks the code path, so it takes the mean
        per_step = seconds[high] / high
    bench.check(per_step > 0, f"a prior step costs {per_step:.3f} s: {high} steps took no longer than {low} "
                              f"(the machine's noise swamped the measurement; rerun on a quieter machine)")
    call_args, call_kwargs = captured["call"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        pipeline.prior(*call_args, **call_kwargs)
    flops_per_evaluation = counter.get_total_flops()  # one prior call: a CFG batch of 2 for one prompt
    bench.check(flops_per_evaluation > 0, "the FLOP counter saw no work in the prior")
    batch_s = None
    if args.batch > 1:
        generator = ShapEGenerator(pipeline, config.model_copy(update={"num_inference_steps": low}), device)
        prompts = (PROMPTS * args.batch)[: args.batch]
        batch_s = bench.time(lambda: generator.sample_latents(prompts, list(range(len(prompts)))), 1, warmup=0,
                             sync=sync).median_s
        bench.log(f"production-size prior, {low} steps, batch of {len(prompts)}: {batch_s:.2f} s")
    peak_prior_mb = (torch.cuda.max_memory_allocated(device) / 2**20) if cuda else _rss_peak_mb()
    decode: dict[str, dict[str, Any]] = {}
    for grid in [int(g) for g in args.grids.split(",")]:
        generator = ShapEGenerator(pipeline, config.model_copy(update={"grid_size": grid}), device)
        outcome: dict[str, Any] = {}

        def decode_once() -> None:
            try:
                outcome["faces"] = len(generator.decode_mesh(latent).faces)
            except EmptyMeshError:  # random weights may give a field without a surface: the SDF pass was still paid
                outcome["faces"] = 0

        decode_s = bench.time(decode_once, 1, warmup=0, sync=sync).median_s
        decode[str(grid)] = {"s_per_mesh": round(decode_s, 3), "faces": outcome["faces"]}
        bench.log(f"production-size decode grid {grid}: {decode_s:.2f} s ({outcome['faces']} faces)")
    peak_mb = (torch.cuda.max_memory_allocated(device) / 2**20) if cuda else _rss_peak_mb()
    figures = {
        "mode": "production-size" if not bench.smoke else "production-size code path on the tiny pipeline",
        "device": str(device), "dtype": str(dtype).removeprefix("torch."), "params": params,
        "params_total": sum(params.values()), "weights_mb": weight_mb, "build_s": round(build_s, 2),
        "prior_s": {str(k): round(v, 3) for k, v in seconds.items()}, "prior_s_per_step": round(per_step, 3),
        "prior_evaluations_per_step": 2,  # Heun: two prior calls a step (one on the last), each a CFG batch of 2
        "prior_flops_per_evaluation": flops_per_evaluation,
        "prior_tflops_per_mesh_64_steps": round(flops_per_evaluation * (2 * 64 - 1) / 1e12, 3),
        f"prior_s_{low}_steps_batch_{args.batch}": None if batch_s is None else round(batch_s, 3),
        "estimated_s_per_mesh_64_steps": round(64 * per_step, 1), "decode": decode,
        "peak_memory_kind": "cuda_max_allocated" if cuda else "process_max_rss",
        "peak_memory_before_mb": round(rss_before, 1), "peak_memory_after_prior_mb": round(peak_prior_mb, 1),
        "peak_memory_mb": round(peak_mb, 1), "cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
    }
    rows = [["parameters (prior + CLIP text + renderer)",
             f"{sum(params.values()) / 1e6:,.0f} M ({sum(weight_mb.values()) / 1024:.2f} GiB in {figures['dtype']})"],
            ["prior, one denoising step (1 prompt, CFG batch of 2)", duration(per_step)],
            ["prior FLOPs per evaluation", f"{flops_per_evaluation / 1e9:,.4g} GFLOP"],
            ["prior, 64 Karras steps (estimated from the step cost)", duration(64 * per_step)]]
    if batch_s is not None:
        rows.append([f"prior, {low} steps, batch of {args.batch}", duration(batch_s)])
    def decode_note(faces: int) -> str:  # the smoothed random field should look like an object: 50-150k faces at 128
        if faces == 0:
            return ", no surface in the random field: a lower bound"
        return ", far more faces than a real mesh: an upper bound" if faces > 500_000 else ""

    rows += [[f"decode, grid {g}", f"{duration(d['s_per_mesh'])} ({d['faces']:,} faces{decode_note(d['faces'])})"]
             for g, d in decode.items()]
    rows.append([f"peak memory ({figures['peak_memory_kind'].replace('_', ' ')})", f"{peak_mb:,.0f} MB"])
    bench.table(f"Generation, openai/shap-e's architecture with random weights ({figures['device']}, {figures['dtype']})",
                ["measure", "value"], rows,
                note="Time and memory do not depend on the weights' values; the per-step cost is the difference "
                     f"between {low} and {high} steps, so the text encoder and set-up cancel out.")
    if device.type == "cpu":
        bench.headline(f"Generation: one Shap-E denoising step (production size, random weights) takes "
                       f"{duration(per_step)} on this CPU, so a 64-step mesh takes about {duration(64 * per_step)}: "
                       f"mining is GPU work.")
    return figures


def tiny_or_model(bench: Bench, args: argparse.Namespace) -> dict:
    import diffusers
    import torch
    import transformers

    from text3d.generation import GenerationConfig, ShapEGenerator

    steps_list = [int(s) for s in args.steps.split(",")]
    grids = [int(g) for g in args.grids.split(",")]
    prompts = (PROMPTS * args.batch)[: args.batch]
    config = GenerationConfig(model=args.model, device=args.device, max_batch_size=args.batch, show_progress=False)
    started = time.perf_counter()
    generator = ShapEGenerator.from_pretrained(config=config)
    load_s = time.perf_counter() - started
    device = generator.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    bench.log(f"model {args.model} on {device} ({device_name}, {generator.dtype}), torch {torch.__version__}, "
              f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
              f"{torch.get_num_threads()} CPU threads; load {load_s:.2f} s")

    prior: dict[str, dict[str, float]] = {}
    latent = None
    for steps in steps_list:
        timed = ShapEGenerator(generator.pipeline, config.model_copy(update={"num_inference_steps": steps}), device)
        one = bench.time(lambda: timed.sample_latents(prompts[:1], [0]), args.repeats, sync=sync).median_s
        batch = bench.time(lambda: timed.sample_latents(prompts, list(range(len(prompts)))), args.repeats,
                           sync=sync).median_s
        prior[str(steps)] = {"s_per_mesh": one, f"s_per_batch_{len(prompts)}": batch,
                             "s_per_mesh_in_batch": batch / len(prompts)}
        bench.log(f"prior {steps:4d} steps: {one:.3f} s alone, {batch:.3f} s per batch of {len(prompts)}")
        latent = timed.sample_latents(prompts[:1], [0])[0]

    decode: dict[str, dict[str, float]] = {}
    for grid in grids:
        timed = ShapEGenerator(generator.pipeline, config.model_copy(update={"grid_size": grid}), device)
        seconds = bench.time(lambda: timed.decode_mesh(latent), args.repeats, sync=sync).median_s
        faces = len(timed.decode_mesh(latent).faces)
        bench.check(faces > 0, f"decoding at grid {grid} gave an empty mesh")
        decode[str(grid)] = {"s_per_mesh": seconds, "faces": faces}
        bench.log(f"decode grid {grid:4d}: {seconds:.3f} s per mesh ({faces} faces)")

    n = len(prompts)
    total = {f"steps{s}_grid{g}": {"s_per_mesh": prior[str(s)]["s_per_mesh"] + decode[str(g)]["s_per_mesh"],
                                   f"s_per_batch_{n}": prior[str(s)][f"s_per_batch_{n}"] + n * decode[str(g)]["s_per_mesh"]}
             for s in steps_list for g in grids}
    rows = [[f"prior, {s} steps", duration(p["s_per_mesh"]), duration(p[f"s_per_batch_{n}"])] for s, p in prior.items()]
    rows += [[f"decode, grid {g} ({d['faces']:,} faces)", duration(d["s_per_mesh"]), f"{n} x single"]
             for g, d in decode.items()]
    bench.table(f"Generation, {args.model} pipeline ({device}, {str(generator.dtype).removeprefix('torch.')}; "
                f"median of {args.repeats})", ["stage", "per mesh", f"batch of {n}"], rows,
                note="The tiny pipeline has random weights at test sizes: these figures time the serving path's "
                     "generation calls, not Shap-E's cost (see the production-size run)." if args.model == "tiny" else "")
    rounded = lambda d: {k: {n_: round(v, 4) for n_, v in x.items()} for k, x in d.items()}  # noqa: E731
    return {"model": args.model, "device": str(device), "device_name": device_name,
            "dtype": str(generator.dtype).removeprefix("torch."), "cpu_threads": torch.get_num_threads(),
            "repeats": args.repeats, "load_s": round(load_s, 3), "prior": rounded(prior), "decode": rounded(decode),
            "total": rounded(total)}


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    return production_size(bench, args) if args.production_size else tiny_or_model(bench, args)


if __name__ == "__main__":
    sys.exit(run("generate", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
