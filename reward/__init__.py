"""The scoring core: render a mesh, caption its views, score it against a prompt in [0, 1].

Importable without bittensor. Heavy parts (torch, open_clip, sentence-transformers) load
when their modules are imported, so ``from reward import RewardConfig`` stays cheap.
"""

from reward.config import RewardConfig, RewardWeights
from reward.errors import CaptionerUnavailable, InvalidAssetError, ModelUnavailable, ValidatorFault
from reward.report import RewardReport, ViewReport
from reward.scoring_protocol import PROTOCOL, ScoringProtocol, check_protocol

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
