"""Errors raised by text-to-mesh generation (a miner-side concern; no scoring semantics).

Defined in ``text3d/protocol/errors.py`` (the one error tree); re-exported for the generation package::

    GenerationError
    ├── ModelNotAvailableError   weights missing / not downloadable (also a ConfigError)
    └── EmptyMeshError           the latent decoded to a field with no surface
"""

from text3d.protocol.errors import EmptyMeshError, GenerationError, ModelNotAvailableError

__all__ = ["GenerationError", "ModelNotAvailableError", "EmptyMeshError"]
