"""The scoring core's errors: the part of ``text3d.protocol.errors`` (the one tree) that scoring raises.

Re-exported here so ``from text3d.reward.errors import ValidatorFault`` keeps reading naturally
in the scoring core; every class is defined in ``text3d/protocol/errors.py``.
"""

from text3d.protocol.errors import (
    CaptionerUnavailable,
    ChainUnavailable,
    InvalidAssetError,
    MinerFault,
    ModelUnavailable,
    RendererUnavailable,
    ResourceExhausted,
    Text3dError,
    ValidatorFault,
)

RewardError = Text3dError  # the seed's name for the base class

__all__ = [
    "RewardError",
    "MinerFault",
    "InvalidAssetError",
    "ValidatorFault",
    "CaptionerUnavailable",
    "ModelUnavailable",
    "RendererUnavailable",
    "ChainUnavailable",
    "ResourceExhausted",
]
