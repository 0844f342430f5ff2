"""Benchmark Shap-E generation: prior sampling and mesh decoding, per mesh and per batch.

    python bench/generate.py                       # tiny pipeline, CPU (or CUDA fp16 if present)
    python bench/generate.py --device cuda --model openai/shap-e --steps 64 --grids 128
    python bench/generate.py --production-size     # openai/shap-e's architecture, random weights

Times the production entry points (``ShapEGenerator.sample_latents`` / ``decode_mesh``)
separately: the prior for one prompt and for a batch of ``--batch`` prompts at each
``--steps`` count, and decoding one latent at each ``--grids`` size. One warm-up run per
measurement, then the median of ``--repeats``. Prints the device and versions; the
last line is one JSON object.

``--production-size`` builds the pipeline at ``openai/shap-e``'s real sizes with random
weights (time and memory do not depend on weight values, and the real weights cannot be
had offline): the prior from diffusers' ``scripts/convert_shap_e_to_diffusers.py`` config
(16 heads x 64, 24 layers, 1024 latents of 1024, time embedding 4096, text projection
768 -> 2048, gelu, layer norm in), CLIP ViT-L/14's text encoder, the default
``ShapERenderer`` (d_latent 1024, 6 hidden layers of 256) with the computed marching-cubes
tables. It measures seconds per denoising step (the difference between two step counts,
so the text encoder and set-up cancel out), peak memory (RSS on the CPU, allocated memory
on CUDA) and one decode per ``--grids`` size. Minutes on a CPU: off by default.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

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


def build_production_size_pipeline(seed: int = 0):
    """A random-weight ``ShapEPipeline`` with ``openai/shap-e``'s component sizes (float32, CPU)."""
    import torch
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from text3d.generation.clip_tokenizer import CLIP_VOCAB_SIZE, build_clip_tokenizer
    from text3d.generation.marching_cubes import marching_cubes_tables

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(  # openai/clip-vit-large-patch14's text tower
            vocab_size=CLIP_VOCAB_SIZE, hidden_size=768, intermediate_size=3072, projection_dim=768,
            num_attention_heads=12, num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
        ))
        prior = PriorTransformer(  # PRIOR_CONFIG of diffusers' convert_shap_e_to_diffusers.py
            num_attention_heads=16, attention_head_dim=1024 // 16, num_layers=24, embedding_dim=1024,
            num_embeddings=1024, additional_embeddings=0, time_embed_act_fn="gelu", norm_in_type="layer",
            encoder_hid_proj_type=None, added_emb_type=None, time_embed_dim=1024 * 4, embedding_proj_dim=768,
            clip_embed_dim=1024 * 2,
        )
        renderer = ShapERenderer()  # diffusers' defaults are the checkpoint's sizes
    cases, masks = marching_cubes_tables()
    renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases.copy()))
    renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks.copy()))
    scheduler = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample",
                                      use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
    return ShapEPipeline(prior=prior, text_encoder=text_encoder, tokenizer=build_clip_tokenizer(),
                         scheduler=scheduler, shap_e_renderer=renderer)


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def production_size(args: argparse.Namespace) -> dict:
    """Seconds per prior step, peak memory and decode time of the production-size pipeline."""
    import torch

    from text3d.generation import GenerationConfig, ShapEGenerator
    from text3d.generation.shap_e import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    rss_before = _rss_peak_mb()
    started = time.perf_counter()
    pipeline = build_production_size_pipeline().to(device=device, dtype=dtype)
    build_s = time.perf_counter() - started
    params = {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
              for name in ("prior", "text_encoder", "shap_e_renderer")}
    weight_mb = {name: round(n * torch.finfo(dtype).bits / 8 / 2**20, 1) for name, n in params.items()}
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    low, high = args.production_steps
    config = GenerationConfig(model="production-size", device=str(device), max_batch_size=args.batch, show_progress=False)
    timings: dict[str, float] = {}
    latent = None
    captured: dict[str, Any] = {}

    def capture(module, args, kwargs):  # the prior's real inputs, for counting its FLOPs below
        captured.setdefault("call", (args, kwargs))

    for steps in (low, high):
        generator = ShapEGenerator(pipeline, config.model_copy(update={"num_inference_steps": steps}), device)
        if steps == low:
            hook = pipeline.prior.register_forward_pre_hook(capture, with_kwargs=True)
            generator.sample_latents(PROMPTS[:1], [0])  # warm-up
            hook.remove()
            sync()
        mark = time.perf_counter()
        latent = generator.sample_latents(PROMPTS[:1], [0])[0]
        sync()
        timings[str(steps)] = time.perf_counter() - mark
        print(f"production-size prior, {steps} steps, 1 prompt: {timings[str(steps)]:.2f} s", flush=True)
    per_step = (timings[str(high)] - timings[str(low)]) / (high - low)
    from torch.utils.flop_counter import FlopCounterMode

    args_, kwargs_ = captured["call"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        pipeline.prior(*args_, **kwargs_)
    flops_per_evaluation = counter.get_total_flops()  # one prior call: a CFG batch of 2 for one prompt
    batch_s = None
    if args.batch > 1:
        generator = ShapEGenerator(pipeline, config.model_copy(update={"num_inference_steps": low}), device)
        prompts = (PROMPTS * args.batch)[: args.batch]
        mark = time.perf_counter()
        generator.sample_latents(prompts, list(range(len(prompts))))
        sync()
        batch_s = time.perf_counter() - mark
        print(f"production-size prior, {low} steps, batch of {len(prompts)}: {batch_s:.2f} s", flush=True)
    peak_prior_mb = (torch.cuda.max_memory_allocated(device) / 2**20) if cuda else _rss_peak_mb()
    decode: dict[str, dict[str, float]] = {}
    for grid in [int(g) for g in args.grids.split(",")]:
        generator = ShapEGenerator(pipeline, config.model_copy(update={"grid_size": grid}), device)
        mark = time.perf_counter()
        try:
            faces = len(generator.decode_mesh(latent).faces)
        except Exception as exc:  # random weights may give an empty field; the time is still the cost
            faces = f"{type(exc).__name__}"
        sync()
        decode[str(grid)] = {"s_per_mesh": round(time.perf_counter() - mark, 3), "faces": faces}
        print(f"production-size decode grid {grid}: {decode[str(grid)]['s_per_mesh']:.2f} s ({faces} faces)", flush=True)
    peak_mb = (torch.cuda.max_memory_allocated(device) / 2**20) if cuda else _rss_peak_mb()
    return {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "params": params,
        "params_total": sum(params.values()),
        "weights_mb": weight_mb,
        "build_s": round(build_s, 2),
        "prior_s": {k: round(v, 3) for k, v in timings.items()},
        "prior_s_per_step": round(per_step, 3),
        "prior_evaluations_per_step": 2,  # Heun: two prior calls a step (one on the last), each a CFG batch of 2
        "prior_flops_per_evaluation": flops_per_evaluation,
        "prior_tflops_per_mesh_64_steps": round(flops_per_evaluation * (2 * 64 - 1) / 1e12, 1),
        f"prior_s_{low}_steps_batch_{args.batch}": None if batch_s is None else round(batch_s, 3),
        "estimated_s_per_mesh_64_steps": round(64 * per_step, 1),
        "decode": decode,
        "peak_memory_kind": "cuda_max_allocated" if cuda else "process_max_rss",
        "peak_memory_before_mb": round(rss_before, 1),
        "peak_memory_after_prior_mb": round(peak_prior_mb, 1),
        "peak_memory_mb": round(peak_mb, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine inflates the times
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, a hub id or a local folder (default: tiny)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] (default: auto; fp16 on CUDA)")
    parser.add_argument("--steps", default="64,4", help="prior step counts, comma-separated (default: 64,4)")
    parser.add_argument("--grids", default="32,128", help="marching-cubes grid sizes (default: 32,128)")
    parser.add_argument("--batch", type=int, default=4, help="prompts per prior batch (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default: 3)")
    parser.add_argument("--production-size", action="store_true",
                        help="time openai/shap-e's architecture with random weights instead (minutes on a CPU)")
    parser.add_argument("--production-steps", default="2,4", help="two step counts for --production-size (default: 2,4)")
    args = parser.parse_args()
    if args.production_size:
        import torch

        args.production_steps = tuple(int(s) for s in args.production_steps.split(","))[:2]
        figures = production_size(args)
        print(json.dumps({"bench": "generate", "mode": "production-size", "torch": torch.__version__,
                          "torch_cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads(),
                          "machine": platform.machine(), **figures}))
        return 0

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
