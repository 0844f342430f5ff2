"""Operating the neurons: one sentence per start-up problem, one exit status per kind, safe pm2, clean logs.

Rules pinned here:
- a taken axon port, a ``--device cuda`` without a working GPU and a bad flag value each stop
  a neuron with one sentence naming the flag that fixes it, and exit status 78 (a
  configuration error: pm2's ``stop_exit_codes`` does not restart it); an unknown flag is 2;
  ``text3d score --device cuda`` says the same sentence and never blames the CLIP weights;
- the pm2 file loads in node with the variables set; it refuses to load without NETUID
  (there is no default netuid, least of all on finney); miner and validator wallets are
  separate variables; the devnet profile needs DEVNET_DB; restarts back off and stop on 78;
- logging: each line once (even after ``logging.basicConfig`` or a second set-up), no
  colour codes in files, JSON lines with ``--logging.json``, rotation with
  ``--logging.dir``/``--logging.max_mb``.
"""

import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from text3d.demo import LocalSubnet
from text3d.ops.net import free_port
from text3d.ops.logs import setup_logging
from text3d.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*argv: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env)


@pytest.fixture(scope="module")
def subnet(tmp_path_factory):
    return LocalSubnet.create(tmp_path_factory.mktemp("ops"), validators=("validator",), miners=("miner1",))


def flags(subnet: LocalSubnet, name: str) -> list[str]:
    return ["--netuid", "1", "--subtensor.network", "devnet", "--devnet.db", str(subnet.chain.db_path),
            "--wallet.name", name, "--wallet.path", str(subnet.wallets_dir), "--models", "tiny"]


def one_sentence(done: subprocess.CompletedProcess, prefix: str) -> str:
    err = done.stderr.strip()
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    last = err.splitlines()[-1]
    assert last.startswith(prefix), err
    return last


# -- start-up problems ----------------------------------------------------------------------------


def test_a_port_in_use_is_one_sentence_naming_the_flag(subnet):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run("-m", "neurons.miner", *flags(subnet, "miner1"), "--device", "cpu", "--axon.ip", "127.0.0.1",
                   "--axon.port", str(port))
    assert done.returncode == 78
    assert one_sentence(done, "text3d miner: ") == (
        f"text3d miner: --axon.port {port} is already in use on 127.0.0.1 (another miner?): pick a free one with "
        "--axon.port")


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_a_configuration_error_everywhere(subnet, tmp_path):
    miner = run("-m", "neurons.miner", *flags(subnet, "miner1"), "--device", "cuda", "--axon.ip", "127.0.0.1",
                "--axon.port", str(free_port()))
    validator = run("-m", "neurons.validator", *flags(subnet, "validator"), "--device", "cuda")
    assets = tmp_path / "assets"
    assets.mkdir()
    from tests.loopback import tiny_mesh_payload
    from text3d.protocol.mesh_codec import MeshFormat

    (assets / "a.ply").write_bytes(tiny_mesh_payload(MeshFormat.PLY))
    score = run("-m", "text3d.cli.main", "score", str(assets), "--prompt", "a ball", "--models", "tiny", "--device", "cuda")
    for done, prefix in ((miner, "text3d miner: "), (validator, "text3d validator: "), (score, "text3d score: ")):
        assert done.returncode == 78, (prefix, done.stderr)
        line = one_sentence(done, prefix + "--device cuda: ")
        assert "no working NVIDIA GPU" in line and "--device cpu" in line and "text3d doctor" in line
        assert "CLIP" not in line and "--models tiny" not in line


def test_a_bad_value_exits_78_and_an_unknown_flag_2(subnet):
    done = run("-m", "neurons.validator", *flags(subnet, "validator"), "--validator.alpha", "5")
    assert done.returncode == 78
    assert one_sentence(done, "text3d validator: --validator.alpha 5")
    assert run("-m", "neurons.miner", "--no-such-flag").returncode == 2
    unregistered = run("-m", "neurons.miner", *flags(subnet, "nobody"), "--axon.port", str(free_port()))
    assert unregistered.returncode == 78 and "Traceback" not in unregistered.stderr


# -- pm2 (node is in the Makefile's apt list) -------------------------------------------------------


PM2_VARIABLES = ("NETUID", "NETWORK", "DEVNET_DB", "MINER_WALLET", "VALIDATOR_WALLET", "LOG_DIR", "AXON_PORT",
                 "LLAVA_PORT", "GATEWAY_PORT", "GATEWAY_URL", "GENERATION_GPUS", "GENERATION_PORT")


def load_pm2(**env: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k not in PM2_VARIABLES}
    script = "console.log(JSON.stringify(require('./scripts/ecosystem.config.js')))"
    return subprocess.run(["node", "-e", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**keep, **env})


def test_the_pm2_file_loads_with_separate_wallets_backoff_and_no_restart_on_configuration_errors():
    done = load_pm2(NETUID="42", NETWORK="test", MINER_WALLET="m-wallet", VALIDATOR_WALLET="v-wallet")
    assert done.returncode == 0, done.stderr
    apps = {app["name"]: app for app in json.loads(done.stdout)["apps"]}
    assert set(apps) == {"text3d-llava", "text3d-validator", "text3d-miner", "text3d-gateway"}
    miner, validator = " ".join(apps["text3d-miner"]["args"]), " ".join(apps["text3d-validator"]["args"])
    assert "--netuid 42 --subtensor.network test" in miner and "--netuid 42 --subtensor.network test" in validator
    assert "--wallet.name m-wallet" in miner and "v-wallet" not in miner
    assert "--wallet.name v-wallet" in validator and "m-wallet" not in validator
    for app in apps.values():
        assert app["stop_exit_codes"] == [78] and app["exp_backoff_restart_delay"] > 0 and app["autorestart"]


@pytest.mark.parametrize("network", ["finney", "test", None])
def test_the_pm2_file_has_no_default_netuid(network):
    done = load_pm2(**({"NETWORK": network} if network else {}))
    assert done.returncode != 0
    assert "NETUID is not set" in done.stderr


def _role_and_flags(args: list[str]) -> tuple[str, list[str]]:
    """What an app of the pm2 file runs: ``-m neurons.<role> FLAGS`` or ``-m text3d.cli.main <command> FLAGS``."""
    if args[1].startswith("neurons."):
        return args[1].split(".")[1], args[2:]
    return args[2], args[3:]


def test_the_pm2_file_runs_a_generation_server_per_gpu_behind_the_miner_and_a_gateway():
    done = load_pm2(NETUID="42", NETWORK="test", GENERATION_GPUS="0, 2,3", GATEWAY_URL="https://gw.example",
                    LOG_DIR="/var/log/text3d")
    assert done.returncode == 0, done.stderr
    apps = {app["name"]: app for app in json.loads(done.stdout)["apps"]}
    servers = [apps[f"text3d-generation-{gpu}"] for gpu in ("0", "2", "3")]
    assert set(apps) == {"text3d-llava", "text3d-validator", "text3d-miner", "text3d-gateway",
                         "text3d-generation-0", "text3d-generation-2", "text3d-generation-3"}
    assert [app["env"]["CUDA_VISIBLE_DEVICES"] for app in servers] == ["0", "2", "3"]
    ports = [app["args"][app["args"].index("--server.port") + 1] for app in servers]
    assert ports == ["8100", "8101", "8102"]
    miner = apps["text3d-miner"]["args"]
    assert miner[miner.index("--generation.endpoints") + 1] == ",".join(f"http://127.0.0.1:{p}" for p in ports)
    validator = apps["text3d-validator"]["args"]
    assert validator[validator.index("--gateway.url") + 1] == "https://gw.example"
    gateway = apps["text3d-gateway"]["args"]
    assert "--wallet.name" not in gateway and gateway[gateway.index("--gateway.port") + 1] == "8095"
    # every flag the file writes is one the command accepts (the real parser, not a list kept here)
    for name, app in apps.items():
        if name == "text3d-llava":
            continue
        role, flags = _role_and_flags(app["args"])
        settings = load_settings(role, flags)
        own = "/" + name.removeprefix("text3d-") if role == "generation-server" else ""  # one rotating file each
        assert str(settings.logging.dir) == "/var/log/text3d" + own, name
        assert settings.netuid == (1 if role == "generation-server" else 42), name  # a generator reads no chain
        assert app["stop_exit_codes"] == [78] and app["autorestart"], name
    assert load_settings("miner", _role_and_flags(miner)[1]).generation.endpoints == ",".join(
        f"http://127.0.0.1:{p}" for p in ports)


def test_the_pm2_file_without_gpus_keeps_generation_in_the_miner():
    apps = {app["name"]: app for app in json.loads(load_pm2(NETUID="42", NETWORK="test").stdout)["apps"]}
    assert not [name for name in apps if name.startswith("text3d-generation")]
    assert "--generation.endpoints" not in apps["text3d-miner"]["args"]
    assert "--gateway.url" not in apps["text3d-validator"]["args"]


@pytest.mark.parametrize(("env", "says"), [
    (dict(GENERATION_GPUS="0,0"), "is not a list of distinct GPU indices"),
    (dict(GENERATION_GPUS="cuda:0"), "is not a list of distinct GPU indices"),
    (dict(GENERATION_GPUS="0,1", GENERATION_PORT="8090"), "would take port 8091, which AXON_PORT binds"),
    (dict(GENERATION_GPUS="0,1,2,3", GENERATION_PORT="8093"), "would take port 8095, which GATEWAY_PORT binds"),
    (dict(GENERATION_GPUS="0,1", GENERATION_PORT="65535"), "would take port 65536"),
    (dict(GATEWAY_PORT="http"), "GATEWAY_PORT=http is not a port"),
    (dict(AXON_PORT="8080"), "AXON_PORT=8080 is the port LLAVA_PORT binds"),
    (dict(GATEWAY_PORT="8091"), "GATEWAY_PORT=8091 is the port AXON_PORT binds"),
])
def test_the_pm2_file_refuses_gpus_and_ports_it_cannot_run(env, says):
    done = load_pm2(NETUID="42", NETWORK="test", **env)
    assert done.returncode != 0 and says in done.stderr, done.stderr


def test_the_pm2_devnet_profile():
    assert "NETWORK=devnet needs DEVNET_DB" in load_pm2(NETWORK="devnet").stderr
    done = load_pm2(NETWORK="devnet", DEVNET_DB="chain.db", LOG_DIR="/var/log/text3d")
    apps = {app["name"]: app for app in json.loads(done.stdout)["apps"]}
    miner = apps["text3d-miner"]["args"]
    assert miner[miner.index("--subtensor.network") + 1] == "devnet" and miner[miner.index("--netuid") + 1] == "1"
    assert miner[miner.index("--devnet.db") + 1] == str(REPO / "chain.db")
    assert miner[miner.index("--logging.dir") + 1] == "/var/log/text3d"
    assert "is not a subnet number" in load_pm2(NETUID="0x", NETWORK="test").stderr


# -- logs ------------------------------------------------------------------------------------------


@pytest.fixture
def clean_root_logger():
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])


def test_each_line_once_without_colour_even_after_basic_config(tmp_path, clean_root_logger):
    logging.basicConfig()  # what a library might do first: a second stderr handler
    settings = load_settings("validator", ["--logging.dir", str(tmp_path)]).logging
    setup_logging(settings, role="validator")
    log = setup_logging(settings, role="validator")  # twice: still one set of handlers
    log.info("step 1: 2 miners (ok 2)")
    logging.getLogger("bittensor.client").warning("slow block")
    logging.getLogger("bittensor.client").info("chatter")  # below the SDK's level
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = (tmp_path / "validator.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "INFO    text3d.validator: step 1: 2 miners (ok 2)",
        "WARNING bittensor.client: slow block",
    ]
    assert not ANSI.search("\n".join(lines))
    stderr_handlers = [h for h in logging.getLogger().handlers
                       if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                       and h.stream in (sys.stderr, sys.__stderr__)]
    assert len(stderr_handlers) == 1


def test_json_lines_and_rotation(tmp_path, clean_root_logger):
    settings = load_settings("miner", ["--logging.json", "--logging.dir", str(tmp_path), "--logging.max_mb", "0.1",
                                       "--logging.backups", "2"]).logging
    log = setup_logging(settings, role="miner")
    for i in range(1500):
        log.info("request from 5Grwva prompt %010d: 200 draco 108439 bytes (1.25s)", i)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("generation failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["miner.log", "miner.log.1", "miner.log.2"]  # rotated, two backups kept
    assert all(p.stat().st_size <= 0.1 * 1024 * 1024 + 400 for p in tmp_path.iterdir())
    records = [json.loads(line) for line in (tmp_path / "miner.log").read_text().splitlines()]
    assert records[-1]["message"] == "generation failed" and "ValueError: boom" in records[-1]["exc"]
    assert {r["role"] for r in records} == {"miner"} and {r["logger"] for r in records} == {"text3d.miner"}
