"""Captioning on a GPU: the llama-server build's CUDA choice, ``text3d llava``'s GPU and passthrough
flags, and what ``text3d doctor`` says about the captioner.

Pinned:
- ``build_llama_server.sh --detect`` (nothing is built): no toolkit -> the CPU build in ``bin/``;
  nvcc on PATH (or in ``$CUDA_HOME/bin``) and a GPU listed by ``nvidia-smi -L`` -> the CUDA build
  in ``bin-cuda/`` with ``-DGGML_CUDA=ON`` and the GPU's architecture; nvcc without a GPU -> the
  CPU, saying why; ``TEXT3D_LLAMA_BACKEND`` forces either (cuda without a toolkit is an error);
  the two builds are cached apart (a cached CUDA binary is returned without building, and the
  CPU one stays where it was). Fake ``nvcc`` / ``nvidia-smi`` scripts stand in for the toolkit
  and the driver (only the detection is under test; the lead runs the real CUDA build on a GPU);
- ``text3d llava --gpu-layers N`` becomes llama-server's ``-ngl N``; options after ``--`` are
  passed as written, the ones this command sets itself are refused naming its own flag; the real
  llama-server starts with them (``-ngl`` on a CPU build is accepted and offloads nothing);
- ``text3d doctor``: ``--captioner none`` FAILs for test and finney and warns on a local network;
  the captioner's GPU: vLLM passes, the local llama-server CPU build warns, and with nothing to
  see the canary caption's time decides.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from text3d.ops.doctor.captioner import check_captioner_offload
from text3d.ops.doctor.network import check_captioner
from text3d.ops.llava.binary import BUILD_SCRIPT, build_backend, find_llama_server
from text3d.ops.net import free_port
from text3d.settings import load_settings
from tests.loopback import chat_completion

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PATH = "/usr/bin:/bin"  # no nvcc here (this machine keeps one in /usr/local/bin)


def _script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fakes(tmp_path):
    """Folders holding a fake nvcc, a fake nvidia-smi with one H200, and a fake CUDA_HOME."""
    toolkit = tmp_path / "toolkit"
    toolkit.mkdir()
    _script(toolkit, "nvcc", 'echo "Cuda compilation tools, release 12.4, V12.4.131"\n')
    driver = tmp_path / "driver"
    driver.mkdir()
    _script(driver, "nvidia-smi", 'case "$*" in *compute_cap*) echo "9.0";; *-L*) echo "GPU 0: NVIDIA H200 '
                                  '(UUID: GPU-0000)";; esac\n')
    home = tmp_path / "cuda-home"
    (home / "bin").mkdir(parents=True)
    _script(home / "bin", "nvcc", 'echo "Cuda compilation tools, release 12.8, V12.8.93"\n')
    return {"toolkit": toolkit, "driver": driver, "home": home, "cache": tmp_path / "cache"}


def build_script(fakes, *args: str, path: str = SYSTEM_PATH, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": path, "HOME": str(fakes["cache"].parent), "TEXT3D_CACHE": str(fakes["cache"]), **env}
    return subprocess.run(["bash", str(BUILD_SCRIPT), *args], capture_output=True, text=True, env=environ, timeout=60)


def detected(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_without_a_toolkit_the_cpu_build(fakes):
    found = detected(build_script(fakes, "--detect"))
    assert found["backend"] == "cpu" and "no CUDA toolkit" in found["reason"]
    assert found["binary"] == str(fakes["cache"] / "llama.cpp" / "bin" / "llama-server")
    assert "-DGGML_CUDA=ON" not in build_script(fakes, "--dry-run").stdout


def test_nvcc_on_the_path_and_a_gpu_make_the_cuda_build(fakes):
    path = f"{fakes['toolkit']}:{fakes['driver']}:{SYSTEM_PATH}"
    found = detected(build_script(fakes, "--detect", path=path))
    assert found["backend"] == "cuda" and "nvcc 12.4" in found["reason"] and "NVIDIA H200" in found["reason"]
    assert found["binary"] == str(fakes["cache"] / "llama.cpp" / "bin-cuda" / "llama-server")
    dry = build_script(fakes, "--dry-run", path=path).stdout
    assert "-DGGML_CUDA=ON" in dry and f"-DCMAKE_CUDA_COMPILER={fakes['toolkit'] / 'nvcc'}" in dry
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in dry
    assert "-DCMAKE_CUDA_ARCHITECTURES=80" in build_script(fakes, "--dry-run", path=path, CUDA_ARCHITECTURES="80").stdout


def test_cuda_home_is_a_toolkit_too(fakes):
    found = detected(build_script(fakes, "--detect", path=f"{fakes['driver']}:{SYSTEM_PATH}", CUDA_HOME=str(fakes["home"])))
    assert found["backend"] == "cuda" and "nvcc 12.8" in found["reason"]


def test_a_toolkit_without_a_gpu_builds_for_the_cpu_and_says_why(fakes):
    found = detected(build_script(fakes, "--detect", path=f"{fakes['toolkit']}:{SYSTEM_PATH}"))
    assert found["backend"] == "cpu" and "no GPU visible" in found["reason"] and "TEXT3D_LLAMA_BACKEND=cuda" in found["reason"]


def test_the_backend_can_be_forced(fakes):
    both = f"{fakes['toolkit']}:{fakes['driver']}:{SYSTEM_PATH}"
    assert detected(build_script(fakes, "--detect", path=both, TEXT3D_LLAMA_BACKEND="cpu"))["backend"] == "cpu"
    forced = detected(build_script(fakes, "--detect", path=f"{fakes['toolkit']}:{SYSTEM_PATH}", TEXT3D_LLAMA_BACKEND="cuda"))
    assert forced["backend"] == "cuda"
    missing = build_script(fakes, "--detect", TEXT3D_LLAMA_BACKEND="cuda")
    assert missing.returncode == 1 and "no CUDA toolkit" in missing.stderr
    assert build_script(fakes, "--detect", TEXT3D_LLAMA_BACKEND="rocm").returncode == 2


def test_the_two_builds_are_cached_apart(fakes):
    """A cached build is returned without building anything (pip and cmake are not even on PATH)."""
    cache = fakes["cache"] / "llama.cpp"
    for folder, stamp, backend in (("bin", ".version-11434.0.0", "cpu"), ("bin-cuda", ".version-cuda-11434.0.0", "cuda")):
        (cache / folder).mkdir(parents=True)
        _script(cache / folder, "llama-server", "exit 0\n")
        (cache / folder / "BUILD_INFO").write_text(f"backend={backend}\n")
        (cache / stamp).touch()
    (cache / "models").mkdir()
    (cache / "models" / "ggml-vocab-llama-spm.gguf").write_bytes(b"GGUF")
    with_gpu = build_script(fakes, path=f"{fakes['toolkit']}:{fakes['driver']}:{SYSTEM_PATH}")
    assert with_gpu.returncode == 0 and with_gpu.stdout.strip() == str(cache / "bin-cuda" / "llama-server")
    without = build_script(fakes)
    assert without.returncode == 0 and without.stdout.strip() == str(cache / "bin" / "llama-server")
    assert build_backend(cache / "bin-cuda" / "llama-server") == "cuda"
    assert build_backend(cache / "bin" / "llama-server") == "cpu"


def test_find_llama_server_without_building_prefers_the_cuda_build(fakes, monkeypatch):
    cache = fakes["cache"]
    for folder in ("bin", "bin-cuda"):
        (cache / "llama.cpp" / folder).mkdir(parents=True)
        _script(cache / "llama.cpp" / folder, "llama-server", "exit 0\n")
    monkeypatch.setenv("TEXT3D_CACHE", str(cache))
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", SYSTEM_PATH)
    assert find_llama_server(build=False) == cache / "llama.cpp" / "bin-cuda" / "llama-server"


# -- text3d llava ---------------------------------------------------------------------------------------


def llava(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "text3d.cli.main", "llava", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def test_gpu_layers_and_passthrough_reach_the_command_line():
    done = llava("--models", "tiny", "--gpu-layers", "99", "--print-command", "--", "--flash-attn", "on",
                 "--cache-type-k", "q8_0")
    assert done.returncode == 0, done.stderr
    argv = done.stdout.split()
    assert argv[argv.index("-ngl") + 1] == "99"
    assert argv[-4:] == ["--flash-attn", "on", "--cache-type-k", "q8_0"]
    assert "-ngl" not in llava("--models", "tiny", "--print-command").stdout.split()


@pytest.mark.parametrize(("args", "says"), [
    (["--", "--port", "9"], "use --port"),
    (["--", "-ngl=5"], "use --gpu-layers"),
    (["--", "--mmproj", "x.gguf"], "use --mmproj"),
    (["stray"], "go after --"),
])
def test_options_this_command_sets_are_refused_after_the_double_dash(args, says):
    done = llava("--models", "tiny", "--print-command", *args)
    assert done.returncode == 78 and says in done.stderr and "Traceback" not in done.stderr


def test_a_bad_layer_count_is_a_usage_error():
    done = llava("--models", "tiny", "--gpu-layers", "lots")
    assert done.returncode == 2 and "--gpu-layers" in done.stderr


@pytest.mark.integration
def test_the_real_server_starts_with_them_and_doctor_sees_its_cpu_build():
    """The cached llama-server (a CPU build here) accepts -ngl and a passed-through option; doctor's
    look at the local process says it is a CPU build."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "text3d.cli.main", "llava", "--models", "tiny", "--port",
                                str(port), "-np", "1", "--gpu-layers", "99", "--", "--no-warmup"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        ready = process.stdout.readline()
        assert "llava server ready" in ready and "cpu build of llama-server" in ready, (ready, process.stderr.read())
        settings = load_settings("validator", ["--subtensor.network", "local", "--captioner", f"http://127.0.0.1:{port}"])
        check = check_captioner_offload(settings, 0.4)
        assert check.status == "warn" and "CPU build" in check.detail and "--gpu-layers all" in check.detail
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert "offloads nothing" in process.stderr.read()


# -- text3d doctor ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["test", "finney"])
def test_doctor_fails_on_no_captioner_where_one_is_required(network):
    check = check_captioner(load_settings("validator", ["--subtensor.network", network, "--captioner", "none"]), None)
    assert check.status == "fail" and f"a validator on {network} must caption" in check.detail
    local = check_captioner(load_settings("validator", ["--subtensor.network", "local", "--captioner", "none"]), None)
    assert local.status == "warn"


def test_doctor_fails_the_whole_run_on_no_captioner_for_test(tmp_path):
    """The whole command on test with --captioner none: the captioner line is a FAIL and the exit status 1
    (the chain check fails here too: this machine has no internet; the captioner line says its own)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "text3d.cli.main", "doctor", "--role", "validator", "--models", "tiny",
                           "--netuid", "1", "--subtensor.network", "test", "--captioner", "none",
                           "--wallet.path", str(tmp_path / "w")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    line = next(line for line in done.stdout.splitlines() if line.startswith(("PASS  captioner", "WARN  captioner",
                                                                               "FAIL  captioner")))
    assert line.startswith("FAIL  captioner") and "must caption its views" in line
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr


def test_doctor_on_the_captioners_gpu(scripted_http):
    vllm = scripted_http(lambda n, path, body: (200, {"object": "list", "data": [
        {"id": "llava-v1.5", "object": "model", "owned_by": "vllm"}]}))  # GET /v1/models as vLLM answers it
    settings = load_settings("validator", ["--subtensor.network", "local", "--captioner", vllm.url])
    assert check_captioner_offload(settings, None).status == "pass"
    # not vLLM, not a llama-server process: the canary caption's time decides
    plain = scripted_http(lambda n, path, body: (200, {"status": "ok"} if body is None else chat_completion("a red ball")))
    settings = load_settings("validator", ["--subtensor.network", "local", "--captioner", plain.url])
    fast, slow = check_captioner_offload(settings, 0.8), check_captioner_offload(settings, 45.0)
    unknown = check_captioner_offload(settings, None)
    assert fast.status == "pass" and "0.8 s" in fast.detail
    assert slow.status == "warn" and "a CPU's pace" in slow.detail and "vLLM" in slow.detail
    assert unknown.status == "warn" and "could not tell" in unknown.detail
