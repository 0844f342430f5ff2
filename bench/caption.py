"""Captions per second through a real ``llama-server`` with 1, 4 and 8 slots (``-np``).

For each slot count: start the tiny LLaVA pair on a free port, warm up, then caption
``--views`` distinct 64 px views per round with ``OpenAICaptioner`` (concurrency = slots)
for ``--rounds`` rounds; report the median captions/s (and p95 latency of a round).
The server is stopped before the next slot count. Ends with ONE JSON line.

    python bench/caption.py [--slots 1 4 8] [--views 16] [--rounds 5] [--max-tokens 16]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from text3d.ops.llava import LlamaServer, LlamaServerConfig, find_llama_server, tiny_llava_models  # noqa: E402
from text3d.ops.net import free_port  # noqa: E402
from text3d.reward.caption import CaptionerConfig, OpenAICaptioner  # noqa: E402


def views(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def llama_version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    lines = [l for l in (done.stdout + done.stderr).splitlines() if l.startswith("version")]
    return lines[0].split(":", 1)[1].strip() if lines else "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_slots(binary: Path, model: Path, mmproj: Path, slots: int, n_views: int, rounds: int,
                max_tokens: int, threads: int | None) -> dict:
    config = LlamaServerConfig(binary=binary, model_path=model, mmproj_path=mmproj, port=free_port(), slots=slots,
                               context_tokens=1024 * slots, threads=threads)
    started = time.perf_counter()
    with LlamaServer(config) as server:
        server.wait_until_ready(120)
        ready_s = time.perf_counter() - started
        client_cfg = CaptionerConfig(base_url=server.base_url, concurrency=slots, max_tokens=max_tokens, timeout_s=120)
        with OpenAICaptioner(client_cfg) as client:
            client.caption(views(slots, seed=999), "warm-up")
            rates, seconds = [], []
            for r in range(rounds):
                batch = views(n_views, seed=r)  # fresh images: no prompt-cache reuse across rounds
                t0 = time.perf_counter()
                captions = client.caption(batch, "bench")
                dt = time.perf_counter() - t0
                assert len(captions) == n_views and all(captions)
                rates.append(n_views / dt)
                seconds.append(dt)
    return {
        "slots": slots,
        "captions_per_s_median": round(statistics.median(rates), 2),
        "round_s_median": round(statistics.median(seconds), 3),
        "round_s_p95": round(float(np.percentile(seconds, 95)), 3),
        "startup_s": round(ready_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    # One thread by default: the tiny model gains nothing from more, and on a busy machine
    # llama.cpp's spinning workers collapse (measured 2.3 vs 70 captions/s at -np 1, load 6 on 2 cores).
    parser.add_argument("--threads", type=int, default=1, help="llama-server -t (0: llama.cpp's default)")
    args = parser.parse_args()

    binary = find_llama_server()
    model, mmproj = tiny_llava_models(binary)
    results = []
    for slots in args.slots:
        result = bench_slots(binary, model, mmproj, slots, args.views, args.rounds, args.max_tokens, args.threads or None)
        print(f"-np {slots}: {result['captions_per_s_median']} captions/s "
              f"(round of {args.views}: median {result['round_s_median']} s, p95 {result['round_s_p95']} s)",
              file=sys.stderr)
        results.append(result)
    import httpx

    summary = {
        "bench": "caption",
        "model": "tiny-llava (random, llama 64-wide x2, clip 56px mlp)",
        "views_per_round": args.views,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "threads": args.threads or "default",
        "device": f"cpu: {cpu_name()} x{os.cpu_count()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "versions": {"llama_server": llama_version(binary), "httpx": httpx.__version__, "python": platform.python_version()},
        "results": results,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
