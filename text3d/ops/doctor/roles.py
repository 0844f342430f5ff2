"""Checks of a machine and a neuron's settings before it runs: one ``Check`` per question.

Each check returns a ``Check`` (``pass``, ``warn`` or ``fail``, one sentence, saying
what fixes a failure) and never raises: a check that crashes is a ``fail`` line naming
the exception. ``text3d doctor`` (``text3d/cli/doctor.py``) prints them and exits 1
when any failed. Nothing here contacts anything but the chain and the peers the settings
name (the tests use the devnet and loopback servers only).

    machine     python, torch, cuda (driver vs build), gpu (memory vs min_compute.yml),
                renderer (GL_RENDERER of the project's moderngl/EGL renderer), disk
    models      each model of the role in the Hugging Face cache, its size, how to get it
    network     captioner (GET /health, then a caption of a rendered canary; none fails on
                finney and test), wallet and registration (through ``open_chain``), axon port,
                external IP, clock skew
    captioner   whether the captioner offloads to a GPU (vLLM, the local llama-server's build and
                -ngl, or the canary caption's time)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from text3d.ops.doctor.machine import (
    REPO_ROOT,
    Check,
    Status,
    check_cuda,
    check_disk,
    check_gpu,
    check_models,
    check_python,
    check_renderer,
    check_torch,
    guard,
    min_vram_gb,
    probe_renderer,
)
from text3d.ops.doctor.network import (
    caption_is_sensible,
    check_captioner,
    check_clock,
    check_external_ip,
    check_port,
    check_wallet,
    peer_urls,
)

__all__ = ["Check", "Status", "run_checks", "min_vram_gb", "caption_is_sensible", "check_captioner", "check_clock",
           "check_port", "check_wallet", "REPO_ROOT"]


# -- all together --------------------------------------------------------------------------------


def run_checks(role: str | None, settings: Any, *, models: str = "real", peers: Iterable[str] = (),
               emit: Callable[[Check], None] = lambda check: None) -> list[Check]:
    """Every check for ``role`` (None: the machine only), each passed to ``emit`` as it finishes."""
    results: list[Check] = []

    def add(name: str, check: Callable[[], Check | list[Check]]) -> None:
        for result in guard(name, check):
            results.append(result)
            emit(result)

    gpu_needed = role is not None and models == "real"
    add("python", check_python)
    add("torch", check_torch)
    add("cuda", lambda: check_cuda(gpu_needed))
    add("gpu", lambda: check_gpu(role, gpu_needed))
    canary = None
    with tempfile.TemporaryDirectory(prefix="text3d-doctor-") as scratch:
        if role in (None, "validator"):
            image = Path(scratch) / "canary.png"

            def renderer() -> Check:
                import torch

                gl, why = probe_renderer(image)
                return check_renderer(gl, why, torch.cuda.is_available())

            add("renderer", renderer)
            canary = image if image.is_file() else None
        add("model", lambda: check_models(role, models))
        metagraph = None
        if role is not None:
            def wallet() -> list[Check]:
                nonlocal metagraph
                checks, metagraph = check_wallet(settings, role)
                return checks

            add("wallet", wallet)
        if role == "miner":
            add("port", lambda: check_port(settings))
            add("external ip", lambda: check_external_ip(settings))
        if role == "validator":
            timing: dict[str, float] = {}
            add("captioner", lambda: check_captioner(settings, canary, timing))
            if settings.captioner.enabled:
                from text3d.ops.doctor.captioner import check_captioner_offload

                add("offload", lambda: check_captioner_offload(settings, timing.get("caption_s")))
    if settings is not None:
        data = settings.data_dir()
        add("disk", lambda: check_disk("data folder", data, 100.0))
        if role == "validator":
            reports = settings.validator.reports_dir or data / "reports"
            add("disk", lambda: check_disk("reports", reports, settings.validator.reports_max_mb + 100.0))
    add("clock", lambda: check_clock(peer_urls(settings, metagraph if role else None, peers, role)))
    return results
