"""One measurement part in its own process: ``python -P -m bench.gpu.worker PART --job JOB.json``.

The orchestrator runs every part this way, with a timeout, so that a part that hangs (a GL
driver), crashes the interpreter (a segfault in native code) or leaks GPU memory cannot take the
other parts with it. The job file holds the profile, the work folder, the output file and, for
the caption part, the ``llama-server`` binary. The worker writes ``{"figures", "info", "machine",
"seconds"}`` to the output file; on an exception it writes ``{"error": ...}`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.gpu.profile import Profile

__all__ = ["PARTS", "main", "machine_info"]

PARTS = ("shap_e", "clip", "render", "defences", "validation", "llava_write", "llava_caption")


def machine_info(device: str) -> dict:
    """Device, driver and versions as torch sees them (the worker's interpreter, after private installs)."""
    info: dict = {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                  "load_avg_1m": round(os.getloadavg()[0], 2)}
    try:
        import torch

        info.update({"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                     "cpu_threads": torch.get_num_threads()})
        if device == "cuda" and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                         "compute_capability": f"{props.major}.{props.minor}",
                         "multiprocessors": props.multi_processor_count})
    except ImportError:
        pass
    import importlib.util

    origins = {}
    for name in ("diffusers", "open_clip", "pydantic", "trimesh", "moderngl", "rapidocr_onnxruntime", "text3d"):
        spec = importlib.util.find_spec(name)
        origins[name] = None if spec is None or spec.origin is None else str(Path(spec.origin).parent.parent)
    info["imported_from"] = origins  # the private site, the bundle's src, or the system's site-packages
    return info


def _peak_rss_mib() -> float:
    """This worker's peak resident memory (the process's own, not the GPU's)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _run(part: str, profile: Profile, work: Path, job: dict):
    if part == "shap_e":
        from bench.gpu.parts import shap_e
        return shap_e.run(profile, work)
    if part == "clip":
        from bench.gpu.parts import clip
        return clip.run(profile, work)
    if part == "render":
        from bench.gpu.parts import render
        return render.run(profile, work)
    if part == "defences":
        from bench.gpu.parts import defences
        return defences.run(profile, work)
    if part == "validation":
        from bench.gpu.parts import validation
        return validation.run(profile, work)
    if part == "llava_write":
        from bench.gpu.parts import llava
        return llava.write(profile, work)
    if part == "llava_caption":
        from bench.gpu.parts import llava
        return llava.caption(profile, work, Path(job["llama_server"]), job.get("flash_attention"))
    raise ValueError(f"unknown part {part!r}; one of {PARTS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--job", type=Path, required=True)
    args = parser.parse_args(argv)
    job = json.loads(args.job.read_text())
    profile = Profile.from_json(job["profile"])
    work, out = Path(job["work"]), Path(job["out"])
    started = time.perf_counter()
    if job.get("timeout_s"):  # count fewer runs rather than be killed: leave a fifth of the time unused
        from bench.gpu.figures import DeviceClock

        DeviceClock.deadline = time.monotonic() + 0.8 * float(job["timeout_s"])
    try:
        figures = _run(args.part, profile, work, job)
        result = {**figures.to_dict(), "machine": machine_info(profile.device),
                  "seconds": round(time.perf_counter() - started, 2), "peak_rss_mib": _peak_rss_mib()}
        code = 0
    except BaseException as exc:  # reported to the orchestrator: the part failed, the others go on
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:],
                  "seconds": round(time.perf_counter() - started, 2)}
        code = 1
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(out)
    print(json.dumps({"part": args.part, "ok": code == 0, "seconds": result["seconds"]}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
