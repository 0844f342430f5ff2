"""What captions cost: a LLaVA-1.5-7B-shaped model on ``llama-server``, one view at a time at the protocol's length.

Two steps, run as separate workers so the writing overlaps the llama.cpp build:

* ``write``: the project's gguf writer (``text3d.reward.tiny_llava.write_llava_shape``) writes the
  pair on this machine (14.1 GB in F16 for the 7B shape; never carried). ``fill="tiled"`` keeps
  the writer's code path and layout but repeats one pool of random draws per scale, so the file is
  written at disk speed instead of drawing 7 billion normal values (values do not change the cost).
* ``caption``: ``text3d.ops.llava.LlamaServer`` on that pair with every layer on the GPU (``-ngl 99``),
  one slot, the project's ``OpenAICaptioner`` with ``max_tokens`` = the protocol's caption length.
  Random weights never emit EOS (the writer zeroes those rows), so every caption is exactly that
  long: the real cost of a caption. GPU memory is the server's, read from ``nvidia-smi``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench.gpu.figures import DeviceClock, Figures
from bench.gpu.profile import Profile
from bench.gpu.sizes import caption_max_tokens, reward_config

__all__ = ["write", "caption", "model_dir", "vocab_path"]


def model_dir(work: Path) -> Path:
    return work / "llava"


def vocab_path(work: Path) -> Path:
    """The LLaMA vocabulary from the carried llama.cpp source (unpacked by the orchestrator)."""
    return work / "llama-src" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"


def write(profile: Profile, work: Path) -> Figures:
    from text3d.reward.tiny_llava import TinyLlavaConfig, plan_nbytes, tensor_plan, write_llava_shape

    figures = Figures()
    config = TinyLlavaConfig.llava_7b_shape() if profile.llava_shape == "7b" else TinyLlavaConfig()
    out = model_dir(work)
    plan = tensor_plan(config)
    started = time.perf_counter()
    model, mmproj = write_llava_shape(out, vocab_path(work), config, fill="tiled")
    seconds = time.perf_counter() - started
    size = model.stat().st_size + mmproj.stat().st_size
    figures.measured("llava.gguf_write_s", seconds, "s", note=f"{size / 1e9:.2f} GB written (tiled random fill)")
    figures.measured("llava.gguf_bytes", size, "bytes")
    figures.derived("llava.gguf_write_gb_per_s", size / 1e9 / seconds, "GB/s", ["llava.gguf_write_s"],
                    "bytes / seconds")
    figures.info.update({"shape": profile.llava_shape, "tensor_bytes": plan_nbytes(plan["model"]) +
                         plan_nbytes(plan["mmproj"]), "model": str(model), "mmproj": str(mmproj)})
    return figures


def _gpu_memory_used_mib() -> float | None:
    """Memory in use on GPU 0 by everything (nvidia-smi), or None without nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return float(out.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _metric(client, base_url: str, name: str) -> float:
    for line in client.get(base_url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(f"{name} not in the server's /metrics")


def caption(profile: Profile, work: Path, binary: Path, flash_attention: bool | None = None) -> Figures:
    import httpx

    from bench.gpu.parts.clip import noise_views
    from text3d.ops.llava import LlamaServer, LlamaServerConfig
    from text3d.ops.net import free_port
    from text3d.reward.caption import CaptionerConfig, OpenAICaptioner

    figures = Figures()
    model, mmproj = model_dir(work) / "model.gguf", model_dir(work) / "mmproj.gguf"
    max_tokens = caption_max_tokens(profile)
    px = reward_config(profile).resolution_px
    gpu = profile.device == "cuda"
    extra = ("--metrics", "-ngl", "99") if gpu else ("--metrics",)
    if flash_attention is False:  # built without the kernels: say so, rather than let "auto" probe for them
        extra += ("-fa", "off")
    config = LlamaServerConfig(binary=binary, model_path=model, mmproj_path=mmproj, port=free_port(), slots=1,
                               context_tokens=4096, threads=None if gpu else 2, extra_args=extra)
    baseline_mib = _gpu_memory_used_mib()
    log_path = work / "logs" / "llama-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with LlamaServer(config, log_path=log_path) as server:
        server.wait_until_ready(600)
        figures.measured("llava.load_s", time.perf_counter() - started, "s",
                         note="start to /health 200" + (": the weights onto the GPU" if gpu else " (CPU build)"))
        loaded_mib = _gpu_memory_used_mib()
        views = noise_views(profile.caption_views + 1, px, seed=7)
        client_config = CaptionerConfig(base_url=server.base_url, concurrency=1, max_tokens=max_tokens,
                                        timeout_s=600, retries=0)
        clock = DeviceClock("cpu")  # the server is another process: a caption is done when its answer is
        tokens: list[int] = []
        with OpenAICaptioner(client_config) as captioner, httpx.Client(timeout=10, trust_env=False) as http:
            images = iter(views)

            def one() -> None:
                before = _metric(http, server.base_url, "llamacpp:tokens_predicted_total")
                captioner.caption([next(images)], "bench")
                tokens.append(int(_metric(http, server.base_url, "llamacpp:tokens_predicted_total") - before))

            timings = clock.run(one, profile.caption_views, warmup=1)
        peak_mib = _gpu_memory_used_mib()
        log_tail = server.log_tail(60)
    length = " (the protocol's caption length)" if profile.caption_max_tokens is None else ""
    figures.timed("llava.caption_s_per_view", timings, note=f"one {px} px view, {max_tokens} tokens{length}, one slot")
    figures.measured("llava.tokens_per_view", int(statistics.median(tokens[1:] or tokens)), "tokens")
    n_views = reward_config(profile).n_views
    figures.derived("llava.caption_s_per_asset", figures.value("llava.caption_s_per_view") * n_views, "s",
                    ["llava.caption_s_per_view"], f"x {n_views} views, one after another on one slot")
    if baseline_mib is not None and peak_mib is not None:
        figures.measured("llava.server_gpu_mib", max(peak_mib, loaded_mib or 0) - baseline_mib, "MiB",
                         note="nvidia-smi memory.used while serving minus before start")
    figures.info.update({"binary": str(binary), "args": config.argv()[1:], "tokens": tokens,
                         "offload": "-ngl 99" if gpu else "cpu",
                         "flash_attention": {None: "auto", False: "off (not built)", True: "on"}[flash_attention],
                         "server_log_tail": log_tail.splitlines()[-12:]})
    return figures
