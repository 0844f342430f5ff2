"""``RewardModel``: render a mesh, caption its views, and score it against a prompt in [0, 1].

For one asset with views v = 1..V, prompt p, references r_1..r_R (all weights, ranges,
thresholds from ``RewardConfig``):

    CLIP, per view:  s_p = cos(img_v, p),  s_k = cos(img_v, reject_k)
                     prob_v = softmax(clip_logit_scale * [s_p, s_1..s_K])[0]
                     clip_v = 0 if max_k s_k >= s_p - clip_reject_margin else prob_v
    caption, per view (only with a captioner; c_v = caption of view v):
                     cap_v  = rescale(metric(c_v, p))          rescale: [low, high] -> [0, 1], clipped
                     ref_vj = rescale(metric(c_v, r_j))        (only with references)
    components:      clip = A(clip_v), caption = A(cap_v), reference = A(ref_vj)
                     A = the aggregation, kept in [0, 1] (see ``reward.metrics.aggregate_unit``)
    score          = sum_i w_i * component_i / sum_i w_i  over the components present

Without a captioner only the CLIP component is present (the report notes "scored
without captions (CLIP only)"); without references there is no reference component.

Batching: ``score_batch`` renders every mesh, then encodes all views of all meshes in
one CLIP image batch, all prompts and reject texts in one CLIP text batch (cached),
captions every asset in one captioner call when it offers ``caption_many``, and embeds
all captions in one mpnet batch. Prompt and reference embeddings are cached in memory
(``in_memory``) and on disk (``cache_dir``), keyed by model and text.

Faults: a mesh the renderer rejects (``InvalidAssetError``) scores 0 with the reason
in its report and the others are still scored. A captioner failure
(``CaptionerUnavailable``), missing model or renderer is the validator's fault and
propagates: it never becomes a zero.
"""

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import trimesh
from PIL import Image

from reward.caption import Captioner
from reward.clip import ClipScorer
from reward.config import Aggregation, Metric, RewardConfig
from reward.errors import CaptionerUnavailable, InvalidAssetError
from reward.metrics import aggregate, aggregate_unit, rescale, similarity_matrix
from reward.report import CLIP_ONLY_NOTE, RewardReport, ViewReport
from reward.text import TextEmbedder

__all__ = ["RewardModel", "Renderer"]


class Renderer(Protocol):
    def render(self, mesh: trimesh.Trimesh, n_views: int = 8, resolution: int = 512) -> list[Image.Image]:
        """``n_views`` RGB views; raises ``InvalidAssetError`` for a mesh that cannot be drawn."""


class RewardModel:
    """Scores meshes against prompts. The constructor only stores its parts.

    ``in_memory`` keeps prompt/reference text embeddings in memory between calls and
    ``cache_dir`` also keeps them on disk (captions are never cached: they are one-off).
    ``text`` may be None only without a captioner (CLIP-only scoring needs no mpnet).
    ``metric`` and ``aggregation`` override the config's (which default to ``cosine`` and
    ``mean``); ``renderer`` defaults to the process-wide moderngl renderer (``reward.render.get_renderer``),
    created on first use.
    """

    def __init__(
        self,
        clip: ClipScorer,
        text: TextEmbedder | None,
        captioner: Captioner | None = None,
        *,
        config: RewardConfig | None = None,
        in_memory: bool = True,
        metric: Metric | None = None,
        aggregation: Aggregation | None = None,
        cache_dir: Path | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        config = config or RewardConfig()
        updates = {k: v for k, v in {"metric": metric, "aggregation": aggregation}.items() if v is not None}
        self.config = RewardConfig.model_validate({**config.model_dump(), **updates}) if updates else config
        self.clip = clip
        self.text = text
        self.captioner = captioner
        self.in_memory = in_memory
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._renderer = renderer
        if captioner is not None and text is None:
            raise ValueError("a captioner needs a TextEmbedder to compare its captions with the prompt")
        weights = self.config.weights
        if weights.clip + (weights.caption if captioner is not None else 0.0) <= 0.0:
            raise ValueError("reward weights give every available component zero weight")

    @property
    def metric(self) -> str:
        return self.config.metric

    @property
    def aggregation(self) -> str:
        return self.config.aggregation

    @property
    def captioner_name(self) -> str | None:
        if self.captioner is None:
            return None
        return str(getattr(self.captioner, "name", type(self.captioner).__name__))

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            from reward.render import get_renderer

            self._renderer = get_renderer("moderngl")
        return self._renderer

    def models(self) -> dict[str, str]:
        return {"clip": self.clip.name, "text": self.text.model_id if self.text is not None else "none"}

    # -- public scoring ------------------------------------------------------------------

    def score(self, mesh: trimesh.Trimesh, prompt: str, references: Sequence[str] | None = None) -> RewardReport:
        """Score one mesh; see ``score_batch``."""
        return self.score_batch([mesh], [prompt], None if references is None else [references])[0]

    def score_batch(
        self,
        meshes: Sequence[trimesh.Trimesh],
        prompts: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
    ) -> list[RewardReport]:
        """One report per mesh, in order. ``references`` is one list of texts per mesh (or None).

        Raises ``CaptionerUnavailable`` / ``ModelUnavailable`` / ``RendererUnavailable``
        (validator faults); an invalid mesh only zeroes its own report.
        """
        if len(meshes) != len(prompts):
            raise ValueError(f"{len(meshes)} meshes but {len(prompts)} prompts")
        views: list[list[Image.Image] | str] = []
        for mesh in meshes:
            try:
                views.append(self.renderer.render(mesh, self.config.n_views, self.config.resolution_px))
            except InvalidAssetError as exc:
                views.append(str(exc) or "mesh cannot be rendered")
        return self.score_views_batch(views, prompts, references)

    def score_views_batch(
        self,
        views: Sequence[Sequence[Image.Image] | str],
        prompts: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
    ) -> list[RewardReport]:
        """Score already-rendered assets: each entry is its list of views, or a string saying
        why the asset is invalid (it then scores 0 with that reason)."""
        refs = [list(r) for r in references] if references is not None else [[] for _ in prompts]
        if not len(views) == len(prompts) == len(refs):
            raise ValueError("views, prompts and references must have one entry per asset")
        valid = [i for i, v in enumerate(views) if not isinstance(v, str) and len(v) > 0]
        reports: list[RewardReport | None] = [None] * len(views)
        for i, v in enumerate(views):
            if i not in valid:
                reason = v if isinstance(v, str) else "renderer returned no views"
                reports[i] = RewardReport.invalid(prompts[i], reason, references=refs[i], metric=self.metric,
                                                  aggregation=self.aggregation, captioner=self.captioner_name,
                                                  models=self.models())
        if valid:
            scored = self._score_valid([list(views[i]) for i in valid], [prompts[i] for i in valid],
                                       [refs[i] for i in valid])
            for i, report in zip(valid, scored):
                reports[i] = report
        return reports  # type: ignore[return-value]

    # -- internals -----------------------------------------------------------------------

    def _score_valid(
        self, views: list[list[Image.Image]], prompts: list[str], refs: list[list[str]]
    ) -> list[RewardReport]:
        cfg = self.config
        rejects = list(cfg.reject_texts)
        image_emb = self.clip.encode_images([img for asset in views for img in asset]).numpy()
        text_emb = self.clip.encode_texts(list(dict.fromkeys(prompts)) + rejects)
        prompt_row = {t: i for i, t in enumerate(dict.fromkeys(prompts))}
        text_emb = text_emb.numpy()
        reject_emb = text_emb[len(prompt_row):]

        captions = self._caption(views, prompts) if self.captioner is not None else None
        caption_sims = self._caption_similarities(captions, prompts, refs) if captions is not None else None

        reports, offset = [], 0
        for a, asset in enumerate(views):
            n = len(asset)
            imgs = image_emb[offset : offset + n]
            offset += n
            s_prompt = imgs @ text_emb[prompt_row[prompts[a]]]
            s_reject = imgs @ reject_emb.T  # [n, K]
            reports.append(self._report(a, asset, prompts[a], refs[a], s_prompt, s_reject, captions, caption_sims))
        return reports

    def _caption(self, views: list[list[Image.Image]], prompts: list[str]) -> list[list[str]]:
        caption_many = getattr(self.captioner, "caption_many", None)
        if callable(caption_many):
            captions = caption_many(views, prompts)
        else:
            captions = [self.captioner.caption(asset, prompt) for asset, prompt in zip(views, prompts)]
        if len(captions) != len(views) or any(len(c) != len(v) for c, v in zip(captions, views)):
            raise CaptionerUnavailable(f"captioner {self.captioner_name} returned the wrong number of captions")
        return [list(c) for c in captions]

    def _caption_similarities(
        self, captions: list[list[str]], prompts: list[str], refs: list[list[str]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per asset: (raw metric(caption_v, prompt) [V], raw metric(caption_v, ref_j) [V, R])."""
        metric = self.metric
        flat_captions = [c for asset in captions for c in asset]
        reference_texts = list(dict.fromkeys(list(prompts) + [r for rs in refs for r in rs]))
        if metric == "jaccard":  # token overlap: no embeddings needed
            cap_vec = np.zeros((len(flat_captions), 0))
            ref_vec = np.zeros((len(reference_texts), 0))
        else:
            ref_vec = self.text.embed(reference_texts, cache=self.in_memory, cache_dir=self.cache_dir)
            cap_vec = self.text.embed(flat_captions, cache=False)
        ref_row = {t: i for i, t in enumerate(reference_texts)}
        out, offset = [], 0
        for asset, prompt, rs in zip(captions, prompts, refs):
            n = len(asset)
            cv = cap_vec[offset : offset + n]
            offset += n
            to_prompt = similarity_matrix(metric, asset, cv, [prompt], ref_vec[[ref_row[prompt]]])[:, 0]
            rows = [ref_row[r] for r in rs]
            to_refs = similarity_matrix(metric, asset, cv, rs, ref_vec[rows]) if rs else np.zeros((n, 0))
            out.append((to_prompt, to_refs))
        return out

    def _report(
        self,
        a: int,
        images: list[Image.Image],
        prompt: str,
        refs: list[str],
        s_prompt: np.ndarray,
        s_reject: np.ndarray,
        captions: list[list[str]] | None,
        caption_sims: list[tuple[np.ndarray, np.ndarray]] | None,
    ) -> RewardReport:
        cfg, how = self.config, self.aggregation
        logits = cfg.clip_logit_scale * np.concatenate([s_prompt[:, None], s_reject], axis=1).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1)
        best_k = s_reject.argmax(axis=1)
        best_reject = s_reject[np.arange(len(images)), best_k]
        rejected = best_reject >= s_prompt - cfg.clip_reject_margin
        clip_view = np.where(rejected, 0.0, prob)

        components = {"clip": aggregate_unit(clip_view, how)}
        aggregates: dict[str, float | list[float]] = {"clip_similarity": aggregate(s_prompt, how)}
        notes: list[str] = []
        to_prompt = to_refs = None
        if caption_sims is not None:
            to_prompt, to_refs = caption_sims[a]
            low, high = cfg.similarity_range[self.metric]
            components["caption"] = aggregate_unit(rescale(to_prompt, low, high), how)
            aggregates["caption_similarity"] = aggregate(to_prompt, how)
            if refs:
                components["reference"] = aggregate_unit(rescale(to_refs, low, high), how)
                aggregates["reference_similarity"] = aggregate(to_refs, how)
        else:
            notes.append(CLIP_ONLY_NOTE)
        raw_weights = {name: float(getattr(cfg.weights, name)) for name in components}
        total = sum(raw_weights.values())
        weights = {name: w / total for name, w in raw_weights.items()}
        score = float(np.clip(sum(weights[n] * components[n] for n in components), 0.0, 1.0))

        views = [
            ViewReport(
                index=v,
                caption=None if captions is None else captions[a][v],
                clip_similarity=float(s_prompt[v]),
                clip_probability=float(prob[v]),
                best_reject=cfg.reject_texts[int(best_k[v])],
                best_reject_similarity=float(best_reject[v]),
                rejected=bool(rejected[v]),
                clip_score=float(clip_view[v]),
                caption_similarity=None if to_prompt is None else float(to_prompt[v]),
                reference_similarities=[] if to_refs is None else [float(x) for x in to_refs[v]],
            )
            for v in range(len(images))
        ]
        report = RewardReport(
            score=score, prompt=prompt, references=refs, components=components, weights=weights,
            aggregates=aggregates, metric=self.metric, aggregation=how, captioner=self.captioner_name,
            notes=notes, models=self.models(), views=views,
        )
        return report.attach_images(images)

    @classmethod
    def from_config(cls, config: RewardConfig | None = None, captioner: Captioner | None = None, *,
                    device: str = "auto", **kwargs: Any) -> "RewardModel":
        """Load the production CLIP and text model named in ``config`` (see ``reward.factory``)."""
        from reward.factory import build_reward_model

        return build_reward_model("real", captioner, device=device, config=config, **kwargs)
