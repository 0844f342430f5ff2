"""The one error tree of text3d: whose fault is it?

Every decision a validator takes about a score starts with this question, so the answer
is a type, defined here and nowhere else::

    Text3dError
    ├── MinerFault                     the miner's answer is at fault: that miner scores 0 this step
    │   ├── MeshDecodeError            the bytes are not a valid, bounded, coloured mesh (also ValueError)
    │   ├── InvalidAssetError          decoded, but cannot be scored (renders empty, over budget)
    │   └── MinerTransportError        no usable HTTP answer: refused, late, oversize, encoded, malformed
    ├── ValidatorFault                 our own service, model or machine failed: NO miner's score changes
    │   ├── CaptionerUnavailable       captioning server down, timing out or answering junk
    │   ├── ModelUnavailable           CLIP / mpnet / Shap-E weights missing or failed to load
    │   ├── RendererUnavailable        no OpenGL context, a crashed renderer
    │   ├── ChainUnavailable           the chain (subtensor or the devnet database) is unreachable
    │   ├── NetworkUnavailable         our own network: every queried miner failed at the transport level
    │   └── ResourceExhausted          out of memory or disk on the validator (a MemoryError is ours)
    ├── ConfigError                    a bad flag, setting or file: one sentence naming what fixes it
    │   └── HotkeyNotRegistered        the wallet's hotkey holds no uid on the subnet (also LookupError)
    ├── GenerationError                a miner's own generator failed (miner-side, never scored)
    │   ├── ModelNotAvailableError     generator weights missing (also a ConfigError)
    │   └── EmptyMeshError             the latent decoded to a field with no surface
    └── GatewayError                   the organic gateway's own service failed: the caller may retry
        ├── StoreUnavailable           the jobs store (SQLite file, PostgreSQL server) cannot be used now
        └── StoreFull                  the results disk is full: new jobs are refused, stored results kept

Rules that follow from the tree:

- "The miner failed" and "we failed" never share a type: code that catches
  ``ValidatorFault`` leaves every score untouched.
- Foreign exceptions (httpx, bittensor, DracoPy, sqlite, OpenGL) are translated into
  this tree at the boundary where they are raised; nothing above the boundary sees them.
- ``str(error)`` is always one human-readable sentence, safe to log and to put in a report.

This module imports nothing: the scoring core, generation and the neurons all use it.
"""

from __future__ import annotations

__all__ = [
    "Text3dError",
    "MinerFault",
    "MeshDecodeError",
    "InvalidAssetError",
    "MinerTransportError",
    "ValidatorFault",
    "CaptionerUnavailable",
    "ModelUnavailable",
    "RendererUnavailable",
    "ChainUnavailable",
    "NetworkUnavailable",
    "ResourceExhausted",
    "ConfigError",
    "HotkeyNotRegistered",
    "GenerationError",
    "ModelNotAvailableError",
    "EmptyMeshError",
    "GatewayError",
    "StoreUnavailable",
    "StoreFull",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_CONFIG",
]

EXIT_OK = 0
EXIT_FAILURE = 1
"""Something failed at run time (a fault of ours, a failed check)."""
EXIT_USAGE = 2
"""Unknown or malformed command-line flags (argparse's own status); nothing else uses it."""
EXIT_CONFIG = 78
"""A configuration error (``EX_CONFIG`` of sysexits.h): restarting will not help, fix the setting."""


class Text3dError(Exception):
    """Base of every error text3d raises on purpose."""


# -- miner faults ------------------------------------------------------------------------


class MinerFault(Text3dError):
    """The miner's answer is at fault; that miner (and only it) scores 0 for the step."""


class MeshDecodeError(MinerFault, ValueError):
    """The bytes are not a valid, bounded, coloured triangle mesh.

    ``str(error)`` is the reason, e.g. ``"PLY declares 2147483648 vertices, the limit is 1000000"``.
    """


class InvalidAssetError(MinerFault):
    """The asset decoded but cannot be scored (renders empty, exceeds its render budget, ...)."""


class MinerTransportError(MinerFault):
    """The miner gave no usable HTTP answer.

    ``status`` is the short outcome recorded for the step: ``no_response`` (connect
    refused, reset, unreachable), ``late`` (the deadline passed before the last byte),
    ``oversize`` (the body outgrew its cap), ``encoded`` (a ``Content-Encoding`` was
    sent), ``refused`` (an HTTP error status) or ``malformed`` (headers or body that do
    not parse).
    """

    STATUSES = ("no_response", "late", "oversize", "encoded", "refused", "malformed")

    def __init__(self, status: str, message: str) -> None:
        if status not in self.STATUSES:
            raise ValueError(f"unknown transport status {status!r}")
        self.status = status
        super().__init__(message)


# -- validator faults --------------------------------------------------------------------


class ValidatorFault(Text3dError):
    """Our own service, model or machine failed; no miner's score may change because of it."""


class CaptionerUnavailable(ValidatorFault):
    """The captioning server is unreachable, too slow, or answered something unusable."""


class ModelUnavailable(ValidatorFault):
    """A model's weights are missing or failed to load; the message says how to get them."""


class RendererUnavailable(ValidatorFault):
    """The renderer could not draw at all (no OpenGL context, a crashed driver)."""


class ChainUnavailable(ValidatorFault):
    """The chain (a subtensor endpoint or the devnet database) cannot be reached."""


class NetworkUnavailable(ValidatorFault):
    """Our own network failed: every miner queried in a step failed at the transport level."""


class ResourceExhausted(ValidatorFault):
    """The validator ran out of memory or disk; never a miner's fault."""


# -- configuration -----------------------------------------------------------------------


class ConfigError(Text3dError, ValueError):
    """A fatal configuration problem; the message is one sentence saying what to change."""


class HotkeyNotRegistered(ConfigError, LookupError):
    """The wallet's hotkey holds no uid on the subnet: register it first."""


# -- generation (miner-side) -------------------------------------------------------------


class GenerationError(Text3dError):
    """Base of the generators' own errors (a miner-side concern; never a score)."""


class ModelNotAvailableError(GenerationError, ConfigError):
    """A generator's weights could not be loaded; ``str(error)`` says why and what to do."""

    def __init__(self, model: str, reason: str, *, is_local: bool) -> None:
        self.model = model
        self.reason = reason
        fetch = model if not is_local else "openai/shap-e"
        super().__init__(
            f"Shap-E model {model!r} is not available ({reason}); "
            + ("point to a folder written by save_pretrained, " if is_local else "")
            + f"download the weights once with internet access (`hf download {fetch}`), "
            "or use the offline test model with `--models tiny`."
        )


class EmptyMeshError(GenerationError):
    """The signed-distance field decoded from a latent has no zero crossing: there is no mesh."""


# -- the organic gateway ------------------------------------------------------------------


class GatewayError(Text3dError):
    """The gateway's own service failed (HTTP 503/507); never a miner's or a caller's fault."""


class StoreUnavailable(GatewayError):
    """The jobs store cannot be reached or failed; the request may be retried (HTTP 503)."""


class StoreFull(GatewayError):
    """The disk holding the results is full: new jobs are refused (HTTP 507), stored results are kept."""
