"""The optional caption measurement's steps: the background jobs at the start, the caption part at the end.

Stdlib only; functions of the orchestrator's ``Run``. ``start`` unpacks the carried llama.cpp
source (its LLaMA vocabulary is what the gguf writer needs), starts writing the gguf pair and, on
a GPU machine without a ``llama-server``, the CUDA build (every core, nice 19, for the GPU's own
architecture, flash-attention kernels only with ``--llava-fa``). ``finish`` waits for both as long
as the budget allows, then times captions on the built server; a build or write that does not
finish in time is stopped and reported with its progress.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.gpu.budget import PartSpec, plan_timeout
from bench.gpu.jobs import Job, build_progress
from bench.gpu.llama_source import build_commands, cuda_toolchain, extract

if TYPE_CHECKING:
    from bench.gpu.orchestrate import Run

__all__ = ["start", "finish"]


def start(run: "Run") -> None:
    """Unpack the source (the vocabulary is in it), start the gguf write and, on a GPU, the build."""
    tarball = next((run.bundle_root / f["path"] for f in run.bundle.files("llama_source")), None)
    if tarball is None:
        run.skip("llava", "this bundle carries no llama.cpp source (built with --no-llama)")
        return
    source = extract(tarball, run.work / "llama-src")
    run.llama_server = run.args.llama_server or _existing_server(run)
    if run.llama_server is None and not run.smoke:
        chain = cuda_toolchain(run.work)
        run.info["cuda_toolchain"] = {"nvcc": chain.nvcc, "arch": chain.cuda_arch, "notes": chain.notes}
        build_env = dict(os.environ)  # cmake and ninja may come with the interpreter's packages
        build_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), build_env.get("PATH", "")])
        if not chain.usable or not shutil.which("cmake", path=build_env["PATH"]):
            run.skip("llava", "no CUDA build possible: " + "; ".join(chain.notes or ["cmake is missing"]))
            return
        run.runtime_dirs = chain.runtime_dirs
        build = run.work / "llama-build"
        commands = build_commands(source, build, jobs=os.cpu_count() or 4, cuda=chain,
                                  flash_attention=run.args.llava_fa,
                                  ninja=shutil.which("ninja", path=build_env["PATH"]) is not None)
        script = " && ".join(" ".join(shlex.quote(a) for a in argv) for argv in commands)
        run.background["llama-build"] = Job("llama-build", ["sh", "-c", script], env=build_env, cwd=run.work,
                                            log=run.work / "logs" / "llama-build.log", nice=19).start()
        run.built_server = build / "bin" / "llama-server"
        run.say(f"llama-build: started (CUDA arch {chain.cuda_arch}, {os.cpu_count()} jobs, nice 19, "
                f"flash attention {'on' if run.args.llava_fa else 'off'})")
    elif run.llama_server is None:
        run.skip("llava", "no llama-server binary (smoke builds none: pass --llama-server or set LLAMA_SERVER)")
        return
    job_file = run.work / "jobs" / "llava_write.json"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    run.write_out = run.work / "jobs" / "llava_write.out.json"
    job_file.write_text(json.dumps({"profile": run.profile.to_json(), "work": str(run.work),
                                    "out": str(run.write_out)}))
    run.background["gguf-write"] = Job(
        "gguf-write", [sys.executable, "-P", "-m", "bench.gpu.worker", "llava_write", "--job", str(job_file)],
        env=run.env, cwd=run.work, log=run.work / "logs" / "llava_write.log", nice=10).start()
    run.say("gguf-write: started")

def _existing_server(run: "Run") -> Path | None:
    env = os.environ.get("LLAMA_SERVER")
    if env and os.access(env, os.X_OK):
        return Path(env)
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    if run.smoke:  # the project's cached CPU build (scripts/build_llama_server.sh)
        cache = Path(os.environ.get("TEXT3D_CACHE") or Path.home() / ".cache" / "text3d")
        cached = cache / "llama.cpp" / "bin" / "llama-server"
        if os.access(cached, os.X_OK):
            return cached
    return None


def finish(run: "Run") -> None:
    """Wait for the background jobs within the budget, then time captions on the server."""
    timeout_s, minimum_s = run.times["llava_caption"]
    waiting = [j for j in run.background.values() if j.running]
    if waiting:
        run.say(f"llava: waiting for {', '.join(j.name for j in waiting)} "
                f"(up to {max(0.0, run.remaining() - minimum_s):.0f} s)")
    while any(j.running for j in run.background.values()) and run.remaining() > minimum_s:
        run.tick()
        time.sleep(0.5)
    run.tick()
    build = run.background.get("llama-build")
    if build is not None:
        progress = build_progress(build.log)
        run.info["llama_build"] = {"seconds": round(build.seconds or 0, 1), "exit": build.poll(),
                                   "progress": progress}
        if build.running:
            build.stop()
            run.skip("llava", f"the CUDA build of llama-server did not finish within the budget "
                              f"({build.seconds:.0f} s, at step {progress}); rerun with a larger --budget-s")
            return
        if build.poll() != 0 or not run.built_server.is_file():
            run.skip("llava", f"the CUDA build of llama-server failed: {build.tail(12)}")
            return
        run.figures["llava.build_s"] = {"value": round(build.seconds, 1), "unit": "s", "basis": "measured",
                                        "note": f"CUDA build of llama-server on {os.cpu_count()} cores (nice 19, "
                                                "beside the torch parts)"}
        run.llama_server = run.built_server
    write = run.background["gguf-write"]
    if write.running:
        write.stop()
        run.skip("llava", f"the gguf write did not finish within the budget ({write.seconds:.0f} s)")
        return
    result = json.loads(run.write_out.read_text()) if run.write_out.is_file() else {}
    if write.poll() != 0 or "error" in result:
        run.skip("llava", f"writing the gguf pair failed: {result.get('error') or write.tail(8)}")
        return
    run.figures.update(result.get("figures", {}))
    run.parts["llava_write"] = {"required": False, "status": "ok", "seconds": result.get("seconds"),
                                "info": result.get("info", {})}
    timeout = plan_timeout(PartSpec("llava_caption", timeout_s, minimum_s), run.remaining(), 0.0)
    if timeout is None:
        run.skip("llava_caption", f"the budget has {run.remaining():.0f} s left, {minimum_s} s needed")
        return
    env = run.env
    if getattr(run, "runtime_dirs", None):
        env = {**env, "LD_LIBRARY_PATH": ":".join(run.runtime_dirs + [env.get("LD_LIBRARY_PATH", "")]).strip(":")}
    saved, run.env = run.env, env
    try:
        built_fa = run.args.llava_fa if "llama-build" in run.background else None  # None: not ours, auto
        run.run_part("llava_caption", timeout, {"llama_server": str(run.llama_server),
                                                "flash_attention": built_fa})
    finally:
        run.env = saved
    caption = run.figures.get("llava.caption_s_per_asset")
    validation = run.figures.get("validation.s_per_asset")
    if caption and validation:
        run.figures["validation.with_captions_s_per_asset"] = {
            "value": round(caption["value"] + validation["value"], 4), "unit": "s",
            "basis": "software" if "software" in (caption["basis"], validation["basis"]) else "derived",
            "from": ["validation.s_per_asset", "llava.caption_s_per_asset"],
            "note": "no-caption validation + a caption per view, one after another (one slot); the goal is 1 s"}
