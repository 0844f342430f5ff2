"""Whose fault is it? The one question a validator must answer before touching a score.

    Exception
    ├── protocol.MeshDecodeError          the miner's bytes are not a valid bounded mesh
    │                                     -> miner fault: that miner scores 0 this step
    └── RewardError                       (this module)
        ├── InvalidAssetError             decoded, but cannot be scored (e.g. renders empty)
        │                                 -> miner fault: score 0
        └── ValidatorFault                our own service or model failed
            ├── CaptionerUnavailable      captioning server down / timing out / answering junk
            ├── ModelUnavailable          CLIP / mpnet / Shap-E weights missing or failed to load
            └── ChainUnavailable          the chain (subtensor or devnet db) is unreachable
                                          -> never lowers any miner's score: the step is skipped

"The miner failed" and "we failed" never share a type: code that catches
``ValidatorFault`` must leave scores untouched.
"""

__all__ = [
    "RewardError",
    "InvalidAssetError",
    "ValidatorFault",
    "CaptionerUnavailable",
    "ModelUnavailable",
    "ChainUnavailable",
]


class RewardError(Exception):
    """Base of the scoring core's errors."""


class InvalidAssetError(RewardError):
    """The asset decoded but cannot be scored; the miner is at fault (score 0)."""


class ValidatorFault(RewardError):
    """Our own service or model failed; no miner's score may change because of it."""


class CaptionerUnavailable(ValidatorFault):
    """The captioning server is unreachable, too slow, or answered something unusable."""


class ModelUnavailable(ValidatorFault):
    """A model's weights are missing or failed to load; the message says how to get them."""


class ChainUnavailable(ValidatorFault):
    """The chain (a subtensor endpoint or the devnet database) cannot be reached."""
