"""``text3d doctor``: one line per check, an exit status, never a traceback.

Rules pinned here:
- on this machine (no GPU) ``doctor --role miner`` reports the missing GPU as a FAIL line
  and exits 1, without a traceback (on a GPU machine the same line passes);
- a registered devnet wallet passes, an unregistered one fails naming the command that
  registers it; a taken axon port fails with the miner's own sentence;
- the captioner: unreachable is a fail, a sensible description of the canary passes, junk
  is a warning; the clock is compared with a peer's HTTP Date header;
- a bad flag value exits 78, an unknown flag 2.
Everything runs on the devnet and 127.0.0.1 (fake captioners are plain HTTP servers).
"""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.loopback import chat_completion, closed_port_url
from text3d.demo import LocalSubnet
from text3d.ops.doctor.roles import caption_is_sensible, check_captioner, check_clock, check_port, check_wallet, run_checks
from text3d.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(PASS|WARN|FAIL)  \S")


def doctor(*argv: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "text3d.cli.main", "doctor", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout_s, env=env)


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    return LocalSubnet.create(tmp_path_factory.mktemp("doctor"), validators=("validator",), miners=("miner1",))


def neuron_flags(subnet: LocalSubnet, name: str) -> list[str]:
    return ["--netuid", "1", "--subtensor.network", "devnet", "--devnet.db", str(subnet.chain.db_path),
            "--wallet.name", name, "--wallet.path", str(subnet.wallets_dir)]


def captioner_answering(scripted_http, caption: str, health: int = 200):
    """An OpenAI-compatible server on 127.0.0.1: ``GET /health`` -> ``health``, every chat -> ``caption``."""
    return scripted_http(lambda n, path, body: (health, {"status": "ok"}) if body is None else chat_completion(caption))


@pytest.fixture
def canary(tmp_path) -> Path:
    image = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(image).ellipse((24, 24, 104, 104), fill=(210, 30, 30))
    path = tmp_path / "canary.png"
    image.save(path)
    return path


# -- the whole command ------------------------------------------------------------------------


def test_doctor_miner_on_this_machine_fails_on_the_missing_gpu_without_a_traceback(subnet):
    import torch

    from text3d.ops.net import free_port

    done = doctor("--role", "miner", *neuron_flags(subnet, "miner1"), "--axon.ip", "127.0.0.1", "--axon.port",
                  str(free_port()))
    lines = done.stdout.strip().splitlines()
    checks = [line for line in lines if LINE.match(line)]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert len(checks) >= 8 and lines[-1].endswith("failed")
    gpu = next(line for line in checks if line.split()[1] == "gpu")
    if torch.cuda.is_available():  # pragma: no cover - a GPU machine
        assert gpu.startswith("PASS")
    else:
        assert gpu.startswith("FAIL") and "no GPU" in gpu and "NVIDIA GPU" in gpu, gpu
        assert done.returncode == 1
    registered = next(line for line in checks if line.split()[1] == "registered")
    assert registered.startswith("PASS") and f"uid {subnet.uids['miner1']}" in registered
    assert any(line.startswith("PASS  port") for line in checks)
    assert any(line.startswith("PASS  external ip") and "127.0.0.1" in line for line in checks)


def test_doctor_validator_with_a_captioner_and_the_renderer(subnet, scripted_http):
    captioner = captioner_answering(scripted_http, "A red ball sitting on a white background.")
    done = doctor("--role", "validator", *neuron_flags(subnet, "validator"), "--captioner", captioner.url,
                  "--models", "tiny")
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    checks = {line.split("  ")[1].split()[0]: line for line in done.stdout.splitlines() if LINE.match(line)}
    assert checks["renderer"].startswith(("PASS", "WARN")) and "GL_RENDERER=" in checks["renderer"]
    assert checks["captioner"].startswith("PASS") and "a red ball" in checks["captioner"].lower()
    assert len(captioner.posts()) == 1  # one caption of the rendered canary
    assert checks["registered"].startswith("PASS") and "validator permit" in checks["registered"]
    assert checks["clock"].startswith("PASS") and captioner.url in checks["clock"]


def test_bad_flag_values_exit_78_and_unknown_flags_2():
    done = doctor("--role", "miner", "--axon.port", "0x")
    assert done.returncode == 78 and done.stderr.startswith("text3d doctor: --axon.port") and "Traceback" not in done.stderr
    assert doctor("--role", "miner", "--no-such-flag").returncode == 2
    assert doctor("--role", "painter").returncode == 2
    helped = doctor("--role", "miner", "--help")
    assert helped.returncode == 0 and "--axon.port" in helped.stdout and "pass, warn or fail" not in helped.stderr


# -- single checks ------------------------------------------------------------------------------


def test_an_unregistered_wallet_fails_naming_the_fix(subnet, tmp_path):
    from tests.loopback import make_wallet

    make_wallet(subnet.wallets_dir, "stranger")
    settings = load_settings("miner", neuron_flags(subnet, "stranger"))
    checks, _ = check_wallet(settings, "miner")
    assert [c.status for c in checks] == ["pass", "fail"]
    assert "holds no uid on netuid 1" in checks[1].detail and "text3d devnet register" in checks[1].detail
    missing, _ = check_wallet(load_settings("miner", [*neuron_flags(subnet, "ghost")]), "miner")
    assert missing[0].status == "fail" and "--create" in missing[0].detail


def test_a_taken_port_fails_with_the_miners_sentence():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        check = check_port(load_settings("miner", ["--axon.ip", "127.0.0.1", "--axon.port", str(port)]))
    assert check.status == "fail"
    assert check.detail == (f"--axon.port {port} is already in use on 127.0.0.1 (another miner?): pick a free one "
                            "with --axon.port")


@pytest.mark.parametrize(("caption", "status"), [
    ("A red ball sitting on a white background.", "pass"),
    ("a shiny red sphere", "pass"),
    ("ATTR rang kcal\u0441\u043a\u0438 ;; ## 1212 zzq", "warn"),  # what a random-weight model says
    ("A wooden chair with four legs.", "warn"),  # English, but not what the canary shows
])
def test_the_captioner_is_judged_by_its_description_of_the_canary(canary, caption, status, scripted_http):
    captioner = captioner_answering(scripted_http, caption)
    check = check_captioner(load_settings("validator", ["--captioner", captioner.url]), canary)
    assert check.status == status, check.detail
    assert caption_is_sensible(caption) is (status == "pass")


def test_an_unreachable_or_loading_captioner(canary, scripted_http):
    check = check_captioner(load_settings("validator", ["--captioner", closed_port_url()]), canary)
    assert check.status == "fail" and "unreachable" in check.detail and "text3d llava" in check.detail
    loading = captioner_answering(scripted_http, "", health=503)
    check = check_captioner(load_settings("validator", ["--captioner", loading.url]), canary)
    assert check.status == "warn" and "still loading" in check.detail
    none = load_settings("validator", ["--subtensor.network", "local"])  # --captioner none: a warning off finney/test
    assert check_captioner(none, canary).status == "warn"


def test_the_clock_without_any_peer_is_a_warning_not_a_pass():
    check = check_clock([])
    assert check.status == "warn" and "could not compare the clock" in check.detail


def test_machine_only_checks_never_raise(tmp_path):
    seen = []
    results = run_checks(None, load_settings("validator", ["--wallet.path", str(tmp_path / "w")]), models="tiny",
                         emit=seen.append)
    assert results == seen and {c.name for c in results} >= {"python", "torch", "cuda", "gpu", "renderer", "model",
                                                             "disk", "clock"}
    assert all(c.status in ("pass", "warn", "fail") and c.detail for c in results)


def test_a_check_needing_a_missing_extra_names_the_extra():
    """A plain `pip install text3d` has no model libraries: the check says which extra brings them."""
    from text3d.ops.doctor.machine import guard

    def needs_hub():
        raise ModuleNotFoundError("No module named 'huggingface_hub'", name="huggingface_hub")

    (check,) = guard("model", needs_hub)
    assert check.status == "fail" and check.detail.startswith("huggingface_hub is not installed")
    assert "text3d[miner]" in check.detail and "text3d[validator]" in check.detail
