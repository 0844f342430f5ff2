"""Captioning: captions per second through a real ``llama-server`` with 1, 4 and 8 slots (``-np``).

For each slot count: start the tiny LLaVA pair on a free port, warm up, then caption
``--views`` distinct 64 px views per round with ``OpenAICaptioner`` (concurrency = slots)
for ``--rounds`` rounds; report the median captions/s (and p95 time of a round). Every
caption must come back non-empty. The server is stopped before the next slot count.
The tiny pair has random weights at test sizes: the figures measure the serving path
(HTTP, the server's slots, image encoding) with generation cheap; ``bench/caption_7b.py``
measures a production-shaped model.

    python bench/caption.py [--slots 1 4 8] [--views 16] [--rounds 5] [--max-tokens 16] [--threads 1] [--smoke]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, median, run  # noqa: E402

SMOKE = {"slots": [1, 2], "views": 2, "rounds": 1, "max_tokens": 4}
PACKAGES = ("httpx", "numpy", "pillow")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    # One thread by default: the tiny model gains nothing from more, and on a busy machine
    # llama.cpp's spinning workers collapse (measured 2.3 vs 70 captions/s at -np 1, load 6 on 2 cores).
    parser.add_argument("--threads", type=int, default=1, help="llama-server -t (0: llama.cpp's default)")


def views(n: int, seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def llama_version(binary: Path) -> str:
    """``llama-server --version``'s version line (``unknown`` when it prints none)."""
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("version")]
    return lines[0].split(":", 1)[1].strip() if lines else "unknown"


def bench_slots(bench: Bench, binary: Path, model: Path, mmproj: Path, slots: int, args: argparse.Namespace) -> dict:
    from text3d.ops.llava import LlamaServer, LlamaServerConfig
    from text3d.ops.net import free_port
    from text3d.reward.caption import CaptionerConfig, OpenAICaptioner

    config = LlamaServerConfig(binary=binary, model_path=model, mmproj_path=mmproj, port=free_port(), slots=slots,
                               context_tokens=1024 * slots, threads=args.threads or None)
    started = time.perf_counter()
    with LlamaServer(config) as server:
        server.wait_until_ready(120)
        ready_s = time.perf_counter() - started
        client_cfg = CaptionerConfig(base_url=server.base_url, concurrency=slots, max_tokens=args.max_tokens, timeout_s=120)
        with OpenAICaptioner(client_cfg) as client:
            rounds = iter(range(args.rounds + 1))

            def one_round() -> None:
                r = next(rounds)  # fresh images each round: no prompt-cache reuse across rounds
                captions = client.caption(views(args.views if r else slots, seed=r), "bench")
                bench.check(len(captions) == (args.views if r else slots) and all(c.strip() for c in captions),
                            f"-np {slots}: the server returned {len(captions)} captions, some empty")

            timings = bench.time(one_round, args.rounds, warmup=1)
    rates = [args.views / s for s in timings.wall_s]
    return {"slots": slots, "captions_per_s_median": round(median(rates), 2), "round_s_median": round(timings.median_s, 3),
            "round_s_p95": round(timings.p95_s, 3), "startup_s": round(ready_s, 2)}


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    from text3d.ops.llava import find_llama_server, tiny_llava_models

    binary = find_llama_server()
    model, mmproj = tiny_llava_models(binary)
    results = []
    for slots in args.slots:
        result = bench_slots(bench, binary, model, mmproj, slots, args)
        bench.log(f"-np {slots}: {result['captions_per_s_median']} captions/s (round of {args.views}: median "
                  f"{result['round_s_median']} s, p95 {result['round_s_p95']} s)")
        results.append(result)
    version = llama_version(binary)
    bench.table(f"Captioning, tiny LLaVA on a real llama-server ({args.views} views a round, {args.max_tokens} tokens "
                f"at most, -t {args.threads or 'default'}; median of {args.rounds} rounds)",
                ["slots (-np)", "captions/s", "round (median / p95)", "server start"],
                [[r["slots"], f"{r['captions_per_s_median']:.1f}",
                  f"{duration(r['round_s_median'])} / {duration(r['round_s_p95'])}", duration(r["startup_s"])]
                 for r in results],
                note=f"llama-server {version}; the tiny pair's random weights make each caption cheap, so this is the "
                     "serving path's ceiling, not LLaVA's cost.")
    return {"model": "tiny-llava (random, llama 64-wide x2, clip 56px mlp)", "views_per_round": args.views,
            "rounds": args.rounds, "max_tokens": args.max_tokens, "threads": args.threads or "default",
            "llama_server": version, "results": results}


if __name__ == "__main__":
    sys.exit(run("caption", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
