"""Captioning cost at the production protocol with a LLaVA-1.5-7B-shaped model (random weights).

Time and memory do not depend on weight values, so the project's gguf writer
(``text3d.reward.tiny_llava.ensure_llava_7b_shape``: llama 4096 wide x 32 blocks, CLIP ViT-L/14-336
mmproj with the mlp projector, F16) gives the real cost of a caption. Its output rows of
EOS/control tokens are zero, so every caption runs to ``max_tokens`` -- the protocol's cap.

Steps: write the pair once into ``$TEXT3D_CACHE/models/llava-7b-shape/`` (14.1 GB; skipped
when present, never deleted: ``rm -r`` that folder to reclaim it), start ``llama-server``
on it (CPU, ``-t 2 -np 1 -c 4096 --metrics``), caption one warm-up view and then
``--views`` distinct views at the protocol's resolution (512 px; the server resizes to
336) through the project's ``OpenAICaptioner`` with ``max_tokens`` = the protocol's (64).
Per view: wall seconds, tokens generated (``/metrics`` tokens_predicted_total), and the
server's own split (image encode, prompt eval, generation) from its log. Reports load
time, the server's peak RSS (VmHWM) and the per-asset cost (``rig.n_views`` views).
With ``--deadline-utc HH:MM`` it stops before a view that would end past that time and
says how many were measured. Ends with ONE JSON line.

    python bench/caption_7b.py [--views 2] [--warmup 1] [--threads 2] [--deadline-utc 09:40]
    python bench/caption_7b.py --model-dir DIR      # any model.gguf + mmproj.gguf pair
    python bench/caption_7b.py --gpu-layers all     # on a GPU: the CUDA build of llama-server, every layer offloaded
    python bench/caption_7b.py --smoke              # the same path with the tiny pair, in seconds

With ``--gpu-layers`` the server runs with llama-server's ``-ngl``; the binary is the one
``text3d llava`` would use (the CUDA build in ``$TEXT3D_CACHE/llama.cpp/bin-cuda`` when
``build_llama_server.sh`` found a toolkit and a GPU), and the JSON says which build it was.

Heavy (a 14 GB file and about 18 GB of memory): ``make bench`` runs it only with
``BENCH_HEAVY=1`` (or when named: ``make bench BENCHES=caption_7b``).
"""

import argparse
import datetime as dt
import os
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench._harness import Bench, duration, median, run  # noqa: E402
from bench.caption import llama_version  # noqa: E402
from text3d.common.paths import cache_dir  # noqa: E402
from text3d.ops.llava import LlamaServer, LlamaServerConfig, build_backend, find_llama_server  # noqa: E402
from text3d.ops.net import free_port  # noqa: E402
from text3d.reward.caption import CaptionerConfig, OpenAICaptioner  # noqa: E402
from text3d.reward.scoring_protocol import PROTOCOL  # noqa: E402
from text3d.reward.tiny_llava import TinyLlavaConfig, default_vocab_path, plan_nbytes, tensor_plan  # noqa: E402

SMOKE = {"model": "tiny", "views": 1, "max_tokens": 4, "context": 1024}
SUITE_HEAVY = True  # 14 GB on disk, ~18 GB of memory, minutes per view on a CPU
PACKAGES = ("httpx", "numpy", "pillow", "gguf")


def view(seed: int, px: int) -> Image.Image:
    """A distinct view-sized image (content does not change the cost: always 576 image tokens)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:px, 0:px]
    base = np.stack([(xx * 255 // px), (yy * 255 // px), np.full_like(xx, 128)], -1)
    noise = rng.integers(-40, 40, (px, px, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def du_bytes(folder: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())


def proc_status(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` memory field in bytes (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def metric(base_url: str, name: str) -> float:
    import httpx

    text = httpx.get(base_url + "/metrics", timeout=10, trust_env=False).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(f"{name} not in /metrics")


_TIMINGS = {
    "image_encode_ms": re.compile(r"image slice encoded in (\d+) ms"),
    "image_decode_ms": re.compile(r"image decoded \(batch \d+/\d+\) in (\d+) ms"),
    # prompt eval covers the view's image chunk (CLIP encode + 576 image tokens) and the text
    "prompt_eval": re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens"),
    "eval": re.compile(r"\|\s+eval time =\s*([\d.]+) ms /\s*(\d+) tokens"),
}


def server_split(log_text: str) -> dict:
    """The server's timings of the last request in a log chunk."""
    out: dict = {}
    for key, pattern in _TIMINGS.items():
        found = pattern.findall(log_text)
        if not found:
            continue
        last = found[-1]
        if isinstance(last, tuple):
            out[f"{key}_ms"], out[f"{key}_tokens"] = round(float(last[0])), int(last[1])
        else:
            out[key] = int(last)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=("7b-shape", "tiny"), default="7b-shape",
                        help="7b-shape: LLaVA-1.5-7B's shape, random weights (default); tiny: the test pair")
    parser.add_argument("--views", type=int, default=2, help="measured views (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=PROTOCOL.caption.max_tokens)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--model-dir", type=Path, default=None, help="a model.gguf + mmproj.gguf pair (instead of --model)")
    parser.add_argument("--deadline-utc", default=None, help="HH:MM: skip a view that would end after this")
    parser.add_argument("--gpu-layers", default=None, metavar="N|all|auto",
                        help="llama-server -ngl: layers offloaded to the GPU (a CUDA build); default: the server's")


def model_pair(bench: Bench, args: argparse.Namespace, binary: Path) -> tuple[Path, Path, str, Path, float | None]:
    """(model, mmproj, what it is, its folder, seconds spent writing it or None)."""
    if args.model_dir:
        return args.model_dir / "model.gguf", args.model_dir / "mmproj.gguf", f"pair in {args.model_dir}", args.model_dir, None
    if args.model == "tiny":
        from text3d.ops.llava import tiny_llava_models

        model, mmproj = tiny_llava_models(binary)
        return model, mmproj, "tiny-llava (random, llama 64-wide x2, clip 56px mlp)", model.parent, None
    from text3d.reward.tiny_llava import ensure_llava_7b_shape

    cache = cache_dir() / "models" / "llava-7b-shape"
    plan = tensor_plan(TinyLlavaConfig.llava_7b_shape())
    present = (cache / "model.gguf").is_file() and (cache / "mmproj.gguf").is_file()
    if not present:
        bench.log(f"writing the LLaVA-1.5-7B-shaped pair into {cache} "
                  f"({(plan_nbytes(plan['model']) + plan_nbytes(plan['mmproj'])) / 1e9:.1f} GB)...")
    t0 = time.perf_counter()
    model, mmproj = ensure_llava_7b_shape(cache, default_vocab_path())
    shape = ("llava-1.5-7b shape (random, F16): llama 4096x32, 32 heads, ff 11008; "
             "clip ViT-L/14-336 x23 + mlp 1024->4096->4096")
    return model, mmproj, shape, cache, None if present else round(time.perf_counter() - t0, 1)


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    px, n_asset_views = PROTOCOL.rig.resolution_px, PROTOCOL.rig.n_views
    binary = find_llama_server()
    model, mmproj, shape, cache, write_s = model_pair(bench, args, binary)
    deadline = None
    if args.deadline_utc:
        hh, mm = map(int, args.deadline_utc.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()

    log_path = Path(f"/tmp/caption_7b-{os.getpid()}.log")
    config = LlamaServerConfig(binary=binary, model_path=model, mmproj_path=mmproj, port=free_port(), slots=1,
                               context_tokens=args.context, threads=args.threads, gpu_layers=args.gpu_layers,
                               extra_args=("--metrics",))
    rss_peak_sampled = [0]
    started = time.perf_counter()
    with LlamaServer(config, log_path=log_path) as server:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss_peak_sampled[0] = max(rss_peak_sampled[0], proc_status(server.pid, "VmRSS"))
                stop.wait(0.5)

        threading.Thread(target=sample, daemon=True).start()
        server.wait_until_ready(1800)
        load_s = time.perf_counter() - started
        rss_after_load = proc_status(server.pid, "VmRSS")
        bench.log(f"loaded in {load_s:.1f} s (RSS {rss_after_load / 2**30:.1f} GiB)")
        client_cfg = CaptionerConfig(base_url=server.base_url, concurrency=1, max_tokens=args.max_tokens,
                                     timeout_s=3600, retries=0)
        measured, warmups = [], []
        with OpenAICaptioner(client_cfg) as client:
            for i in range(args.warmup + args.views):
                last = (measured or warmups or [{}])[-1].get("s")
                if deadline and last and time.time() + last > deadline:
                    bench.log(f"stopping: a view takes ~{last:.0f} s and would end after {args.deadline_utc} UTC")
                    break
                log_at = log_path.stat().st_size
                before = metric(server.base_url, "llamacpp:tokens_predicted_total")
                t0 = time.perf_counter()
                (caption,) = client.caption([view(i, px)], "bench")
                seconds = time.perf_counter() - t0
                tokens = int(metric(server.base_url, "llamacpp:tokens_predicted_total") - before)
                time.sleep(0.2)  # the log's timing lines follow the response
                with open(log_path, "rb") as fh:
                    fh.seek(log_at)
                    split = server_split(fh.read().decode(errors="replace"))
                row = {"s": round(seconds, 2), "tokens": tokens, **split, "caption_chars": len(caption)}
                (warmups if i < args.warmup else measured).append(row)
                bench.log(f"{'warm-up' if i < args.warmup else 'view'} {i}: {row}")
        stop.set()
        rss_peak = proc_status(server.pid, "VmHWM")
        log_tail = server.log_tail(40)

    if not measured:
        bench.log(log_tail)
    bench.check(measured, "no view was measured after the warm-up (see the server log above, or --deadline-utc)")
    bench.check(all(r["tokens"] > 0 for r in warmups + measured), "a caption generated no tokens")
    if args.model == "7b-shape" and not args.model_dir:  # random weights never emit EOS: the protocol's full length
        bench.check(all(r["tokens"] == args.max_tokens for r in warmups + measured),
                    f"captions stopped before max_tokens = {args.max_tokens}: the cost would be understated")
    per_view = median([r["s"] for r in measured])
    split = {key: median([r[key] for r in measured]) / 1000 for key in ("prompt_eval_ms", "eval_ms")
             if all(key in r for r in measured)}
    tokens = median([r["tokens"] for r in measured])
    rows = []
    if "prompt_eval_ms" in split:
        rows.append(["CLIP encode + prompt eval", duration(split["prompt_eval_ms"]),
                     duration(split["prompt_eval_ms"] * n_asset_views)])
    if "eval_ms" in split:
        rows.append([f"generation, {tokens:.0f} tokens", duration(split["eval_ms"]), duration(split["eval_ms"] * n_asset_views)])
    rows.append(["caption, wall", duration(per_view), duration(per_view * n_asset_views)])
    gpu = f", -ngl {args.gpu_layers}, {build_backend(binary)} build" if args.gpu_layers else ""
    bench.table(f"Captioning cost, {shape} (llama-server -t {args.threads} -np 1 -c {args.context}{gpu}; "
                f"median of {len(measured)} views after {len(warmups)} warm-up)",
                ["stage", "per view", f"per asset ({n_asset_views} views)"], rows,
                note=f"Server load {duration(load_s)}, peak RSS {rss_peak / 2**30:.1f} GiB; the pair takes "
                     f"{du_bytes(cache) / 1e9:.1f} GB on disk in {cache}.")
    return {
        "model": shape, "model_bytes_on_disk": du_bytes(cache), "write_s": write_s,
        "protocol": {"max_tokens": args.max_tokens, "resolution_px": px, "views_per_asset": n_asset_views},
        "server": {"threads": args.threads, "slots": 1, "context": args.context, "mmap": True,
                   "build": build_backend(binary), "gpu_layers": args.gpu_layers},
        "load_s": round(load_s, 1), "warmup": warmups, "views": measured, "n_measured": len(measured),
        "s_per_view_median": round(per_view, 2), "tokens_per_view": [r["tokens"] for r in warmups + measured],
        "s_per_asset": round(per_view * n_asset_views, 1), "server_peak_rss_bytes": rss_peak,
        "server_peak_rss_sampled_bytes": rss_peak_sampled[0], "server_rss_after_load_bytes": rss_after_load,
        "llama_server": llama_version(binary),
    }


if __name__ == "__main__":
    sys.exit(run("caption_7b", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
