"""The scoring core: render a mesh, caption its views, score it against a prompt in [0, 1].

Importable without bittensor. Heavy parts (torch, open_clip, sentence-transformers) load
when their modules are imported, so ``from reward import RewardConfig`` stays cheap.
"""

from text3d.reward.config import RewardConfig, RewardWeights
from text3d.reward.errors import CaptionerUnavailable, InvalidAssetError, ModelUnavailable, ValidatorFault
from text3d.reward.reporting.evidence import RewardReport, ViewReport
from text3d.reward.scoring_protocol import PROTOCOL, ScoringProtocol, check_protocol

__all__ = [
    "RewardConfig",
    "RewardWeights",
    "RewardReport",
    "ViewReport",
    "InvalidAssetError",
    "ValidatorFault",
    "CaptionerUnavailable",
    "ModelUnavailable",
    "PROTOCOL",
    "ScoringProtocol",
    "check_protocol",
]
