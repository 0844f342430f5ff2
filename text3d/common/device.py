"""Which torch device to run on, checked once: ``resolve_device("auto" | "cpu" | "cuda[:N]" | "mps")``.

The scoring core, the neurons and the CLI commands resolve ``--device`` here, so a device
that torch cannot use is one ``ConfigError`` sentence naming the flag -- not a traceback
from the first tensor moved there, nor a message blaming the model weights.
"""

from __future__ import annotations

from text3d.protocol.errors import ConfigError

__all__ = ["resolve_device", "cuda_unusable"]


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; an explicit device is checked.

    Raises ``ConfigError`` for ``cuda``/``cuda:N``/``mps`` when torch cannot use it here.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        reason = cuda_unusable(device)
        if reason:
            raise ConfigError(f"--device {device}: {reason}; use --device cpu (or auto), "
                              "or run `text3d doctor` to see what is missing")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: this machine has no usable Apple GPU; use --device cpu (or auto)")
    return device


def cuda_unusable(device: str = "cuda") -> str | None:
    """Why torch cannot run on ``device`` (``cuda`` or ``cuda:N``) here, or None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no working NVIDIA GPU "
                "(no GPU, no driver, or a driver too old for that CUDA)")
    index = device.partition(":")[2]
    if index and not index.isdigit():
        return "expected cuda or cuda:N"
    if index and int(index) >= torch.cuda.device_count():
        return f"there is no GPU {index} (torch sees {torch.cuda.device_count()})"
    return None
