"""``run.py``: prepare the machine, run every part under one time budget, write the JSON line and the table.

Stdlib only until the workers start (the machine may have none of the carried packages yet).

Order: check the bundle and install what is missing (``bench.gpu.bootstrap``); with ``--llava``,
start the background jobs at once (the CUDA build of ``llama-server`` from the carried source, at
nice 19 on every core, and the 14 GB gguf write); then the required parts one after another, each
in its own worker process with a timeout (``shap_e``, ``clip``, ``render``, ``defences``,
``validation``); then the caption part once the build and the write are done
(``bench.gpu.llava_steps``). A part that would not fit in what is left of ``--budget-s`` (after the
minimum the later required parts need, ``bench.gpu.budget``) is skipped and says so; a part that
fails or times out is reported and the rest go on. Each part's record says which background jobs
ran during it and the load average, because a concurrent build slows CPU-side work (nice 19
leaves it the idle cycles only, but caches and memory are shared).

Exit status: 0 when every required part measured; 1 otherwise, with the reason on the last line.
Argument parsing is argparse, not the project's settings tree: this runs before pydantic exists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.gpu import llava_steps
from bench.gpu.budget import PartSpec, plan_timeout
from bench.gpu.bootstrap import BundleError, load_bundle, prepare, worker_env
from bench.gpu.jobs import Job, run_with_timeout
from bench.gpu.profile import Profile
from bench.gpu.table import render_markdown

__all__ = ["main", "Run", "REQUIRED"]

REQUIRED = ("shap_e", "clip", "render", "defences", "validation")
# (timeout_s, minimum_s) per part: the timeout caps a part; the minimum is what the budget keeps for it
_GPU_TIMES = {"shap_e": (240, 60), "clip": (120, 25), "render": (90, 15), "defences": (150, 25),
              "validation": (200, 45), "llava_caption": (240, 60)}
_SMOKE_TIMES = {"shap_e": (300, 10), "clip": (300, 10), "render": (300, 10), "defences": (300, 10),
                "validation": (300, 10), "llava_caption": (300, 10)}


def _utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Measure what a text3d miner and validator cost on "
                                     "this machine's GPU (offline; see docs/gpu-bundle.md).")
    parser.add_argument("--results", type=Path, help="folder for gpu_bench.json and gpu_bench.md")
    parser.add_argument("--smoke", action="store_true", help="the same code path with tiny models on the CPU")
    parser.add_argument("--llava", action="store_true", help="also build llama-server with CUDA and time captions")
    parser.add_argument("--llava-fa", action="store_true", help="build llama.cpp's flash-attention kernels too "
                        "(about a third more CUDA compile time)")
    parser.add_argument("--llama-server", type=Path, help="use this llama-server instead of building one")
    parser.add_argument("--budget-s", type=float, help="time budget for the whole run (default: 450 on a GPU, "
                        "900 with --smoke)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: <bundle>/work)")
    parser.add_argument("--install", default="", help="comma-separated packages (or 'all') to install privately "
                        "even when the machine has them")
    parser.add_argument("--gl", choices=("auto", "system", "private"), default="auto",
                        help="EGL loader: the system's when it has one (auto), or the carried one")
    parser.add_argument("--only", default="", help="comma-separated parts to run (default: all)")
    parser.add_argument("--keep-llava", action="store_true", help="keep the 14 GB gguf pair in the work folder")
    parser.add_argument("--table", type=Path, help="print the markdown table of an earlier gpu_bench.json and exit")
    return parser


class Run:
    """One run's state: the worker environment, background jobs, part records and figures."""

    def __init__(self, args: argparse.Namespace, bundle_root: Path) -> None:
        self.args = args
        self.smoke = args.smoke
        self.profile = Profile.smoke() if self.smoke else Profile.gpu()
        self.times = _SMOKE_TIMES if self.smoke else _GPU_TIMES
        self.started = time.monotonic()
        self.budget_s = args.budget_s or (900.0 if self.smoke else 450.0)
        self.bundle_root = bundle_root
        self.work = (args.work or bundle_root / "work").resolve()
        self.parts: dict[str, dict[str, Any]] = {}
        self.figures: dict[str, dict[str, Any]] = {}
        self.skipped: list[dict[str, str]] = []
        self.machine: dict[str, Any] = {}
        self.background: dict[str, Job] = {}
        self.env: dict[str, str] = {}
        self.info: dict[str, Any] = {}

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", flush=True)

    def tick(self) -> None:
        """Notice background jobs that ended (their ``seconds`` stop there)."""
        for job in self.background.values():
            if job.poll() is not None and job.ended is not None and not getattr(job, "announced", False):
                job.announced = True
                self.say(f"{job.name}: ended with code {job.poll()} after {job.seconds:.0f} s")

    def skip(self, what: str, why: str) -> None:
        self.skipped.append({"what": what, "why": why})
        self.say(f"skip {what}: {why}")

    # -- parts ---------------------------------------------------------------------------

    def run_part(self, name: str, timeout_s: float, extra: dict[str, Any] | None = None) -> bool:
        job_file = self.work / "jobs" / f"{name}.json"
        out = self.work / "jobs" / f"{name}.out.json"
        job_file.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        job_file.write_text(json.dumps({"profile": self.profile.to_json(), "work": str(self.work), "out": str(out),
                                        "timeout_s": timeout_s, **(extra or {})}))
        during = sorted(n for n, j in self.background.items() if j.running)
        self.say(f"{name}: start (timeout {timeout_s:.0f} s{'; background: ' + ', '.join(during) if during else ''})")
        job = Job(name, [sys.executable, "-P", "-m", "bench.gpu.worker", name, "--job", str(job_file)],
                  env=self.env, cwd=self.work, log=self.work / "logs" / f"{name}.log")
        code, timed_out = run_with_timeout(job, timeout_s, tick=self.tick)
        record: dict[str, Any] = {"required": name in REQUIRED, "seconds": round(job.seconds or 0.0, 1),
                                  "timeout_s": round(timeout_s), "background": sorted(set(during) | {
                                      n for n, j in self.background.items() if j.running}),
                                  "load_avg_1m_end": round(os.getloadavg()[0], 2)}
        result = json.loads(out.read_text()) if out.is_file() else {}
        if timed_out:
            record.update(status="timeout", reason=f"still running after {timeout_s:.0f} s; log tail: {job.tail(5)}")
        elif code != 0 or "error" in result:
            record.update(status="failed", reason=result.get("error") or f"exit code {code}; log tail: {job.tail(8)}")
        else:
            record["status"] = "ok"
            record["peak_rss_mib"] = result.get("peak_rss_mib")
            self.figures.update(result.get("figures", {}))
            record["info"] = result.get("info", {})
            self.machine = self.machine or result.get("machine", {})
        self.parts[name] = record
        self.say(f"{name}: {record['status']} in {record['seconds']} s"
                 + (f" ({record['reason'][:300]})" if record.get("reason") else ""))
        if record["status"] != "ok":
            self.skipped.append({"what": name, "why": f"{record['status']}: {record['reason'][:500]}"})
        return record["status"] == "ok"

    def required_parts(self, only: set[str]) -> None:
        names = [n for n in REQUIRED if not only or n in only]
        for i, name in enumerate(names):
            timeout_s, minimum_s = self.times[name]
            reserved = sum(self.times[n][1] for n in names[i + 1:])
            timeout = plan_timeout(PartSpec(name, timeout_s, minimum_s), self.remaining(), reserved)
            if timeout is None:
                self.skip(name, f"the budget has {self.remaining():.0f} s left, {minimum_s} s needed plus "
                                f"{reserved} s kept for the parts after it")
                self.parts[name] = {"required": True, "status": "skipped", "reason": "time budget"}
                continue
            self.run_part(name, timeout)

    def optional(self, step) -> None:
        """Run an optional step: its failure is reported, never the run's."""
        try:
            step()
        except Exception as exc:
            self.skip("llava", f"{type(exc).__name__}: {exc}")

    def write_logs(self, path: Path, n_lines: int = 80) -> None:
        """The end of every log of this run in one file (the parts, the build, the server)."""
        chunks = []
        for log in sorted((self.work / "logs").glob("*.log")) if (self.work / "logs").is_dir() else []:
            lines = log.read_text(errors="replace").splitlines()
            chunks.append(f"===== {log.name} (last {min(n_lines, len(lines))} of {len(lines)} lines)\n"
                          + "\n".join(lines[-n_lines:]))
        path.write_text("\n\n".join(chunks) + "\n")

    def stop_background(self) -> None:
        for job in self.background.values():
            job.stop()
        if not self.args.keep_llava:  # the 14 GB pair, and a half-written one if the write was stopped
            shutil.rmtree(self.work / "llava", ignore_errors=True)

    # -- result ---------------------------------------------------------------------------

    def result(self, failure: str | None) -> dict[str, Any]:
        gl = {}
        for name in ("render", "validation", "defences"):
            info = self.parts.get(name, {}).get("info", {})
            if info.get("gl_renderer"):
                gl = {"renderer": info["gl_renderer"], "software": info.get("software", info.get("software_render"))}
                break
        return {
            "bench": "gpu_bundle", "schema": 1, "mode": self.profile.name, "ok": failure is None,
            "failure": failure, "started_utc": self.started_utc,
            "total_s": round(time.monotonic() - self.started, 1), "budget_s": self.budget_s,
            "bundle": {k: bundle.manifest.get(k) for k in ("commit", "built_utc", "bytes", "python_version")}
            if (bundle := getattr(self, "bundle", None)) else {},
            "machine": self.machine, "gl": {**gl, **getattr(self, "gl_info", {})},
            "installed": self.prepared.installed() if hasattr(self, "prepared") else [],
            "already_present": self.prepared.present() if hasattr(self, "prepared") else [],
            "figures": self.figures, "parts": self.parts, "skipped": self.skipped, "info": self.info,
        }



def main(argv: list[str] | None = None, bundle_root: Path | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.table:
        text = args.table.read_text().strip().splitlines()[-1]
        sys.stdout.write(render_markdown(json.loads(text)))
        return 0
    if args.results is None:
        print("run.py: --results DIR is required (where gpu_bench.json and gpu_bench.md go)", file=sys.stderr)
        return 2
    root = (bundle_root or Path(__file__).resolve().parents[3]).resolve()
    run = Run(args, root)
    run.started_utc = _utc()
    failure = None
    try:
        run.say(f"bundle {root}, work {run.work}, mode {run.profile.name}, budget {run.budget_s:.0f} s")
        run.bundle = load_bundle(root)
        run.work.mkdir(parents=True, exist_ok=True)
        run.prepared = prepare(run.bundle, run.work, force=[n for n in args.install.split(",") if n],
                               gl_mode=args.gl)
        installed = run.prepared.installed()
        run.say(f"installed privately: {', '.join(i['dist'] for i in installed) or 'nothing'} "
                f"({len(run.prepared.present())} already present)")
        run.gl_info = {"libs": run.prepared.gl.libs, "vendor_file": run.prepared.gl.vendor_file,
                       "notes": run.prepared.gl.notes}
        run.say(f"EGL: {run.prepared.gl.libs} loader, vendor file {run.prepared.gl.vendor_file}")
        run.env = worker_env(run.bundle, run.work, run.prepared)
        only = {n for n in args.only.split(",") if n}
        if args.llava and (not only or "llava" in only):
            run.optional(lambda: llava_steps.start(run))
        run.required_parts(only)
        if run.background:
            run.optional(lambda: llava_steps.finish(run))
        missing = [n for n in REQUIRED if (not only or n in only) and run.parts.get(n, {}).get("status") != "ok"]
        if missing:
            failure = "required parts did not measure: " + ", ".join(
                f"{n} ({run.parts.get(n, {}).get('status', 'not run')})" for n in missing)
    except BundleError as exc:
        failure = f"bundle: {exc}"
    except Exception as exc:  # the orchestrator's own fault: still write what there is
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        run.stop_background()
    result = run.result(failure)
    args.results.mkdir(parents=True, exist_ok=True)
    line = json.dumps(result, default=str, separators=(",", ":"))
    (args.results / "gpu_bench.json").write_text(line + "\n")
    (args.results / "gpu_bench.md").write_text(render_markdown(result))
    run.write_logs(args.results / "gpu_bench_logs.txt")
    print(render_markdown(result))
    print("skipped or failed:" if run.skipped else "nothing skipped")
    for item in run.skipped:
        print(f"  - {item['what']}: {item['why']}")
    print(line, flush=True)
    if failure:
        print(f"FAILED: {failure}", flush=True)
        return 1
    return 0
