"""The captioner's model files: LLaVA-1.5 ggufs from the hub, or the tiny random pair built offline."""

from __future__ import annotations

import os
from pathlib import Path

from text3d.common.paths import cache_dir as text3d_cache_dir
from text3d.ops.llava.binary import LlavaSetupError, run_build_script

__all__ = ["LLAVA_REPOS", "LLAVA_QUANTS", "MMPROJ_FILE", "download_llava", "tiny_llava_models"]

LLAVA_REPOS = {"7b": "mys/ggml_llava-v1.5-7b", "13b": "mys/ggml_llava-v1.5-13b"}
LLAVA_QUANTS = ("q4_k", "q5_k", "f16")
MMPROJ_FILE = "mmproj-model-f16.gguf"


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
    out = Path(cache_dir) if cache_dir else text3d_cache_dir() / "models" / f"llava-v1.5-{size}"
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
    """The cached tiny random pair (``text3d.reward.tiny_llava.ensure_tiny_llava``) for ``binary``.

    The pair needs the LLaMA vocabulary the build script caches; for a binary that came
    from ``$LLAMA_SERVER`` or PATH the script fetches just that file (no build).
    """
    from text3d.reward.tiny_llava import default_vocab_path, ensure_tiny_llava

    if not default_vocab_path().is_file():
        run_build_script(llama_server=binary)
    try:
        return ensure_tiny_llava()
    except FileNotFoundError as exc:
        raise LlavaSetupError(str(exc)) from exc
