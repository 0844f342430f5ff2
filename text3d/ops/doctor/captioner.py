"""``text3d doctor``'s question about the captioner's hardware: does it caption on a GPU?

A validator captions 8 views per asset; a LLaVA-1.5-7B-shaped model costs about 70 s a view on
a 2-core CPU (``bench/caption_7b.py``), so a captioner on a CPU makes every step take many
minutes. The server's own API does not say where its layers live, so the answer comes from
what can be seen, in this order:

1. vLLM (``GET /v1/models`` says ``owned_by: vllm``): a GPU server;
2. a ``llama-server`` listening on this machine at the captioner's port: its binary's build
   (``text3d.ops.llava.build_backend``: cuda or cpu) and its ``-ngl`` option;
3. otherwise, how long the canary's caption took (``check_captioner`` measures it): over
   ``SLOW_CAPTION_S`` is a CPU's pace.

It warns, never fails: a slow captioner costs time, not correctness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from text3d.ops.doctor.machine import Check

__all__ = ["check_captioner_offload", "llama_server_on_port", "SLOW_CAPTION_S"]

SLOW_CAPTION_S = 10.0  # one 336 px view on a GPU: about a second; on a CPU: tens of seconds
_NGL = ("-ngl", "--gpu-layers", "--n-gpu-layers")
_FIX = ("build llama-server for CUDA (text3d/ops/llava/build_llama_server.sh finds nvcc and a GPU) and run "
        "`text3d llava --gpu-layers all`, or serve the captioner with vLLM (docs/captioning.md)")


def llama_server_on_port(port: int) -> tuple[Path, list[str]] | None:
    """``(binary, argv)`` of the process listening on ``port`` on this machine, when it is a llama-server."""
    import psutil

    try:
        listeners = [c for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid]
    except (psutil.Error, OSError):
        return None
    for connection in listeners:
        try:
            argv = psutil.Process(connection.pid).cmdline()
        except psutil.Error:
            continue
        if argv and Path(argv[0]).name.startswith("llama-server"):
            return Path(argv[0]), argv
    return None


def _gpu_layers(argv: list[str]) -> str | None:
    for i, option in enumerate(argv):
        name, _, value = option.partition("=")
        if name in _NGL:
            return value or (argv[i + 1] if i + 1 < len(argv) else None)
    return None


def check_captioner_offload(settings: Any, caption_s: float | None) -> Check:
    """Whether the configured captioner offloads to a GPU (see the module docstring)."""
    import httpx

    from text3d.ops.llava.binary import build_backend

    url = settings.captioner.base_url
    try:
        models = httpx.get(f"{url}/v1/models", timeout=settings.captioner.connect_timeout_s, trust_env=False).json()
        owners = {str(m.get("owned_by", "")) for m in models.get("data", []) if isinstance(m, dict)}
    except (httpx.HTTPError, ValueError, AttributeError):
        owners = set()
    if "vllm" in owners:
        return Check("offload", "pass", f"{url} is vLLM: it captions on its GPU(s)")
    parsed = urlparse(url)
    timing = f"; the canary's caption took {caption_s:.1f} s" if caption_s is not None else ""
    if parsed.hostname in ("127.0.0.1", "localhost", "::1") and parsed.port:
        found = llama_server_on_port(parsed.port)
        if found is not None:
            binary, argv = found
            backend, layers = build_backend(binary), _gpu_layers(argv)
            if backend == "cuda" and layers != "0":
                return Check("offload", "pass", f"llama-server at {url} is a CUDA build offloading "
                                                      f"{layers or 'auto'} layers (-ngl){timing}")
            if backend == "cpu":
                return Check("offload", "warn", f"llama-server at {url} is a CPU build ({binary}): about 70 s a "
                                                      f"view for a 7B model{timing}; {_FIX}")
            if backend == "cuda":
                return Check("offload", "warn", f"llama-server at {url} is a CUDA build run with -ngl 0: "
                                                      f"nothing is offloaded{timing}; run it with --gpu-layers all")
    if caption_s is None:
        return Check("offload", "warn", f"could not tell whether {url} captions on a GPU (not on this machine, "
                                              "and no caption was timed)")
    if caption_s > SLOW_CAPTION_S:
        return Check("offload", "warn", f"one caption of the canary took {caption_s:.1f} s at {url}: a CPU's pace "
                                              f"(a GPU takes about a second); {_FIX}")
    return Check("offload", "pass", f"one caption of the canary took {caption_s:.1f} s at {url} (a GPU's pace; "
                                          "where it runs could not be seen)")
