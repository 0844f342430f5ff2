"""The offline GPU bundle (``bench/gpu_bundle.py`` -> ``DIR/run.py``) builds within its size limit, runs
its smoke mode end to end on this CPU, and refuses what it must refuse.

The rule it pins: what travels to a GPU machine is complete (every import and every wheel's
requirement is met there or carried), small enough to travel (58 MiB, under the device tool's
64), checked before use (a damaged or altered file stops the run), installed only into its own
work folder, and never times or reports a software fallback as a GPU figure. Each part of the run
is isolated: a part that hangs is killed with everything it started, and the others go on.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from bench.gpu import gl, llama_source
from bench.gpu.bundle import DEFAULT_MAX_BYTES, BuildError, build_bundle, check_imports, check_wheel_requirements
from bench.gpu.jobs import Job, build_progress, run_with_timeout
from bench.gpu.manifest import DEBS, WHEELS, WheelSpec, canonical
from bench.gpu.budget import PartSpec, plan_timeout
from bench.gpu.table import render_markdown
from bench.gpu.wheels import install_plan, meets, wheel_fits

REPO = Path(__file__).resolve().parents[1]
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
DEVICE_TOOL_LIMIT = 64 * 2**20


# -- building ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_here(tmp_path_factory) -> Path:
    """A bundle whose wheels fit this interpreter, so its smoke mode can install them for real."""
    out = tmp_path_factory.mktemp("bundle") / "b"
    build_bundle(out, python_version=THIS_PYTHON)
    return out


@pytest.mark.integration
def test_the_bundle_for_the_lent_gpu_fits_and_carries_a_cp312_wheel_for_every_missing_package(tmp_path):
    built = build_bundle(tmp_path / "b312", python_version="3.12")
    on_disk = sum(p.stat().st_size for p in (tmp_path / "b312").rglob("*") if p.is_file())
    assert on_disk == built["bytes"] <= DEFAULT_MAX_BYTES < DEVICE_TOOL_LIMIT
    print(f"GPU bundle for Python 3.12: {on_disk / 2**20:.1f} MiB ({built['bytes_by_kind']})")
    manifest = json.loads((tmp_path / "b312" / "manifest.json").read_text())
    wheels = {f["dist"]: f["path"] for f in manifest["files"] if f["kind"] == "wheel"}
    assert set(wheels) == {canonical(s.dist) for s in WHEELS}
    assert all(wheel_fits(path, "3.12") for path in wheels.values())
    assert not any(wheel_fits(path, "3.11") for path in wheels.values() if "cp312" in path)
    assert {f["path"].split("/")[1].split("_")[0] for f in manifest["files"] if f["kind"] == "deb"} == set(DEBS)
    code = [f["path"] for f in manifest["files"] if f["kind"] == "code"]
    assert "src/text3d/reward/model.py" in code and "src/bench/gpu/orchestrate.py" in code
    assert not [p for p in code if p.startswith(("src/tests", "src/text3d/chain", "src/text3d/validator",
                                                  "src/text3d/miner", "src/text3d/cli", "src/neurons"))]


@pytest.mark.integration
def test_smoke_run_installs_privately_and_measures_every_part_with_the_software_renderer_marked(tmp_path):
    """``bench/gpu_bundle.py --smoke``: build for this Python, then the bundle's own smoke run."""
    from text3d.ops.llava import find_llama_server

    out = tmp_path / "bundle"
    results, work = out / "smoke-results", out / "work"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LLAMA_SERVER"] = str(find_llama_server())  # the project's build script, as the llava tests do
    site_before = _site_packages_listing()
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_bundle.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=1800, cwd=tmp_path)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and "work" not in p.parts
               and "smoke-results" not in p.parts)
    assert size <= DEFAULT_MAX_BYTES
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1])
    assert result == json.loads((results / "gpu_bench.json").read_text())
    assert result["ok"] and result["mode"] == "smoke" and result["skipped"] == []
    assert {p: r["status"] for p, r in result["parts"].items()} == {
        "shap_e": "ok", "clip": "ok", "render": "ok", "defences": "ok", "validation": "ok", "llava_write": "ok",
        "llava_caption": "ok"}
    figures = result["figures"]
    for name in ("shap_e.prior_b1_s", "shap_e.prior_b2_s", "shap_e.decode_s", "clip.one_view_s",
                 "clip.step_images_s", "clip.step_texts_s", "render.asset_s", "ocr.s_per_view",
                 "fingerprint.s_per_asset", "flatness.s_per_asset", "validation.step_s", "validation.s_per_asset",
                 "llava.gguf_write_s", "llava.caption_s_per_view"):
        assert figures[name]["value"] > 0 and figures[name]["unit"] == "s", name
    assert figures["shap_e.mesh_b1_s"]["basis"] == "derived" and figures["shap_e.mesh_b1_s"]["from"]
    # this machine renders on llvmpipe: reported as software, never as a measured GPU figure
    assert result["gl"]["software"] is True and "llvmpipe" in result["gl"]["renderer"]
    assert result["gl"]["libs"] == "private"  # the carried glvnd loader, unpacked under the work folder
    for name in ("render.asset_s", "validation.s_per_asset", "validation.vs_target"):
        assert figures[name]["basis"] == "software", name
    assert figures["ocr.provider"]["value"] == "CPUExecutionProvider"
    assert figures["llava.tokens_per_view"]["value"] == 4  # random weights run to max_tokens
    assert "validation.with_captions_s_per_asset" in figures
    # every carried wheel was installed into the work folder, and the workers imported from there
    assert sorted(i["dist"] for i in result["installed"]) == sorted(s.dist for s in WHEELS)
    imported = result["machine"]["imported_from"]
    for name in ("diffusers", "open_clip", "pydantic", "trimesh", "moderngl", "rapidocr_onnxruntime"):
        assert imported[name].startswith(str(work / "site")), (name, imported[name])
    assert imported["text3d"].startswith(str(out / "src"))
    assert _site_packages_listing() == site_before
    assert not list((work / "llava").glob("*.gguf"))  # the written pair is removed at the end
    logs = (results / "gpu_bench_logs.txt").read_text()
    assert "===== validation.log" in logs and "===== llama-server.log" in logs
    table = (results / "gpu_bench.md").read_text()
    assert "| Validator: per asset, no captions (one step) |" in table and "software" in table
    assert "nothing skipped" in done.stdout
    assert _no_children_left(work)


def _site_packages_listing() -> list[str]:
    import site

    return sorted(str(p) for d in site.getsitepackages() for p in Path(d).glob("*.dist-info"))


def _no_children_left(work: Path) -> bool:
    """No process still runs from the work folder (workers, llama-server, builds)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmdline:
            return False
    return True


# -- refusing what must be refused -----------------------------------------------------------


@pytest.mark.integration
def test_a_damaged_or_altered_wheel_stops_the_run_before_anything_is_installed(bundle_here, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle_here, copy, ignore=shutil.ignore_patterns("work"))
    wheel = next((copy / "wheels").glob("pydantic-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(copy / "run.py"), "--smoke", "--results", str(tmp_path / "r"),
                           "--work", str(tmp_path / "w"), "--install", "all"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 1
    assert done.stdout.strip().splitlines()[-1].startswith("FAILED: bundle:") and wheel.name in done.stdout
    assert not (tmp_path / "w" / "site").exists()
    assert json.loads((tmp_path / "r" / "gpu_bench.json").read_text())["ok"] is False


def test_the_llama_source_cannot_write_outside_its_folder(tmp_path):
    absolute = tmp_path / "escaped-absolute.txt"
    for name, make in (("dotdot", _tar_with_member("llama.cpp/../../escaped.txt")),
                       ("absolute", _tar_with_member(str(absolute))),
                       ("link", _tar_with_symlink("llama.cpp/evil", "/etc")),
                       ("elsewhere", _tar_with_member("not-llama/CMakeLists.txt"))):
        tarball = tmp_path / f"{name}.tar.xz"
        tarball.write_bytes(make)
        with pytest.raises(ValueError, match="never has"):
            llama_source.extract(tarball, tmp_path / "dest" / name)
    assert not (tmp_path / "escaped.txt").exists() and not absolute.exists()
    assert not (tmp_path / "dest").exists()  # refused before anything was written


def test_a_deb_cannot_write_outside_the_private_gl_folder(tmp_path):
    deb = tmp_path / "evil.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz":
                         _tar_with_member("./../../escaped-from-deb.txt")}))
    with pytest.raises(tarfile.FilterError):
        gl.unpack_deb(deb, tmp_path / "prefix")
    assert not (tmp_path / "escaped-from-deb.txt").exists()
    not_a_deb = tmp_path / "plain.deb"
    not_a_deb.write_bytes(b"#!/bin/sh\nrm -rf /\n")
    with pytest.raises(ValueError, match="not a Debian package"):
        gl.unpack_deb(not_a_deb, tmp_path / "prefix")


def test_the_builder_never_replaces_a_folder_that_is_not_a_bundle(tmp_path):
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "thesis.tex").write_text("years of work")
    with pytest.raises(BuildError, match="not a bundle"):
        build_bundle(keep, python_version=THIS_PYTHON, cache=tmp_path / "empty-cache", llama=False, debs=False)
    assert (keep / "thesis.tex").read_text() == "years of work"


def test_a_part_that_hangs_is_killed_with_everything_it_started(tmp_path):
    marker = tmp_path / "grandchild-alive"
    script = (f"sleep 300 & echo $! > {tmp_path / 'grandchild.pid'}; "
              f"while kill -0 $! 2>/dev/null; do touch {marker}; sleep 0.2; done")
    job = Job("hang", ["sh", "-c", script], env=dict(os.environ), cwd=tmp_path, log=tmp_path / "hang.log")
    code, timed_out = run_with_timeout(job, 1.5)
    assert (code, timed_out) == (None, True)
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{grandchild}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{grandchild}").exists()


def test_a_run_without_time_left_skips_every_part_and_fails_with_the_reason_last(bundle_here, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(bundle_here / "run.py"), "--smoke", "--budget-s", "1",
                           "--results", str(tmp_path / "r"), "--work", str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("FAILED: required parts did not measure: shap_e (skipped)")
    result = json.loads(lines[-2])
    assert [s["what"] for s in result["skipped"]] == ["shap_e", "clip", "render", "defences", "validation"]
    assert all("budget" in s["why"] for s in result["skipped"])


# -- the pieces -------------------------------------------------------------------------------


def test_wheel_tags_decide_what_a_python_can_install():
    assert wheel_fits("diffusers-0.42.1-py3-none-any.whl", "3.12")
    assert wheel_fits("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "3.12")
    assert not wheel_fits("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "3.11")
    assert wheel_fits("wcwidth-0.9.4-cp310-abi3-manylinux2014_x86_64.whl", "3.12")  # abi3 from 3.10 on
    assert not wheel_fits("wcwidth-0.9.4-cp313-abi3-manylinux2014_x86_64.whl", "3.12")
    assert not wheel_fits("shapely-2.2.0-cp312-cp312-macosx_11_0_arm64.whl", "3.12")
    assert not wheel_fits("shapely-2.2.0-cp312-cp312-manylinux_2_28_aarch64.whl", "3.12")
    with pytest.raises(ValueError):
        wheel_fits("not-a-wheel.tar.gz", "3.12")


def test_only_packages_missing_or_too_old_are_installed():
    specs = [WheelSpec("diffusers", "0.42.1", "==0.42.1", ("diffusers",), ""),
             WheelSpec("typing_extensions", "4.16.0", ">=4.16.0", ("typing_extensions",), ""),
             WheelSpec("shapely", "2.2.0", ">=1.7.1,!=2.0.4", ("shapely",), "")]
    plan = install_plan(specs, {"diffusers": None, "typing-extensions": "4.12.2", "shapely": "2.1.0"})
    assert [(i.spec.dist, i.install) for i in plan] == [("diffusers", True), ("typing_extensions", True),
                                                         ("shapely", False)]
    assert plan[1].reason == "4.12.2 does not meet >=4.16.0"
    assert all(i.install for i in install_plan(specs, {"diffusers": "0.42.1", "typing-extensions": "4.16.0",
                                                       "shapely": "2.2.0"}, force=["all"]))
    assert not meets("2.0.4", ">=1.7.1,!=2.0.4") and not meets(None, ">=1") and not meets("garbage!", "==1")


def test_the_completeness_checks_name_what_the_target_would_miss(tmp_path):
    assert check_imports({"numpy", "torch", "diffusers", "PIL", "cv2"}) == []
    assert check_imports({"bittensor"}) == ["the carried code imports 'bittensor' (bittensor): neither on the "
                                            "target nor carried"]
    wheel = tmp_path / "needy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("needy-1.0.dist-info/METADATA", "Name: needy\nRequires-Dist: numpy>=2\n"
                    "Requires-Dist: left-pad\nRequires-Dist: pywin32; sys_platform == 'win32'\n"
                    "Requires-Dist: pytest; extra == 'test'\nRequires-Dist: huggingface-hub>=9\n")
    problems = check_wheel_requirements([wheel], "3.12")
    assert problems == ["needy-1.0-py3-none-any.whl needs left-pad, which the target lacks and the bundle does "
                        "not carry", "needy-1.0-py3-none-any.whl needs huggingface-hub>=9; the target has "
                        "huggingface-hub 1.33.0"]


def test_the_budget_keeps_time_for_the_parts_after_a_part():
    spec = PartSpec("clip", timeout_s=120, minimum_s=25)
    assert plan_timeout(spec, remaining_s=400, reserved_after_s=85) == 120
    assert plan_timeout(spec, remaining_s=150, reserved_after_s=85) == 65
    assert plan_timeout(spec, remaining_s=100, reserved_after_s=85) is None


def test_pruning_keeps_what_llama_server_builds_and_drops_the_rest():
    keep = llama_source.keep
    for rel in ("CMakeLists.txt", "ggml/src/ggml-cuda/fattn.cu",
                "ggml/src/ggml-cuda/template-instances/mmq-instance-q4_0.cu", "ggml/src/ggml-cpu/ggml-cpu.c",
                "ggml/src/ggml.c", "tools/server/server.cpp", "tools/mtmd/clip.cpp", "tools/ui/CMakeLists.txt",
                "tools/ui/ui.h.in", "tools/ui/ui.cpp.in", "scripts/ui-assets.cmake", "vendor/cpp-httplib/httplib.h",
                "models/ggml-vocab-llama-spm.gguf", "src/models/llama.cpp", "common/arg.cpp"):
        assert keep(rel), rel
    for rel in ("docs/build.md", "models/ggml-vocab-qwen2.gguf", "ggml/src/ggml-vulkan/ggml-vulkan.cpp",
                "ggml/src/ggml-metal/ggml-metal.m", "tools/ui/src/app.ts", "tests/test-backend-ops.cpp",
                "examples/simple/simple.cpp", "scripts/compare-llama-bench.py", "media/llama.png", "README.md"):
        assert not keep(rel), rel


def test_software_renderers_are_recognised():
    assert gl.is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert gl.is_software_renderer("softpipe")
    assert not gl.is_software_renderer("NVIDIA H200/PCIe/SSE2")
    assert not gl.is_software_renderer(None) and not gl.is_software_renderer("")


def test_the_table_marks_every_figure_with_its_basis():
    result = {"mode": "gpu", "machine": {"gpu": "NVIDIA H200"}, "gl": {"renderer": "NVIDIA H200/PCIe/SSE2"},
              "figures": {"shap_e.prior_b4_s": {"value": 2.5, "unit": "s", "basis": "measured", "runs": 3, "p95": 2.6},
                          "shap_e.prior_b4_s_per_mesh": {"value": 0.625, "unit": "s", "basis": "measured"},
                          "validation.s_per_asset": {"value": 0.21, "unit": "s", "basis": "software"},
                          "validation.vs_target": {"value": 0.6, "unit": "x", "basis": "derived",
                                                   "from": ["validation.s_per_asset"], "note": "/ 0.35 s"}},
              "skipped": [{"what": "llava", "why": "no nvcc | here"}]}
    table = render_markdown(result)
    assert "| Miner: prior per mesh in a batch of 4 | 0.625 s | measured |" in table
    assert "| Validator: per asset, no captions (one step) | 0.21 s | software |" in table
    assert "| Validator: one caption at the protocol's length | not measured | |" in table
    assert "| `validation.vs_target` | 0.6 | x | derived | / 0.35 s (from validation.s_per_asset) |" in table
    assert "p95 2.6; 3 runs." in table
    assert "- llava: no nvcc \\| here" in table


def test_build_progress_reads_ninja_counters(tmp_path):
    log = tmp_path / "build.log"
    log.write_bytes(b"-- Configuring done\n[1/352] Building C\n[17/352] Building CUDA object x.cu.o\n")
    assert build_progress(log) == (17, 352)
    assert build_progress(tmp_path / "missing.log") is None


# -- helpers ----------------------------------------------------------------------------------


def _tar_with_member(name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        data = b"escaped"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tar_with_symlink(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    return buffer.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def test_a_deadline_counts_fewer_runs_but_never_none(monkeypatch):
    import text3d.common.timing as timing
    from text3d.common.timing import time_runs

    calls = []
    timings = time_runs(lambda: calls.append(1), 10, warmup=2, deadline=time.monotonic() - 1.0)
    assert len(timings.wall_s) == 1 and len(calls) == 3  # two warm-ups, then one counted run

    class Clock:  # a run "takes" 0.0625 s of this clock (exact in binary); reading it costs nothing
        now = 0.0

        def read(self) -> float:
            return self.now

        def run(self) -> None:
            self.now += 0.0625

    clock = Clock()
    monkeypatch.setattr(timing, "time", type("FakeTime", (), {"monotonic": clock.read, "perf_counter": clock.read,
                                                               "process_time": clock.read}))
    # runs end at 0.0625, 0.125, 0.1875, 0.25; a fifth would end at 0.3125, past the 0.25 deadline
    assert len(time_runs(clock.run, 10, warmup=0, deadline=0.25).wall_s) == 4
    assert len(time_runs(lambda: None, 5, warmup=0, deadline=None).wall_s) == 5


@pytest.mark.integration
def test_the_pruned_source_configures_llama_server_for_cuda_with_the_toolchain_found_here(tmp_path):
    """What the GPU machine will do with the carried source, short of compiling it: unpack, find nvcc
    and cuBLAS (here: torch's pip cuBLAS through the shim), configure with CUDA for sm_90, and run
    the one custom build step that reads files the pruning could drop (the UI templates: a CPU build
    of an earlier pruning stopped there)."""
    import shutil

    from bench.gpu.bundle import fetch_llama_source
    from text3d.common.paths import cache_dir

    source = llama_source.extract(fetch_llama_source(cache_dir() / "gpu-bundle"), tmp_path / "src")
    assert (source / llama_source.VOCAB).is_file()
    chain = llama_source.cuda_toolchain(tmp_path)
    assert chain.usable, chain.notes
    chain.cuda_arch = "90"  # no GPU here for "native"; the H100/H200's architecture
    configure, build = llama_source.build_commands(source, tmp_path / "build", jobs=2, cuda=chain)
    assert "-DGGML_CUDA=ON" in configure and "-DGGML_CUDA_FA=OFF" in configure and build[-3:-1] == ["llama-server",
                                                                                                   "--parallel"]
    done = subprocess.run(configure, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    commands = subprocess.run(["ninja" if shutil.which("ninja") else "make", "-C", str(tmp_path / "build"), "-t",
                               "commands", "llama-server"], capture_output=True, text=True, timeout=120).stdout
    assert commands.count("nvcc") > 100  # the CUDA backend's kernels, for one architecture
    assert "sm_90" in commands or "compute_90" in commands
    ui = subprocess.run(["cmake", "--build", str(tmp_path / "build"), "--target", "llama-ui-assets"],
                        capture_output=True, text=True, timeout=300)
    assert ui.returncode == 0, ui.stdout[-2000:] + ui.stderr[-2000:]
