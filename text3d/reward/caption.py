"""Captioning: the ``Captioner`` protocol the RewardModel depends on, and its implementations.

A captioner turns rendered views into one caption per view. A captioner that cannot
answer raises ``text3d.reward.errors.CaptionerUnavailable`` -- never an empty caption, which
would score as a bad mesh and punish a miner for the validator's own fault.

Implementations: ``StaticCaptioner`` (fixed template, no server) here, and
``OpenAICaptioner`` (any OpenAI-compatible vision endpoint: llama.cpp ``llama-server``,
vLLM, Ollama) in ``text3d.reward.caption_client``, re-exported here with its ``CaptionerConfig``.
"""

from typing import Protocol, Sequence, runtime_checkable

from PIL import Image

__all__ = ["Captioner", "StaticCaptioner", "OpenAICaptioner", "CaptionerConfig"]


@runtime_checkable
class Captioner(Protocol):
    def caption(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        """One caption per image, in order. Raises CaptionerUnavailable on service failure."""


class StaticCaptioner:
    """Answers a fixed template per view, without a server.

    For benchmarks and unit tests that need captions but not a language model; the
    template may use ``{prompt}`` and ``{view}`` (the view index).
    """

    name = "static"

    def __init__(self, template: str = "a 3D model of {prompt}") -> None:
        self.template = template
        self.calls = 0

    def caption(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        self.calls += 1
        return [self.template.format(prompt=prompt, view=i) for i in range(len(images))]


from text3d.reward.caption_client import CaptionerConfig, OpenAICaptioner  # noqa: E402  (re-export)
