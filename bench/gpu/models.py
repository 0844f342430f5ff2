"""The scoring models a part times: CLIP ViT-L-14 with random weights (or the tiny test CLIP), the OCR engine.

``clip_scorer`` wraps the model in the production ``text3d.reward.clip.ClipScorer`` (fp32, the
production batch size of ``RewardConfig``), so the timed code is the validator's. ViT-L-14 is
built by ``open_clip.create_model_and_transforms("ViT-L-14", pretrained=None)`` under the device
context (random init on the GPU: seconds instead of a minute of CPU init). ``ocr_engine`` is
the protocol's rapidocr engine, on onnxruntime's CUDA provider when this onnxruntime has one.
"""

from __future__ import annotations

from typing import Any

from bench.gpu.profile import Profile
from bench.gpu.sizes import reward_config

__all__ = ["clip_scorer", "ocr_engine"]


def clip_scorer(profile: Profile) -> tuple[Any, dict[str, Any]]:
    """``(ClipScorer, info)`` for the profile's CLIP on the profile's device."""
    import open_clip
    import torch

    from text3d.reward.clip import ClipScorer

    batch_size = reward_config(profile).clip_batch_size
    if profile.clip_model == "tiny":
        from text3d.reward.tiny_clip import ensure_tiny_clip

        name, weights = ensure_tiny_clip()
        scorer = ClipScorer.from_pretrained(name, weights, device=profile.device, batch_size=batch_size)
        return scorer, {"clip": name, "weights": "tiny test CLIP (random)"}
    with torch.device(profile.device):
        model, _, preprocess = open_clip.create_model_and_transforms(profile.clip_model, pretrained=None,
                                                                     device=profile.device)
    model.eval()
    scorer = ClipScorer(model, preprocess, open_clip.get_tokenizer(profile.clip_model), model_name=profile.clip_model,
                        pretrained="none (random weights)", device=profile.device, batch_size=batch_size)
    params = sum(p.numel() for p in model.parameters())
    return scorer, {"clip": profile.clip_model, "weights": "random (pretrained=None)", "params": params,
                    "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "batch_size": batch_size,
                    "open_clip": open_clip.__version__}


def ocr_engine() -> tuple[Any, dict[str, Any]]:
    """``(RapidOcrEngine, info)``: the CUDA provider when onnxruntime offers it, else the CPU one."""
    import onnxruntime

    from text3d.reward.defences.ocr import RapidOcrEngine

    available = onnxruntime.get_available_providers()
    use_cuda = "CUDAExecutionProvider" in available
    engine = RapidOcrEngine(use_cuda=use_cuda)
    return engine, {"onnxruntime": onnxruntime.__version__, "onnxruntime_device": onnxruntime.get_device(),
                    "available_providers": available, "asked_for_cuda": use_cuda}
