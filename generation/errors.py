"""Errors raised by text-to-mesh generation (a miner-side concern; no scoring semantics).

    GenerationError
    ├── ModelNotAvailableError   weights missing / not downloadable; the message says how
    │                            to make them available
    └── EmptyMeshError           the latent decoded to a field with no surface
"""

__all__ = ["GenerationError", "ModelNotAvailableError", "EmptyMeshError"]


class GenerationError(Exception):
    """Base of the generation package's errors."""


class ModelNotAvailableError(GenerationError):
    """A Shap-E pipeline could not be loaded; ``str(error)`` is one sentence saying why and what to do."""

    def __init__(self, model: str, reason: str, *, is_local: bool) -> None:
        self.model = model
        self.reason = reason
        fetch = model if not is_local else "openai/shap-e"
        super().__init__(
            f"Shap-E model {model!r} is not available ({reason}); "
            + ("point to a folder written by save_pretrained, " if is_local else "")
            + f"download the weights once with internet access (`huggingface-cli download {fetch}`), "
            "or use the offline test model with `--model tiny`."
        )


class EmptyMeshError(GenerationError):
    """The signed-distance field decoded from a latent has no zero crossing: there is no mesh."""
