"""``text3d llava``: run a local LLaVA captioning server (llama.cpp ``llama-server``).

    text3d llava --models tiny                 # tiny random pair, offline; for tests/demos
    text3d llava --download 7b                 # fetch LLaVA-1.5 7B gguf + mmproj, then serve
    text3d llava --models 13b -np 8 -c 16384   # serve a previously downloaded 13B
    text3d llava --model-path m.gguf --mmproj p.gguf

The binary is, in order: ``$LLAMA_SERVER``, ``llama-server`` on PATH, else the build
of ``scripts/build_llama_server.sh`` (once per machine; a no-op when cached). The server
listens on 127.0.0.1 and serves the OpenAI-compatible API that
``reward.caption.OpenAICaptioner`` speaks; match the captioner's ``concurrency`` to
``-np``. The command stays in the foreground until interrupted.

Exit status: 0 when stopped, 78 when the server cannot be set up (no binary, a missing or
wrong model: restarting will not help, so pm2 stops), 1 when the server failed at run time.

``LlamaServer`` (the process manager) and ``find_llama_server`` / ``download_llava`` are
also used by the integration tests and ``bench/caption.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from protocol.errors import EXIT_CONFIG

__all__ = ["LlamaServer", "LlamaServerConfig", "LLAVA15_CHAT_TEMPLATE", "find_llama_server", "download_llava", "tiny_llava_models", "free_port", "add_parser", "run"]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_llama_server.sh"
LLAVA_REPOS = {"7b": "mys/ggml_llava-v1.5-7b", "13b": "mys/ggml_llava-v1.5-13b"}
LLAVA_QUANTS = ("q4_k", "q5_k", "f16")
MMPROJ_FILE = "mmproj-model-f16.gguf"
# LLaVA-1.5 (Vicuna) conversation format as a jinja template. The GGUFs carry no template,
# so llama-server would fall back to chatml; its built-in "vicuna" template is no better:
# it drops the image marker and every image request fails with 400 "Failed to tokenize prompt".
LLAVA15_CHAT_TEMPLATE = (
    "{{ bos_token }}A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
    "{% for message in messages %}{% if message['role'] == 'user' %} USER: {{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %} ASSISTANT: {{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)


class LlavaSetupError(RuntimeError):
    """The server, binary or model could not be had; the message says what to do."""


def _cache_root() -> Path:
    return Path(os.environ.get("TEXT3D_CACHE") or Path.home() / ".cache" / "text3d")


def find_llama_server(build: bool = True) -> Path:
    """A ``llama-server`` binary: ``$LLAMA_SERVER``, PATH, else the build script's.

    The build (``scripts/build_llama_server.sh``, ~15-20 min on 2 cores) is skipped when
    cached; it also caches the LLaMA vocabulary the tiny model needs. ``build=False``
    only looks (env, PATH, cache). Raises LlavaSetupError when no binary can be had.
    """
    env = os.environ.get("LLAMA_SERVER")
    if env:
        if os.access(env, os.X_OK):
            return Path(env)
        raise LlavaSetupError(f"LLAMA_SERVER={env} is not an executable file")
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    if not build:
        cached = _cache_root() / "llama.cpp" / "bin" / "llama-server"
        if os.access(cached, os.X_OK):
            return cached
        raise LlavaSetupError("no llama-server binary found; run scripts/build_llama_server.sh or set LLAMA_SERVER")
    return _run_build_script()


def _run_build_script(llama_server: Path | None = None) -> Path:
    """Run ``scripts/build_llama_server.sh`` (a no-op when cached); with ``llama_server``
    it only fetches the LLaMA vocabulary beside that existing binary."""
    if not BUILD_SCRIPT.is_file():
        raise LlavaSetupError(f"{BUILD_SCRIPT} is missing; set LLAMA_SERVER to a llama-server binary")
    env_vars = {**os.environ, "TEXT3D_CACHE": str(_cache_root())}
    if llama_server is not None:
        env_vars["LLAMA_SERVER"] = str(llama_server)
    pip = Path(sys.executable).with_name("pip")
    if pip.exists():
        env_vars.setdefault("PIP", str(pip))
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, env=env_vars, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise LlavaSetupError(f"{BUILD_SCRIPT.name} failed (exit {done.returncode}); see the output above")
    return Path(lines[-1])


def download_llava(size: str, quant: str = "q4_k", cache_dir: Path | None = None) -> tuple[Path, Path]:
    """The production LLaVA-1.5 pair ``(model_path, mmproj_path)``, downloaded once.

    Files come from ``mys/ggml_llava-v1.5-{7b,13b}`` on the Hugging Face hub into
    ``$TEXT3D_CACHE/models/llava-v1.5-{size}/``. Raises LlavaSetupError (fast, with one
    clear sentence) when they are not cached and the hub cannot be reached.
    """
    if size not in LLAVA_REPOS:
        raise LlavaSetupError(f"unknown LLaVA size {size!r}; choose one of {', '.join(LLAVA_REPOS)}")
    if quant not in LLAVA_QUANTS:
        raise LlavaSetupError(f"unknown quantisation {quant!r}; choose one of {', '.join(LLAVA_QUANTS)}")
    out = Path(cache_dir) if cache_dir else _cache_root() / "models" / f"llava-v1.5-{size}"
    wanted = [f"ggml-model-{quant}.gguf", MMPROJ_FILE]
    paths = [out / name for name in wanted]
    if all(p.is_file() for p in paths):
        return paths[0], paths[1]
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise LlavaSetupError(
            f"LLaVA-1.5 {size} is not cached in {out} and HF_HUB_OFFLINE is set; "
            "unset HF_HUB_OFFLINE on a machine with internet access to download it"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        for name in wanted:
            hf_hub_download(repo_id=LLAVA_REPOS[size], filename=name, local_dir=out)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise LlavaSetupError(
            f"could not download {LLAVA_REPOS[size]} into {out} ({type(exc).__name__}); "
            "check the machine's internet access, or pass --model-path/--mmproj for files you already have"
        ) from exc
    return paths[0], paths[1]


def tiny_llava_models(binary: Path) -> tuple[Path, Path]:
    """The cached tiny random pair (``reward.tiny_llava.ensure_tiny_llava``) for ``binary``.

    The pair needs the LLaMA vocabulary the build script caches; for a binary that came
    from ``$LLAMA_SERVER`` or PATH the script fetches just that file (no build).
    """
    from reward.tiny_llava import default_vocab_path, ensure_tiny_llava

    if not default_vocab_path().is_file():
        _run_build_script(llama_server=binary)
    try:
        return ensure_tiny_llava()
    except FileNotFoundError as exc:
        raise LlavaSetupError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LlamaServerConfig:
    """How to start one ``llama-server``. ``context_tokens`` is shared by all slots."""

    binary: Path
    model_path: Path
    mmproj_path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    slots: int = 4
    context_tokens: int | None = None  # default: 2048 per slot (LLaVA-1.5: 576 image tokens + text)
    threads: int | None = None
    chat_template: str | None = LLAVA15_CHAT_TEMPLATE  # None: the model's own (or llama-server's chatml)
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def argv(self) -> list[str]:
        context = self.context_tokens or 2048 * self.slots
        argv = [
            str(self.binary), "-m", str(self.model_path), "--mmproj", str(self.mmproj_path),
            "--host", self.host, "--port", str(self.port), "-np", str(self.slots), "-c", str(context),
        ]
        if self.threads:
            argv += ["-t", str(self.threads)]
        if self.chat_template:
            argv += ["--jinja", "--chat-template", self.chat_template]
        return argv + list(self.extra_args)


class LlamaServer:
    """One ``llama-server`` child process: start, wait until ready, stop.

    Output goes to ``log_path`` (a temp file by default) so a failed start can quote it.
    """

    def __init__(self, config: LlamaServerConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> "LlamaServer":
        if self._process is not None:
            raise RuntimeError("server already started")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            self.config.argv(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    def log_tail(self, n_lines: int = 15) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n_lines:])

    def wait_until_ready(self, timeout_s: float = 120.0, poll_s: float = 0.1) -> None:
        """Poll ``GET /health`` until 200; raises LlavaSetupError if the process exits or time runs out."""
        import httpx

        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                if self._process is None or self._process.poll() is not None:
                    code = None if self._process is None else self._process.returncode
                    raise LlavaSetupError(f"llama-server exited with code {code} while loading:\n{self.log_tail()}")
                try:
                    if client.get(self.base_url + "/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise LlavaSetupError(f"llama-server not ready after {timeout_s:.0f} s:\n{self.log_tail()}")
                time.sleep(poll_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LlamaServer":
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("llava", help="run a local LLaVA captioning server (llama.cpp llama-server)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=["tiny", *LLAVA_REPOS], default=None,
                        help="tiny: random test pair (offline); 7b/13b: downloaded LLaVA-1.5 (default 7b)")
    parser.add_argument("--download", choices=list(LLAVA_REPOS), default=None,
                        help="download LLaVA-1.5 of this size first (needs internet once), then serve it")
    parser.add_argument("--quant", choices=LLAVA_QUANTS, default="q4_k", help="language model quantisation")
    parser.add_argument("--model-path", dest="model", type=Path, metavar="GGUF",
                        help="serve this language model gguf file (with --mmproj)")
    parser.add_argument("--mmproj", type=Path, metavar="GGUF", help="serve this vision projector gguf (with --model-path)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("-np", "--slots", type=int, default=4, help="parallel slots (match captioner.concurrency)")
    parser.add_argument("-c", "--context", dest="context_tokens", type=int, default=None,
                        help="total context tokens shared by all slots (default 2048 per slot)")
    parser.add_argument("-t", "--threads", type=int, default=None)
    parser.add_argument("--chat-template", choices=["llava-1.5", "model"], default="llava-1.5",
                        help="llava-1.5: the Vicuna USER/ASSISTANT format (default); model: the gguf's own template")
    parser.add_argument("--ready-timeout-s", type=float, default=300.0)
    parser.add_argument("--no-serve", action="store_true", help="only fetch the binary and models, print their paths")
    parser.set_defaults(run=run)


def _resolve_models(args: argparse.Namespace, binary: Path | None = None) -> tuple[Path, Path]:
    if args.model or args.mmproj:
        if not (args.model and args.mmproj):
            raise LlavaSetupError("--model-path and --mmproj go together")
        for path in (args.model, args.mmproj):
            if not path.is_file():
                raise LlavaSetupError(f"{path} does not exist")
        return args.model, args.mmproj
    if args.download:
        if args.models not in (None, args.download):
            raise LlavaSetupError(f"--download {args.download} contradicts --models {args.models}")
        return download_llava(args.download, args.quant)
    models = args.models or "7b"
    if models == "tiny":
        return tiny_llava_models(binary or find_llama_server())
    try:
        return download_llava(models, args.quant)
    except LlavaSetupError as exc:
        raise LlavaSetupError(f"{exc} (or use --models tiny for the offline test model)") from exc


def run(args: argparse.Namespace) -> int:
    try:
        if args.download or args.models in LLAVA_REPOS:  # fail fast on downloads before any build
            model_path, mmproj_path = _resolve_models(args)
            binary = find_llama_server()
        else:
            binary = find_llama_server()
            model_path, mmproj_path = _resolve_models(args, binary)
        if args.no_serve:
            print(f"llama-server: {binary}\nmodel: {model_path}\nmmproj: {mmproj_path}")
            return 0
        config = LlamaServerConfig(binary=binary, model_path=model_path, mmproj_path=mmproj_path, host=args.host,
                                   port=args.port, slots=args.slots, context_tokens=args.context_tokens,
                                   threads=args.threads,
                                   chat_template=LLAVA15_CHAT_TEMPLATE if args.chat_template == "llava-1.5" else None)
        server = LlamaServer(config).start()
    except LlavaSetupError as exc:  # no binary, no model, bad paths: restarting cannot fix it (pm2 stops on 78)
        print(f"text3d llava: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = {"now": False}

    def _on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server.wait_until_ready(args.ready_timeout_s)
        print(f"llava server ready at {server.base_url} (log: {server.log_path}); "
              f"captioner.base_url={server.base_url} captioner.concurrency={args.slots}", flush=True)
        while not stop["now"] and server.is_running():
            time.sleep(0.5)
        if not stop["now"]:
            print(f"text3d llava: llama-server exited unexpectedly:\n{server.log_tail()}", file=sys.stderr)
            return 1
        return 0
    except LlavaSetupError as exc:
        print(f"text3d llava: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
