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

With ``--gpu-layers`` the server runs with llama-server's ``-ngl``; the binary is the one
``text3d llava`` would use (the CUDA build in ``$TEXT3D_CACHE/llama.cpp/bin-cuda`` when
``build_llama_server.sh`` found a toolkit and a GPU), and the JSON says which build it was.
"""

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.caption import cpu_name, llama_version  # noqa: E402
from text3d.ops.llava import LlamaServer, LlamaServerConfig, build_backend, find_llama_server  # noqa: E402
from text3d.ops.net import free_port  # noqa: E402
from text3d.reward.caption import CaptionerConfig, OpenAICaptioner  # noqa: E402
from text3d.reward.scoring_protocol import PROTOCOL  # noqa: E402
from text3d.common.paths import cache_dir  # noqa: E402
from text3d.reward.tiny_llava import TinyLlavaConfig, default_vocab_path, plan_nbytes, tensor_plan  # noqa: E402


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=2, help="measured views (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=PROTOCOL.caption.max_tokens)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--model-dir", type=Path, default=None, help="a model.gguf + mmproj.gguf pair (default: the 7B shape)")
    parser.add_argument("--deadline-utc", default=None, help="HH:MM: skip a view that would end after this")
    parser.add_argument("--gpu-layers", default=None, metavar="N|all|auto",
                        help="llama-server -ngl: layers offloaded to the GPU (a CUDA build); default: the server's")
    args = parser.parse_args()

    px, n_asset_views = PROTOCOL.rig.resolution_px, PROTOCOL.rig.n_views
    binary = find_llama_server()
    if args.model_dir:
        model, mmproj = args.model_dir / "model.gguf", args.model_dir / "mmproj.gguf"
        shape = f"pair in {args.model_dir}"
        cache, write_s = args.model_dir, None
    else:
        from text3d.reward.tiny_llava import ensure_llava_7b_shape

        cache = cache_dir() / "models" / "llava-7b-shape"
        plan = tensor_plan(TinyLlavaConfig.llava_7b_shape())
        present = (cache / "model.gguf").is_file() and (cache / "mmproj.gguf").is_file()
        if not present:
            print(f"writing the LLaVA-1.5-7B-shaped pair into {cache} "
                  f"({(plan_nbytes(plan['model']) + plan_nbytes(plan['mmproj'])) / 1e9:.1f} GB)...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        model, mmproj = ensure_llava_7b_shape(cache, default_vocab_path())
        write_s = None if present else round(time.perf_counter() - t0, 1)
        shape = "llava-1.5-7b shape (random, F16): llama 4096x32, 32 heads, ff 11008; clip ViT-L/14-336 x23 + mlp 1024->4096->4096"
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
        print(f"loaded in {load_s:.1f} s (RSS {rss_after_load / 2**30:.1f} GiB)", file=sys.stderr, flush=True)
        client_cfg = CaptionerConfig(base_url=server.base_url, concurrency=1, max_tokens=args.max_tokens,
                                     timeout_s=3600, retries=0)
        measured, warmups = [], []
        with OpenAICaptioner(client_cfg) as client:
            for i in range(args.warmup + args.views):
                last = (measured or warmups or [{}])[-1].get("s")
                if deadline and last and time.time() + last > deadline:
                    print(f"stopping: a view takes ~{last:.0f} s and would end after {args.deadline_utc} UTC", file=sys.stderr)
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
                print(f"{'warm-up' if i < args.warmup else 'view'} {i}: {row}", file=sys.stderr, flush=True)
        stop.set()
        rss_peak = proc_status(server.pid, "VmHWM")
        log_tail = server.log_tail(40)

    rows = measured or warmups  # if only the warm-up fit, report it (and say so)
    per_view = statistics.median(r["s"] for r in rows) if rows else None
    summary = {
        "bench": "caption_7b",
        "model": shape,
        "model_bytes_on_disk": du_bytes(cache),
        "write_s": write_s,
        "protocol": {"max_tokens": args.max_tokens, "resolution_px": px, "views_per_asset": n_asset_views},
        "server": {"threads": args.threads, "slots": 1, "context": args.context, "mmap": True,
                   "build": build_backend(binary), "gpu_layers": args.gpu_layers},
        "load_s": round(load_s, 1),
        "warmup": warmups,
        "views": measured,
        "n_measured": len(measured),
        "s_per_view_median": round(per_view, 2) if per_view else None,
        "s_per_view_from": "measured views" if measured else ("warm-up only" if warmups else "nothing"),
        "tokens_per_view": [r["tokens"] for r in warmups + measured],
        "reached_max_tokens": all(r["tokens"] == args.max_tokens for r in warmups + measured) if rows else None,
        "s_per_asset": round(per_view * n_asset_views, 1) if per_view else None,
        "server_peak_rss_bytes": rss_peak,
        "server_peak_rss_sampled_bytes": rss_peak_sampled[0],
        "server_rss_after_load_bytes": rss_after_load,
        "device": f"cpu: {cpu_name()} x{os.cpu_count()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "llama_server": llama_version(binary),
        "finished_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if not rows:
        print(log_tail, file=sys.stderr)
    print(f"cache {cache}: {summary['model_bytes_on_disk'] / 1e9:.2f} GB on disk (kept)", file=sys.stderr)
    print(json.dumps(summary))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
