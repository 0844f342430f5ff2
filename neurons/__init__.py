"""Thin entry points, as the subnet template has them: ``python -m neurons.miner`` and
``python -m neurons.validator``. Everything they run lives in the ``text3d`` package."""

__all__: list[str] = []  # entry points only: run them with python -m
