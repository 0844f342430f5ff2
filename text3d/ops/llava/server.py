"""One ``llama-server`` child process: its command line, start, readiness, stop."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from text3d.ops.llava.binary import LlavaSetupError

__all__ = ["LLAVA15_CHAT_TEMPLATE", "LlamaServer", "LlamaServerConfig"]

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
    gpu_layers: str | None = None  # -ngl: layers offloaded to the GPU (a number, "all" or "auto"); None: the server's default
    extra_args: tuple[str, ...] = field(default_factory=tuple)  # any other llama-server options, passed as given

    def argv(self) -> list[str]:
        context = self.context_tokens or 2048 * self.slots
        argv = [
            str(self.binary), "-m", str(self.model_path), "--mmproj", str(self.mmproj_path),
            "--host", self.host, "--port", str(self.port), "-np", str(self.slots), "-c", str(context),
        ]
        if self.threads:
            argv += ["-t", str(self.threads)]
        if self.gpu_layers is not None:
            argv += ["-ngl", str(self.gpu_layers)]
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
