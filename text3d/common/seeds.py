"""The step seed and everything drawn from it: one recipe, so every validator draws the same.

A validator draws one secret ``step_seed`` per step (``STEP_SEED_BITS`` bits, OS-seeded
``random.Random``). Each thing the step derives from it (the secret camera rig, the
contrast prompts, a prompt source's own choices) gets its own generator, keyed by a
``purpose`` string, through ``step_digest``: SHA-256 of ``text3d/{purpose}/{step_seed}``.
Two purposes never share a stream, and adding a purpose never shifts another's draws.

The seeds miners receive are a different thing: integers in ``[0, MAX_SEED]``, the wire's
range (``text3d.protocol.wire.MAX_SEED``).
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["STEP_SEED_BITS", "draw_step_seed", "step_digest", "step_rng", "step_random"]

STEP_SEED_BITS = 63  # fits a signed 64-bit integer in JSON, SQLite and numpy alike


def draw_step_seed(rng: random.Random) -> int:
    """A fresh step seed in ``[0, 2**STEP_SEED_BITS)`` from the validator's own generator."""
    return rng.getrandbits(STEP_SEED_BITS)


def step_digest(step_seed: int, purpose: str) -> int:
    """128 bits that depend only on ``(step_seed, purpose)``."""
    digest = hashlib.sha256(f"text3d/{purpose}/{int(step_seed)}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def step_rng(step_seed: int, purpose: str) -> "np.random.Generator":
    """A numpy generator for ``(step_seed, purpose)``. PCG64's bit stream is stable across
    numpy releases; the Generator's methods may change between releases, which is one reason
    numpy is pinned: with the pin every validator draws the same."""
    import numpy as np

    return np.random.Generator(np.random.PCG64(step_digest(step_seed, purpose)))


def step_random(step_seed: int, purpose: str) -> random.Random:
    """A ``random.Random`` for ``(step_seed, purpose)`` (Mersenne Twister: stable across Python releases)."""
    return random.Random(step_digest(step_seed, purpose))
