"""Where text3d keeps what it builds or downloads: one answer for every part of the project.

``$TEXT3D_CACHE`` when set (read at call time, so tests can point it elsewhere), else
``~/.cache/text3d``. Beneath it: ``models/`` (tiny test models, LLaVA ggufs), ``llama.cpp/``
(the built ``llama-server`` and the LLaMA vocabulary), ``web/`` (the 3D viewer's JavaScript).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "source_root"]

CACHE_ENV = "TEXT3D_CACHE"


def cache_dir() -> Path:
    """``$TEXT3D_CACHE`` or ``~/.cache/text3d`` (not created here)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "text3d")


def source_root() -> Path:
    """The folder that holds the ``text3d`` package: a checkout's root, or site-packages.

    Child processes get it on ``PYTHONPATH`` so they import the same code as their parent;
    files that live beside the package in a checkout (``min_compute.yml``, ``.git``) are
    looked up here and may be missing in an installed wheel.
    """
    return Path(__file__).resolve().parents[2]
