"""``RewardModel``: render a mesh, caption its views, and score it against a prompt in [0, 1].

The formula is ``text3d.reward.formula`` (pure, golden-tested); this module gathers its inputs
and writes the evidence. Two halves (``text3d.reward.observation``): steps 1-5 *observe* an
asset without a prompt (``observe_batch``), step 6 *judges* observations against prompts
(``score_observations``); ``score_batch`` does both, and asset libraries store what the
first half measured so that a new prompt costs only the second. Per batch:

1. the rig: the one passed in, or the step's secret rig drawn from ``step_seed``
   (``text3d.reward.render.camera.draw_secret_rig``), or the public canonical rig;
2. per mesh: the render budget (``text3d.reward.defences.budget``: an overdraw estimate BEFORE drawing;
   over budget or an absurd extent = ``InvalidAssetError``), the render under a hard time limit
   (``text3d.reward.render.watchdog``: ``render_timeout_s``; past it the asset is invalid), the flatness (``text3d.reward.defences.flatness``)
   and the fingerprint (``text3d.reward.defences.fingerprint``; attached as ``report.fingerprint``);
3. one CLIP image batch for every view;
4. OCR on every view when an OCR engine is set (``text3d.reward.defences.ocr``);
5. captions for every asset in one captioner call under ONE deadline for the batch
   (``caption_deadline_s`` from the first caption call, shared by any re-scoring; past
   it: ``CaptionerUnavailable``) and one mpnet batch for the captions;
6. one CLIP text batch for prompts, distractors (passed in, else drawn from the pool by
   (prompt, step seed)) and junk texts (cached), the caption guard
   (``text3d.reward.defences.caption_guard``), the flatness factor from the thickness, the formula.

Faults. A mesh the renderer or the budget rejects (``InvalidAssetError``) scores 0 with
the reason and the others are still scored. Anything else unexpected raised while
scoring a batch is blamed per asset: the batch's assets are re-scored one by one, and
only an asset that still fails scores 0 as invalid, with the exception in its reason; if
every asset of a batch of two or more fails, the fault is ours (``ValidatorFault``). A
captioner failure (``CaptionerUnavailable``), a missing model, renderer or OCR engine is
the validator's fault and propagates: it never becomes a zero. ``MemoryError`` becomes
``ResourceExhausted``.

Size: one class for one pipeline (gather inputs -> ``text3d.reward.formula`` -> report), kept
together so the order of the stages and the fault rules read in one place -- now in two
halves, observe and judge, that must stay in step with ``score_batch``; the pieces (budget,
flatness, fingerprint, OCR, guard, formula, the observation) are their own modules.

Costs: every report carries ``timings_s`` -- budget, render, flatness, fingerprint, OCR
per asset; CLIP, captions and text embedding of the batch split evenly over its assets.
"""

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import trimesh
from PIL import Image

from text3d.reward.defences.budget import estimate_overdraw
from text3d.reward.render.camera import CameraRig, canonical_rig, draw_secret_rig
from text3d.reward.render.watchdog import render_within
from text3d.reward.caption import Captioner
from text3d.reward.defences.caption_guard import caption_flag
from text3d.reward.clip import ClipScorer, draw_distractors
from text3d.reward.config import Aggregation, Metric, RewardConfig
from text3d.reward.errors import CaptionerUnavailable, InvalidAssetError, ResourceExhausted, ValidatorFault
from text3d.reward.defences.fingerprint import fingerprint as make_fingerprint
from text3d.reward.defences.flatness import flatness_factor, silhouette_fractions, thickness
from text3d.reward.formula import AssetInputs, asset_score
from text3d.reward.metrics import similarity_matrix
from text3d.reward.observation import Observation
from text3d.reward.defences.ocr import OcrEngine, ocr_views
from text3d.reward.reporting.evidence import CLIP_ONLY_NOTE, RewardReport, ViewReport
from text3d.reward.scoring_protocol import CaptionSpec
from text3d.reward.text import TextEmbedder

__all__ = ["RewardModel", "Renderer", "Observation"]

log = logging.getLogger(__name__)


class Renderer(Protocol):
    def render(
        self, mesh: trimesh.Trimesh, n_views: int = 8, resolution: int = 512, rig: CameraRig | None = None
    ) -> list[Image.Image]:
        """``n_views`` RGB views under ``rig``; raises ``InvalidAssetError`` for a mesh that cannot be drawn."""


class _Deadline:
    """One caption deadline for a whole batch: it starts when the first caption call does
    (rendering time does not eat into it) and is shared by the one-by-one re-scoring."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end: float | None = None

    def remaining(self) -> float:
        if self._end is None:
            self._end = time.monotonic() + self.seconds
        return self._end - time.monotonic()


class RewardModel:
    """Scores meshes against prompts. The constructor only stores its parts.

    ``in_memory`` keeps prompt/reference text embeddings in memory between calls and
    ``cache_dir`` also keeps them on disk (captions are never cached: they are one-off).
    ``text`` may be None only without a captioner (CLIP-only scoring needs no mpnet).
    ``metric`` and ``aggregation`` override the config's; ``renderer`` defaults to the
    process-wide moderngl renderer, created on first use; ``ocr`` (e.g.
    ``text3d.reward.defences.ocr.RapidOcrEngine()``) turns the OCR guard on; ``fingerprints`` computes
    each asset's copycat fingerprint (``report.fingerprint``).
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
        ocr: OcrEngine | None = None,
        fingerprints: bool = True,
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
        self._owns_renderer = renderer is None
        self.ocr = ocr
        self.fingerprints = fingerprints
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
            from text3d.reward.render.views import get_renderer

            self._renderer = get_renderer("moderngl")
        return self._renderer

    def _abandon(self, renderer: Renderer) -> None:
        """A render hung past its limit: drop that renderer (its stuck thread keeps it); the
        next asset gets a fresh one unless the renderer was given to us."""
        from text3d.reward.render.views import discard_renderer

        discard_renderer(renderer)  # type: ignore[arg-type]
        if self._owns_renderer:
            self._renderer = None

    def models(self) -> dict[str, str]:
        if getattr(self, "_models", None) is None:  # the parts never change after construction
            self._models = {"clip": self.clip.name, "text": self.text.model_id if self.text is not None else "none"}
        return dict(self._models)

    def protocol_digest(self) -> str:
        """Digest of the protocol this model scores with (the captioner's instruction included
        when it exposes a ``config`` with ``instruction`` and ``max_tokens``)."""
        cap = getattr(self.captioner, "config", None)
        caption = None
        if cap is not None and hasattr(cap, "instruction") and hasattr(cap, "max_tokens"):
            caption = CaptionSpec(instruction=cap.instruction, max_tokens=cap.max_tokens,
                                  temperature=getattr(cap, "temperature", 0.0), seed=getattr(cap, "seed", 0),
                                  include_prompt=getattr(cap, "include_prompt", False))
        key = (caption, id(self.config))
        if getattr(self, "_digest_key", None) != key:
            self._digest_key, self._digest = key, self.config.to_protocol(caption).digest()
        return self._digest

    def rig_for(self, step_seed: int | None = None, rig: CameraRig | None = None) -> CameraRig:
        """``rig``, else the secret rig of ``step_seed``, else the canonical rig of the config."""
        if rig is not None:
            return rig
        if step_seed is not None:
            return draw_secret_rig(self.config.rig, step_seed)
        return canonical_rig(self.config.rig)

    def distractors_for(self, prompt: str, step_seed: int | None) -> list[str]:
        """The config pool's ``n_distractors`` prompts for (prompt, step seed); seed None counts as 0."""
        cfg = self.config
        return draw_distractors(prompt, 0 if step_seed is None else step_seed, cfg.distractor_pool, cfg.n_distractors)

    def judged_texts(self, prompt: str, step_seed: int | None = None,
                     distractors: Sequence[str] | None = None) -> list[str]:
        """The CLIP texts judging ``prompt`` encodes, in the batch it encodes them in: the
        prompt first, then its contrast set. A caller that needs the prompt's embedding
        before judging (a library's first pass) encodes this list, so the cached embedding
        is the one judging computes (a batch of other texts can round differently)."""
        contrast = self._contrast_lists([prompt], step_seed, None if distractors is None else [distractors])[0]
        return list(dict.fromkeys([prompt] + self._contrast(contrast)))

    # -- public scoring ------------------------------------------------------------------

    def score(self, mesh: trimesh.Trimesh, prompt: str, references: Sequence[str] | None = None,
              **kwargs: Any) -> RewardReport:
        """Score one mesh; see ``score_batch``."""
        return self.score_batch([mesh], [prompt], None if references is None else [references], **kwargs)[0]

    def score_batch(
        self,
        meshes: Sequence[trimesh.Trimesh],
        prompts: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
        *,
        rig: CameraRig | None = None,
        step_seed: int | None = None,
        distractors: Sequence[Sequence[str]] | None = None,
    ) -> list[RewardReport]:
        """One report per mesh, in order.

        ``references``: one list of texts per mesh (or None). ``rig``: the cameras (default:
        the secret rig of ``step_seed``, else the canonical rig). ``distractors``: one list
        of contrast prompts per mesh (default: drawn from the config's pool by (prompt,
        step seed)). Deterministic for the same inputs, rig and models.

        Raises ``CaptionerUnavailable`` / ``ModelUnavailable`` / ``RendererUnavailable`` /
        ``ResourceExhausted`` (validator faults); an invalid mesh only zeroes its own report.
        """
        if len(meshes) != len(prompts):
            raise ValueError(f"{len(meshes)} meshes but {len(prompts)} prompts")
        refs = [list(r) for r in references] if references is not None else [[] for _ in prompts]
        contrast = self._contrast_lists(prompts, step_seed, distractors)
        if len(refs) != len(prompts):
            raise ValueError("references must have one entry per mesh")
        rig = self.rig_for(step_seed, rig)
        deadline = _Deadline(self.config.caption_deadline_s)
        try:
            return self._score_meshes(list(meshes), list(prompts), refs, contrast, rig, deadline)
        except ValidatorFault:
            raise
        except MemoryError as exc:
            raise ResourceExhausted("the validator ran out of memory while scoring a batch") from exc
        except Exception as exc:  # unexpected: find the asset to blame, score the others
            log.warning("scoring a batch of %d raised %s: %s; re-scoring one by one", len(meshes),
                        type(exc).__name__, exc)
            return self._blame(list(meshes), list(prompts), refs, contrast, rig, deadline)

    def score_views_batch(
        self,
        views: Sequence[Sequence[Image.Image] | str],
        prompts: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
        *,
        step_seed: int | None = None,
        distractors: Sequence[Sequence[str]] | None = None,
        rig: CameraRig | None = None,
    ) -> list[RewardReport]:
        """Score already-rendered assets: each entry is its list of views, or a string saying
        why the asset is invalid (it then scores 0 with that reason). ``rig`` is only recorded."""
        refs = [list(r) for r in references] if references is not None else [[] for _ in prompts]
        if not len(views) == len(prompts) == len(refs):
            raise ValueError("views, prompts and references must have one entry per asset")
        observations = [Observation(reason=v) if isinstance(v, str) else Observation(images=list(v)) for v in views]
        contrast = self._contrast_lists(prompts, step_seed, distractors)
        deadline = _Deadline(self.config.caption_deadline_s)
        self._measure(observations, list(prompts), deadline)
        return self._judge(observations, list(prompts), refs, contrast, rig)

    def observe_batch(
        self,
        meshes: Sequence[trimesh.Trimesh],
        *,
        rig: CameraRig | None = None,
        step_seed: int | None = None,
    ) -> list[Observation]:
        """The prompt-free half of ``score_batch`` (``text3d.reward.observation``): one
        ``Observation`` per mesh -- views, defences, CLIP image embeddings, captions and their
        text embeddings -- for ``score_observations`` to judge against any prompt later.

        A mesh the budget or the renderer rejects comes back with ``reason`` set. Unlike
        ``score_batch`` nothing is re-tried one by one: an unexpected exception propagates
        (callers that index many assets observe one asset at a time to blame it). Captions
        are asked without a prompt; a captioner configured to include the prompt is refused
        (``ValueError``), since its captions would belong to one prompt only.
        """
        self._check_prompt_free_captions()
        rig = self.rig_for(step_seed, rig)
        deadline = _Deadline(self.config.caption_deadline_s)
        try:
            return self._observe(list(meshes), [""] * len(meshes), rig, deadline)
        except MemoryError as exc:
            raise ResourceExhausted("the validator ran out of memory while observing a batch") from exc

    def score_observations(
        self,
        observations: Sequence[Observation],
        prompts: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
        *,
        rig: CameraRig | None = None,
        step_seed: int | None = None,
        distractors: Sequence[Sequence[str]] | None = None,
        evidence: bool = True,
    ) -> list[RewardReport]:
        """Judge observations (``observe_batch``'s, or a library's) against prompts: the same
        reports ``score_batch`` gives for the same meshes, prompts, rig and models, without
        rendering or captioning. ``rig`` is the rig they were observed under (recorded in
        the reports; default as in ``score_batch``).

        ``evidence=False`` leaves out the per-view evidence (``report.views`` is empty): the
        same formula and the same score, about a third of the cost, for ranking many
        candidates before the few that are shown are judged again with their evidence."""
        if len(observations) != len(prompts):
            raise ValueError(f"{len(observations)} observations but {len(prompts)} prompts")
        refs = [list(r) for r in references] if references is not None else [[] for _ in prompts]
        if len(refs) != len(prompts):
            raise ValueError("references must have one entry per observation")
        contrast = self._contrast_lists(prompts, step_seed, distractors)
        return self._judge(list(observations), list(prompts), refs, contrast, self.rig_for(step_seed, rig),
                           evidence=evidence)

    # -- internals -----------------------------------------------------------------------

    def _contrast_lists(self, prompts: Sequence[str], step_seed: int | None,
                        distractors: Sequence[Sequence[str]] | None) -> list[list[str]]:
        """Per asset, its distractor prompts (without the prompt itself or repeats); the junk
        texts are appended where the contrast set is built (``_contrast``)."""
        if distractors is not None:
            if len(distractors) != len(prompts):
                raise ValueError("distractors must have one list per mesh")
            lists = [[d for d in dict.fromkeys(ds) if d.strip().lower() != p.strip().lower()]
                     for ds, p in zip(distractors, prompts)]
        else:
            drawn: dict[str, list[str]] = {}  # one draw per distinct prompt
            for p in prompts:
                if p not in drawn:
                    drawn[p] = self.distractors_for(p, step_seed)
            lists = [list(drawn[p]) for p in prompts]
        return lists

    def _contrast(self, distractors: list[str]) -> list[str]:
        return list(distractors) + [r for r in self.config.reject_texts if r not in distractors]

    def _blame(self, meshes, prompts, refs, contrast, rig, deadline) -> list[RewardReport]:
        reports: list[RewardReport] = []
        failures = 0
        for i, mesh in enumerate(meshes):
            try:
                reports += self._score_meshes([mesh], [prompts[i]], [refs[i]], [contrast[i]], rig, deadline)
            except ValidatorFault:
                raise
            except MemoryError as exc:
                raise ResourceExhausted("the validator ran out of memory while scoring an asset") from exc
            except Exception as exc:
                failures += 1
                reason = f"scoring this asset raised {type(exc).__name__}: {str(exc)[:200]}"
                reports.append(self._invalid(prompts[i], refs[i], reason, rig))
        if failures == len(meshes) and len(meshes) > 1:
            raise ValidatorFault(
                f"every one of {len(meshes)} assets failed to score ({reports[0].invalid_reason}); the fault is the "
                "validator's: check the renderer and models (the canary)"
            )
        return reports

    def _check_prompt_free_captions(self) -> None:
        cap = getattr(self.captioner, "config", None)
        if cap is not None and getattr(cap, "include_prompt", False):
            raise ValueError("the captioner is configured to include the prompt (include_prompt): its captions "
                             "belong to one prompt and cannot be observed before one is given")

    def _invalid(self, prompt: str, refs: list[str], reason: str, rig: CameraRig | None,
                 item: Observation | None = None) -> RewardReport:
        report = RewardReport.invalid(prompt, reason, references=refs, metric=self.metric,
                                      aggregation=self.aggregation, captioner=self.captioner_name,
                                      models=self.models())
        report.rig = rig.to_dict() if rig is not None else None
        report.protocol_digest = self.protocol_digest()
        if item is not None:
            report.timings_s = dict(item.timings)
            report.defences = dict(item.defences)
        return report

    def _score_meshes(self, meshes, prompts, refs, contrast, rig: CameraRig, deadline) -> list[RewardReport]:
        return self._judge(self._observe(meshes, prompts, rig, deadline), prompts, refs, contrast, rig)

    def _observe(self, meshes, prompts, rig: CameraRig, deadline) -> list[Observation]:
        """Render and measure every mesh (budget, views, thickness, silhouettes, fingerprint),
        then the batch's embeddings, OCR and captions (``_measure``)."""
        cfg = self.config
        n_views = rig.n_views or cfg.n_views
        rig_key = hashlib.sha256(json.dumps(rig.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
        observations = []
        for mesh in meshes:
            item = Observation()
            observations.append(item)
            t0 = time.perf_counter()
            estimate = estimate_overdraw(mesh, rig, n_views, cfg.resolution_px, cfg.max_overdraw,
                                         cfg.max_edge_overdraw)
            item.timings["budget"] = time.perf_counter() - t0
            for key, value in (("overdraw", estimate.overdraw), ("edge_overdraw", estimate.edge_overdraw)):
                item.defences[key] = round(float(value), 4) if np.isfinite(value) else None
            if estimate.invalid_reason is not None:
                item.reason = estimate.invalid_reason
                continue
            over = estimate.over_budget(cfg.max_overdraw, cfg.max_edge_overdraw)
            if over is not None:
                item.reason = over
                continue
            t0 = time.perf_counter()
            renderer = self.renderer
            try:
                item.images = list(render_within(lambda: renderer.render(mesh, n_views, cfg.resolution_px, rig),
                                                 cfg.render_timeout_s, lambda: self._abandon(renderer)))
            except InvalidAssetError as exc:
                item.reason = str(exc) or "mesh cannot be rendered"
                continue
            finally:
                item.timings["render"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            item.thickness = thickness(mesh)
            item.defences["thickness"] = round(item.thickness, 6)
            item.defences["silhouette"] = [round(x, 4) for x in silhouette_fractions(item.images, rig.background_rgb)]
            item.timings["flatness"] = time.perf_counter() - t0
            if self.fingerprints:
                t0 = time.perf_counter()
                item.fingerprint = make_fingerprint(mesh, item.images, rig_key,
                                                    body_reach=cfg.fingerprint_body_reach)
                item.defences["fingerprint"] = item.fingerprint.digest()
                item.timings["fingerprint"] = time.perf_counter() - t0
        self._measure(observations, prompts, deadline)
        return observations

    def _measure(self, observations: list[Observation], prompts: list[str], deadline) -> None:
        """Fill in the valid observations' CLIP image embeddings, OCR, captions and caption
        embeddings, batched over the assets (``prompts`` reach the captioner only)."""
        cfg = self.config
        valid = [i for i, item in enumerate(observations) if item.reason is None]
        for i in list(valid):
            if not observations[i].images:
                observations[i].reason = "renderer returned no views"
                valid.remove(i)
        if not valid:
            return
        items = [observations[i] for i in valid]
        views = [item.images for item in items]
        t0 = time.perf_counter()
        image_emb = self.clip.encode_images([img for asset in views for img in asset]).numpy()
        clip_s = (time.perf_counter() - t0) / len(items)
        offset = 0
        for item in items:
            n = len(item.images)
            item.image_embeddings = image_emb[offset : offset + n]
            offset += n
            item.timings["clip"] = clip_s
        if self.ocr is not None:
            for item in items:
                t0 = time.perf_counter()
                item.ocr = ocr_views(self.ocr, item.images, max_chars=cfg.ocr_max_chars,
                                     min_confidence=cfg.ocr_min_confidence)
                item.timings["ocr"] = time.perf_counter() - t0
        if self.captioner is not None:
            t0 = time.perf_counter()
            captions = self._caption(views, [prompts[i] for i in valid], deadline)
            caption_s = (time.perf_counter() - t0) / len(items)
            t0 = time.perf_counter()
            flat = [c for asset in captions for c in asset]
            vectors = None if self.metric == "jaccard" else self.text.embed(flat, cache=False)
            text_s = (time.perf_counter() - t0) / len(items)
            offset = 0
            for item, asset in zip(items, captions):
                item.captions = list(asset)
                item.captioner = self.captioner_name
                if vectors is not None:
                    item.caption_embeddings = vectors[offset : offset + len(asset)]
                offset += len(asset)
                item.timings["captions"] = caption_s
                item.timings["text"] = text_s

    def _judge(self, observations: list[Observation], prompts, refs, contrast, rig,
               evidence: bool = True) -> list[RewardReport]:
        """Reports for observations: the invalid ones with their reason, the rest scored."""
        reports: list[RewardReport | None] = [None] * len(observations)
        valid = []
        for i, item in enumerate(observations):
            if item.reason is not None or item.image_embeddings is None or not len(item.image_embeddings):
                reports[i] = self._invalid(prompts[i], refs[i], item.reason or "renderer returned no views", rig, item)
            else:
                valid.append(i)
        if valid:
            scored = self._judge_valid([observations[i] for i in valid], [prompts[i] for i in valid],
                                       [refs[i] for i in valid], [contrast[i] for i in valid], rig, evidence)
            for i, report in zip(valid, scored):
                reports[i] = report
        return reports  # type: ignore[return-value]

    def _judge_valid(self, items: list[Observation], prompts, refs, contrast, rig,
                     evidence: bool = True) -> list[RewardReport]:
        n_assets = len(items)
        rig_dict = rig.to_dict() if rig is not None else None
        t0 = time.perf_counter()
        contrast = [self._contrast(ds) for ds in contrast]
        texts = list(dict.fromkeys(list(prompts) + [t for c in contrast for t in c]))
        text_row = {t: i for i, t in enumerate(texts)}
        text_emb = self.clip.encode_texts(texts).numpy()
        clip_s = (time.perf_counter() - t0) / n_assets

        captioned = [item.captions is not None for item in items]
        if any(captioned) and not all(captioned):
            raise ValueError("a batch mixes observations with and without captions")
        captions = caption_sims = None
        judge_s = {"clip": clip_s}
        if all(captioned):
            captions = [item.captions for item in items]
            t0 = time.perf_counter()
            caption_sims = self._caption_similarities(items, prompts, refs)
            judge_s["text"] = (time.perf_counter() - t0) / n_assets

        shared = {"weights": self.config.weights.model_dump(), "models": self.models(),
                  "digest": self.protocol_digest(), "distractors": {}}  # the same for every asset of the batch
        contrast_emb: dict[tuple[str, ...], np.ndarray] = {}  # one matrix per distinct contrast set
        reports = []
        for a, item in enumerate(items):
            imgs = item.image_embeddings
            key = tuple(contrast[a])
            if key not in contrast_emb:
                contrast_emb[key] = text_emb[[text_row[t] for t in key]].T  # the layout scoring always used
            s_prompt = imgs @ text_emb[text_row[prompts[a]]]
            s_contrast = imgs @ contrast_emb[key]
            reports.append(self._report(a, item, prompts[a], refs[a], contrast[a], s_prompt, s_contrast,
                                        captions, caption_sims, item.ocr, rig_dict, judge_s, evidence, shared))
        return reports

    def _caption(self, views: list[list[Image.Image]], prompts: list[str], deadline: _Deadline) -> list[list[str]]:
        """All captions of the batch, or ``CaptionerUnavailable`` once ``deadline`` passes."""
        remaining = deadline.remaining()
        n_views = sum(len(v) for v in views)
        if remaining <= 0:
            raise CaptionerUnavailable(
                f"captioner {self.captioner_name}: the batch deadline of {self.config.caption_deadline_s:g} s passed "
                f"before {n_views} views were captioned"
            )
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                caption_many = getattr(self.captioner, "caption_many", None)
                if callable(caption_many):
                    box["captions"] = caption_many(views, prompts)
                else:
                    box["captions"] = [self.captioner.caption(asset, prompt) for asset, prompt in zip(views, prompts)]
            except BaseException as exc:  # handed to the scoring thread below
                box["error"] = exc

        worker = threading.Thread(target=run, name="text3d-caption", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():  # the hung call finishes (or times out) on its own thread; nobody waits for it
            raise CaptionerUnavailable(
                f"captioner {self.captioner_name} did not caption {n_views} views within the batch deadline of "
                f"{self.config.caption_deadline_s:g} s"
            )
        if "error" in box:
            raise box["error"]
        captions = box["captions"]
        if len(captions) != len(views) or any(len(c) != len(v) for c, v in zip(captions, views)):
            raise CaptionerUnavailable(f"captioner {self.captioner_name} returned the wrong number of captions")
        return [list(c) for c in captions]

    def _caption_similarities(
        self, items: list[Observation], prompts: list[str], refs: list[list[str]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per asset: (raw metric(caption_v, prompt) [V], raw metric(caption_v, ref_j) [V, R]).

        Caption embeddings come from the observations (embedded once, when captioned); the
        prompt and references are embedded here (cached)."""
        metric = self.metric
        reference_texts = list(dict.fromkeys(list(prompts) + [r for rs in refs for r in rs]))
        if metric == "jaccard":  # token overlap: no embeddings needed
            ref_vec = np.zeros((len(reference_texts), 0))
        else:
            if self.text is None:
                raise ValueError("scoring captions needs a TextEmbedder (the model has none)")
            ref_vec = self.text.embed(reference_texts, cache=self.in_memory, cache_dir=self.cache_dir)
        ref_row = {t: i for i, t in enumerate(reference_texts)}
        out = []
        for item, prompt, rs in zip(items, prompts, refs):
            asset = item.captions
            n = len(asset)
            if metric == "jaccard":
                cv = np.zeros((n, 0))
            elif item.caption_embeddings is not None:
                cv = item.caption_embeddings
            else:  # captioned where jaccard needed no vectors: embed them now (text only)
                cv = self.text.embed(asset, cache=False)
            to_prompt = similarity_matrix(metric, asset, cv, [prompt], ref_vec[[ref_row[prompt]]])[:, 0]
            rows = [ref_row[r] for r in rs]
            to_refs = similarity_matrix(metric, asset, cv, rs, ref_vec[rows]) if rs else np.zeros((n, 0))
            out.append((to_prompt, to_refs))
        return out

    def _report(self, a, item: Observation, prompt, refs, contrast, s_prompt, s_contrast, captions, caption_sims,
                ocr, rig_dict, judge_s: dict[str, float], evidence: bool = True,
                shared: dict[str, Any] | None = None) -> RewardReport:
        """One valid asset's report. ``judge_s``: this asset's share of the judging time per
        stage, added to the observation's own timings (which stay untouched: an observation
        may be judged again for another prompt). ``evidence``: build the per-view reports.
        ``shared``: what is the same for the whole batch (weights, model names, digest)."""
        cfg, how = self.config, self.aggregation
        shared = shared or {"weights": cfg.weights.model_dump(), "models": self.models(),
                            "digest": self.protocol_digest()}
        n = len(item.image_embeddings)
        flatness = 1.0 if item.thickness is None else flatness_factor(item.thickness, cfg.min_thickness)
        junk = list(cfg.reject_texts)
        flags = [None] * n
        to_prompt = to_refs = None
        if caption_sims is not None:
            to_prompt, to_refs = caption_sims[a]
            flags = [caption_flag(c, prompt) for c in captions[a]]
        ocr_rejected = np.array([v.rejected for v in ocr]) if ocr is not None else None
        result = asset_score(
            AssetInputs(s_prompt=s_prompt, s_contrast=s_contrast, caption_to_prompt=to_prompt,
                        caption_to_refs=to_refs if refs else None, ocr_rejected=ocr_rejected,
                        caption_flagged=np.array([f is not None for f in flags]), flatness=flatness),
            weights=shared["weights"], temperature=cfg.clip_temperature, margin=cfg.clip_margin,
            similarity_range=cfg.similarity_range[self.metric], aggregation=how,
        )
        notes: list[str] = []
        if caption_sims is None:
            notes.append(CLIP_ONLY_NOTE)
        if ocr is not None and ocr_rejected.any():
            notes.append(f"OCR read legible text on {int(ocr_rejected.sum())} of {n} views: they count 0")
        if any(flags):
            notes.append(f"{sum(f is not None for f in flags)} of {n} captions read text off the asset or quote the "
                         "prompt: their caption score is 0")
        if flatness < 1.0:
            notes.append(f"the shape is flat (thickness {item.defences.get('thickness', 0):.3f}): score x "
                         f"{flatness:.2f}")
        defences = dict(item.defences)
        if item.thickness is not None:
            defences["flatness_factor"] = round(flatness, 6)
        if ocr is not None:
            defences["ocr_rejected_views"] = int(ocr_rejected.sum())
        defences["caption_flags"] = sum(f is not None for f in flags)
        views = self._view_reports(a, n, junk, contrast, s_prompt, s_contrast, result, captions, to_prompt, to_refs,
                                   ocr, flags) if evidence else []
        fields = dict(
            score=result.score, prompt=prompt, references=refs, components=result.components,
            weights=result.weights, aggregates=result.aggregates, metric=self.metric, aggregation=how,
            captioner=item.captioner or self.captioner_name, notes=notes, models=dict(shared["models"]), views=views,
            rig=rig_dict, distractors=list(_distractors(shared, contrast, cfg.reject_texts)),
            defences=defences, timings_s=_timings(item.timings, judge_s), protocol_digest=shared["digest"],
        )
        # without evidence the report is ranked and dropped: our own numbers, no validation needed
        report = RewardReport(**fields) if evidence else RewardReport.model_construct(**fields)
        return report.attach_images(item.images or []).attach_fingerprint(item.fingerprint)

    @staticmethod
    def _view_reports(a, n, junk, contrast, s_prompt, s_contrast, result, captions, to_prompt, to_refs, ocr,
                      flags) -> list[ViewReport]:
        """Each view's evidence: its numbers, the junk text and contrast text nearest to it."""
        junk_cols = [contrast.index(t) for t in junk]
        s_junk = s_contrast[:, junk_cols]
        best_k = s_junk.argmax(axis=1)
        best_junk = s_junk[np.arange(n), best_k]
        best_d = s_contrast.argmax(axis=1)
        return [
            ViewReport(
                index=v,
                caption=None if captions is None else captions[a][v],
                clip_similarity=float(s_prompt[v]),
                clip_probability=float(result.clip_contrastive[v]),
                best_reject=junk[int(best_k[v])],
                best_reject_similarity=float(best_junk[v]),
                rejected=bool(best_junk[v] >= s_prompt[v]),
                clip_score=float(result.clip_view[v]),
                caption_similarity=None if to_prompt is None else float(to_prompt[v]),
                reference_similarities=[] if to_refs is None else [float(x) for x in to_refs[v]],
                best_distractor=contrast[int(best_d[v])],
                best_distractor_similarity=float(s_contrast[v, int(best_d[v])]),
                ocr_text=None if ocr is None else ocr[v].text,
                ocr_rejected=False if ocr is None else bool(ocr[v].rejected),
                caption_flag=flags[v],
                caption_score=None if result.caption_view is None else float(result.caption_view[v]),
            )
            for v in range(n)
        ]


def _distractors(shared: dict[str, Any], contrast: list[str], junk: Sequence[str]) -> tuple[str, ...]:
    """The contrast set without the junk texts, once per distinct contrast set of a batch."""
    key = tuple(contrast)
    cache = shared.setdefault("distractors", {})
    if key not in cache:
        cache[key] = tuple(t for t in contrast if t not in junk)
    return cache[key]


def _timings(observed: dict[str, float], judged: dict[str, float]) -> dict[str, float]:
    out = dict(observed)
    for stage, seconds in judged.items():
        out[stage] = out.get(stage, 0.0) + seconds
    return {k: round(v, 6) for k, v in out.items()}
