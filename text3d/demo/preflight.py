"""Before spawning anything: are the real models on this machine?

``text3d demo --models real`` needs Shap-E, CLIP, all-mpnet-base-v2 and LLaVA-1.5 weights.
Finding out inside three child processes, a minute later, would bury the answer in logs;
this check reads only local caches (never the network) and names what is missing.
"""

from text3d.common.paths import cache_dir

__all__ = ["missing_real_models"]


def _hf_cached(repo_id: str) -> bool:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # LocalEntryNotFoundError and friends: not in the cache
        return False


def _clip_repo() -> str | None:
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import clip_hub_repo

    config = RewardConfig()
    return clip_hub_repo(config.clip_model, config.clip_pretrained)


def missing_real_models() -> list[str]:
    """One line per missing model, saying how to get it; empty when everything is cached."""
    missing = []
    if not _hf_cached("openai/shap-e"):
        missing.append("Shap-E (openai/shap-e): `hf download openai/shap-e` on a machine with internet access")
    clip_repo = _clip_repo()
    if clip_repo and not _hf_cached(clip_repo):
        missing.append(f"CLIP ({clip_repo}): `hf download {clip_repo}` with internet access")
    if not _hf_cached("sentence-transformers/all-mpnet-base-v2"):
        missing.append("all-mpnet-base-v2: `make models` (scripts/fetch_mpnet.sh) installs it offline")
    cache = cache_dir()
    llava_dir = cache / "models" / "llava-v1.5-7b"
    if not (llava_dir / "ggml-model-q4_k.gguf").is_file() or not (llava_dir / "mmproj-model-f16.gguf").is_file():
        missing.append("LLaVA-1.5 7B: `text3d llava --download 7b --no-serve`")
    return missing
