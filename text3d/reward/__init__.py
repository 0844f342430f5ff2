"""The scoring core: render a mesh, caption its views, score it against a prompt in [0, 1].

Importable without bittensor. Heavy parts (torch, open_clip, sentence-transformers) load
when their modules are imported, so ``from text3d.reward import RewardConfig`` stays cheap.

    scoring_protocol.py   the ONE pinned, versioned protocol: every number that decides a score
    config.py             ``RewardConfig``: the protocol's numbers plus operational settings
    model.py              ``RewardModel``: render, caption, embed, defend, then the formula
    observation.py        ``Observation``: what is measured of an asset before any prompt (observe, then judge)
    factory.py            ``build_reward_model``: which models a RewardModel is made of
    formula.py            the scoring formula, pure numpy and golden-tested
    metrics.py            similarity metrics and aggregations
    clip.py               ``ClipScorer``: CLIP image and text embeddings, contrastive CLIP
    text.py               ``TextEmbedder``: all-mpnet-base-v2 sentence embeddings
    caption.py            the ``Captioner`` protocol and the simple captioners
    caption_client.py     ``OpenAICaptioner``: any OpenAI-compatible vision server (llama-server, vLLM)
    errors.py             scoring's part of the one error tree (``text3d.protocol.errors``)
    tiny_clip.py          a tiny random-weight CLIP for tests and ``--models tiny``
    tiny_llava.py         a tiny random LLaVA-1.5-style GGUF pair for a real llama-server offline
    render/               the camera rig (canonical and secret) and the renderers
    defences/             OCR, caption guard, flatness, budget, fingerprints, the canary
    assets/               asset files from disk, read as hostile input
    reporting/            the evidence behind a score: JSON, HTML pages, terminal text
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
