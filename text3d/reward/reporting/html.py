"""A self-contained HTML page that shows why each asset scored what it did.

Layout, top to bottom: the title, the prompt and the models used (with a banner when
they are the tiny random test models, and one naming any off-protocol option), the counts
(files, scored, invalid, not scored: the same numbers the terminal and the JSON give), a
summary table (rank, file, score, components, colours, and notes saying why a score
dropped: invalid with the reason, flatness, OCR, the caption guard; invalid assets are
ranked, score 0, last, as everywhere else), one section per scored asset (its notes; for the best ``max_meshes`` assets an
interactive 3D viewer of the mesh itself; its views in a regular grid, each a link to the
full-size image, with per-view CLIP numbers and captions), the files that could not be
scored, each with its reason, and last a legend that says what every number means and
what counts as good (below the assets, so they are what a reader sees first). Every
number appears once. A caller may open the page with its own section (``preamble_html``:
the validator's answers table) and style.

The viewer is ``<model-viewer>`` (``text3d.web.viewer``): its script is copied beside the
page (or ``viewer_src`` names where it already is), the mesh is written as ``mesh.glb``
in the asset's folder (linked) and embedded as a ``data:`` URI, because a browser refuses
to fetch a file next to a page opened from ``file://``. Only meshes up to
``max_mesh_bytes`` are kept, and only for the top ``max_meshes`` assets (a mesh that drops
out of the top is deleted): a page never grows with the number of assets scored.

``HtmlReport`` writes incrementally: ``add`` saves an asset's views as PNGs at once (and
drops them from memory), ``write`` (re)writes ``index.html`` atomically, so a page is
always complete for what has been scored so far. ``write_html_report`` does it all in one
call (the validator's step pages use it). Image paths are relative (the folder can be
moved or served as is); every piece of text is HTML-escaped (prompts, captions and file
names come from miners, models and strangers); nothing is written through a link planted
in the output folder (``text3d.reward.assets.safe_fs``).
"""

import html
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from text3d.reward.reporting.evidence import RewardReport, score_notes
from text3d.reward.assets.safe_fs import write_inside
from text3d.web.viewer import VIEWER_MISSING_NOTE, copy_viewer_beside, glb_data_uri, viewer_element, viewer_script_tag

__all__ = ["HtmlReport", "write_html_report", "is_tiny_models", "viewer_glb"]

TINY_BANNER = (
    "These numbers come from the tiny random-weight test models (--models tiny). They exercise the "
    "pipeline and say nothing about the assets: score with --models real for meaningful numbers."
)

_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1400px; color: #222;
       line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1.4em; margin: 0.2em 0 0.4em 0; }
h2 { font-size: 1.15em; margin: 1.4em 0 0.5em 0; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin: 0 0 0.4em 0; }
.banner { background: #fff3cd; border: 2px solid #d39e00; border-radius: 6px; padding: 0.6em 0.9em; font-weight: 600; }
.meta { margin: 0.3em 0; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25em 0.45em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.total { font-weight: 700; }
th { overflow-wrap: normal; }
table.summary col.rank { width: 3.4em; } table.summary col.score { width: 4.6em; }
table.summary col.comp { width: 5.6em; } table.summary col.colours { width: 8.5em; }
table.summary col.notes { width: 24%; } table.summary td.notes { color: #8a4b00; font-size: 0.9em; }
.counts { font-weight: 600; }
@media (max-width: 700px) { table.summary { font-size: 0.85em; } table.summary col.comp { width: 4.9em; } }
dl.legend { display: grid; grid-template-columns: minmax(7em, 12em) 1fr; gap: 0.3em 1em; margin: 0; }
dl.legend dt { font-weight: 600; } dl.legend dd { margin: 0; }
.asset { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em; margin-bottom: 1.2em; }
.views { display: grid; grid-template-columns: repeat(var(--cols, 4), minmax(0, 1fr)); gap: 0.6em; max-width: 960px; }
@media (max-width: 700px) { .views { grid-template-columns: repeat(var(--cols-narrow, 2), minmax(0, 1fr)); } }
figure { margin: 0; min-width: 0; font-size: 0.8em; }
figure img { width: 100%; height: auto; aspect-ratio: 1 / 1; border: 1px solid #eee; display: block; }
figure a { display: block; cursor: zoom-in; }
.mesh { margin: 0 0 0.8em 0; }
model-viewer.viewer { width: 100%; max-width: 560px; height: min(70vw, 420px); display: block; background: #f3f3f3;
                      border: 1px solid #ddd; border-radius: 4px; }
.files { font-size: 0.9em; margin: 0.3em 0; }
q { font-style: italic; }
.rejected { color: #b00; }
.note { color: #555; font-style: italic; margin: 0.2em 0; }
.invalid td.reason { color: #b00; }
"""

_LEGEND = """<dl class="legend">
<dt>score</dt><dd>The asset's score in [0, 1]: the weighted mean of the components present ({weights}), times a
flatness factor that is 1 unless the shape is thinner than the protocol's minimum. Higher is better; the components
below say what their values mean, and the score reads the same way: about 0.5 or less is no evidence that the asset
depicts the prompt, near 1 is strong evidence. Compare scores for the same prompt and models only.</dd>
<dt>clip</dt><dd>Mean over the views of CLIP's preference for the prompt over each contrast text (other prompts drawn
for this run and junk texts such as “an empty white image”): per pair, a sigmoid of the gap between the view's
similarity to the prompt and to the text. 0.5 is a coin toss; near 1 means CLIP clearly prefers the prompt. A view on
which OCR reads legible text counts 0.</dd>
<dt>caption</dt><dd>How close the captions of the views are to the prompt ({metric} similarity of their
embeddings), rescaled so that {low} counts 0 (unrelated) and {high} counts 1 (a paraphrase). Above 0.5 the captioner
describes what the prompt asks for. A caption that reads text off the asset or quotes the prompt counts 0. Absent
when scored without a captioner (CLIP only).</dd>
<dt>reference</dt><dd>The same as caption, against the reference descriptions; absent without references.</dd>
<dt>colours</dt><dd>What coloured the asset: vertex colours, face colours, a texture (base-colour texture through
the mesh's UVs), a material colour, or none (drawn with the neutral grey default material).</dd>
<dt>per view: CLIP</dt><dd>The raw cosine similarity of the view and the prompt in CLIP space (production ViT-L-14:
about 0.15 for unrelated pictures, 0.25 to 0.35 for a good match; the tiny test model's values mean nothing).</dd>
<dt>per view: p</dt><dd>The view's clip value (the preference described above) before the OCR rule.</dd>
<dt>per view: junk</dt><dd>Shown when a junk text matches the view at least as well as the prompt: evidence of an
empty or shapeless render, already priced into p.</dd>
<dt>per view: caption</dt><dd>The view's caption and its raw {metric} similarity to the prompt, before rescaling.</dd>
</dl>"""


def is_tiny_models(models: dict[str, str] | None) -> bool:
    """Whether a report's models are the tiny random test models."""
    return any("tiny" in str(value).lower() for value in (models or {}).values())


def _slug(name: str, index: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "asset"
    return f"{index:03d}_{cleaned[:60]}"


_RANK = "\x00rank\x00"  # placeholder in a stored article, replaced when the page is laid out


_MESH = "\x00mesh\x00"  # placeholder for the 3D viewer, filled in (or not) when the page is laid out
_MIB = 1 << 20


@dataclass(frozen=True)
class _Row:
    """What the page needs of one scored asset: a few numbers and its article, already
    rendered to HTML (so the report holds kilobytes per asset, not its RewardReport)."""

    name: str
    score: float
    components: dict[str, float]
    colours: str | None
    anchor: str
    article: str
    mesh_path: str | None = None  # relative path of its kept GLB
    poster: str | None = None  # its first view, shown until the mesh loads
    notes: tuple[str, ...] = ()  # why its score dropped (text3d.reward.reporting.evidence.score_notes)
    invalid: bool = False  # ranked with score 0, no article (its reason is in notes)


@dataclass
class HtmlReport:
    """An HTML report folder written as assets arrive (see the module docstring).

    ``model_set`` ("tiny" / "real"), when given, decides the tiny-model banner; otherwise
    the reports' model names do. ``off_protocol`` names options that make the scores differ
    from what validators compute (shown in a banner). Holds about 3 KB per asset between writes.
    """

    out_dir: Path
    title: str
    model_set: str | None = None
    off_protocol: tuple[str, ...] = ()
    preamble_html: str = ""  # trusted HTML (the caller escapes what it holds) after the title and context
    extra_style: str = ""
    viewer_src: str | None = None  # where the viewer script is, relative to the page; None: copied beside it;
    #                                "": none (no viewer, no mesh kept)
    max_meshes: int = 5
    max_mesh_bytes: int = 16 * _MIB  # Shap-E at grid 128: ~5 MB; embedded, so 4/3 of it again
    _rows: list[_Row] = field(default_factory=list)
    _unscored: list[tuple[str, str]] = field(default_factory=list)
    _first: RewardReport | None = None  # the page's context (prompt, models, weights), without images
    _count: int = 0

    def add(self, name: str, report: RewardReport, colours: str | None = None, *, glb: bytes | None = None,
            source: Path | None = None) -> None:
        """Add one asset: its views are written now; an invalid one is ranked (score 0) with
        its reason in the notes column.

        ``glb``: the mesh as GLB, kept for the viewer when it is small enough and the asset
        ranks in the top ``max_meshes``; ``source``: the scored file, linked from the page.
        """
        index = self._count
        self._count += 1
        if not report.is_valid:
            notes = tuple(note.replace(f"cannot load {name}: ", "cannot load: ", 1) for note in score_notes(report))
            self._rows.append(_Row(name, 0.0, {}, colours, f"asset-{index}", "", notes=notes, invalid=True))
            return
        if self._first is None:
            self._first = RewardReport.model_validate(report.model_dump())  # no images, no fingerprint
        slug = _slug(name, index)
        paths = []
        for v, image in enumerate(report.images):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            relative = f"{slug}/view_{v:02d}.png"
            write_inside(self.out_dir, relative, buffer.getvalue())
            paths.append(relative)
        anchor = f"asset-{index}"
        links = []
        if source is not None:
            href = os.path.relpath(Path(source).absolute(), Path(self.out_dir).absolute())
            links.append(f'<a href="{html.escape(Path(href).as_posix(), quote=True)}">the file</a>')
        row = _Row(name, float(report.score), dict(report.components), colours, anchor,
                   _article(name, report, paths, anchor, links), poster=paths[0] if paths else None,
                   notes=tuple(score_notes(report)))
        if glb is not None and 0 < len(glb) <= self.max_mesh_bytes and self.wants_mesh(row.score):
            relative = f"{slug}/mesh.glb"
            write_inside(self.out_dir, relative, glb)
            row = replace(row, mesh_path=relative)
        self._rows.append(row)
        self._drop_meshes_out_of_the_top()

    def wants_mesh(self, score: float) -> bool:
        """Whether an asset scoring ``score`` would enter the top ``max_meshes`` of those with a mesh
        (callers ask before they spend time writing a GLB)."""
        if self.max_meshes <= 0 or self.viewer_src == "":
            return False
        kept = sorted((r.score for r in self._rows if r.mesh_path), reverse=True)
        return len(kept) < self.max_meshes or score > kept[self.max_meshes - 1]

    def _drop_meshes_out_of_the_top(self) -> None:
        with_mesh = sorted((i for i, r in enumerate(self._rows) if r.mesh_path), key=lambda i: -self._rows[i].score)
        for i in with_mesh[self.max_meshes:]:
            try:
                (Path(self.out_dir) / str(self._rows[i].mesh_path)).unlink()
            except OSError:
                pass
            self._rows[i] = replace(self._rows[i], mesh_path=None)

    def add_unscored(self, name: str, reason: str) -> None:
        """List a file (or a miner) that was not scored, with the reason."""
        self._unscored.append((name, reason))

    def write(self) -> Path:
        """(Re)write ``index.html`` atomically; returns its path."""
        write_inside(self.out_dir, "index.html", self.page())
        return Path(self.out_dir) / "index.html"

    # -- the page ------------------------------------------------------------------------

    def page(self) -> str:
        e = html.escape
        ranked = sorted(self._rows, key=lambda row: (-row.score, row.invalid))
        first = self._first
        meshes = {row.anchor: self._viewer(row) for row in ranked if row.mesh_path}
        meshes = {anchor: element for anchor, element in meshes.items() if element}
        script = ""
        viewer_note = ""
        if meshes:
            src = self.viewer_src or copy_viewer_beside(Path(self.out_dir))
            if src:
                script = viewer_script_tag(src)
            else:
                viewer_note = f'<p class="note" id="viewer-missing">{e(VIEWER_MISSING_NOTE)}.</p>'
        parts = [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(self.title)}</title><style>{_STYLE}{self.extra_style}</style>{script}</head>\n<body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        models = first.models if first is not None else {}
        tiny = self.model_set == "tiny" if self.model_set is not None else is_tiny_models(models)
        if tiny:
            parts.append(f'<p class="banner" id="tiny-models">{e(TINY_BANNER)}</p>')
        if self.off_protocol:
            parts.append('<p class="banner" id="off-protocol">Off-protocol options: '
                         + e("; ".join(self.off_protocol))
                         + ". These scores differ from what validators compute; compare them only with each other.</p>")
        parts.append(self.preamble_html)
        parts.append(self._context(first))
        invalid = sum(row.invalid for row in ranked)
        parts.append(f'<p class="counts" id="counts">{len(ranked) + len(self._unscored)} files: '
                     f"{len(ranked) - invalid} scored, {invalid} invalid (score 0), {len(self._unscored)} not scored</p>")
        parts.append(self._summary(ranked))
        if ranked:
            parts.append('<h2 id="assets">Assets, best first</h2>' + viewer_note)
            parts.extend(row.article.replace(_RANK, str(rank)).replace(_MESH, meshes.get(row.anchor, ""))
                         for rank, row in enumerate(ranked, start=1) if row.article)
        if self._unscored:
            rows = "".join(f"<tr><td>{e(name)}</td><td class=\"reason\">{e(reason)}</td></tr>"
                           for name, reason in self._unscored)
            parts.append(
                f'<h2 id="unscored">Not scored ({len(self._unscored)})</h2>'
                '<p>Files that are not assets, listed so that nothing is skipped silently (invalid assets are '
                'ranked above, score 0, with their reason).</p>'
                '<table class="invalid"><colgroup><col style="width:40%"><col></colgroup>'
                f"<tr><th>file</th><th>reason</th></tr>{rows}</table>"
            )
        parts.append("<h2 id=\"legend\">How to read the numbers</h2>" + self._legend(first))
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def _viewer(self, row: _Row) -> str:
        """The row's ``<model-viewer>`` with its GLB embedded, and a link to the file; "" when it is gone."""
        try:
            glb = (Path(self.out_dir) / str(row.mesh_path)).read_bytes()
        except OSError:
            return ""
        href = html.escape(str(row.mesh_path), quote=True)
        element = viewer_element(glb_data_uri(glb), alt=f"3D mesh of {row.name}", poster=row.poster,
                                 element_id=f"viewer-{row.anchor}")
        return (f'<div class="mesh">{element}<p class="files">Drag to turn, scroll or pinch to zoom. '
                f'<a href="{href}" download>mesh.glb</a> ({len(glb) / 1024:,.0f} KB)</p></div>')

    def _context(self, first: RewardReport | None) -> str:
        e = html.escape
        if first is None:
            return '<p class="meta">Nothing could be scored.</p>'
        lines = [f'<p class="meta">prompt: <q>{e(first.prompt)}</q></p>']
        if first.references:
            lines.append('<p class="meta">references: ' + "; ".join(f"<q>{e(r)}</q>" for r in first.references) + "</p>")
        models = ", ".join(f"{e(k)}: {e(v)}" for k, v in first.models.items())
        lines.append(
            f'<p class="meta" id="models">models: {models}; captioner: {e(str(first.captioner or "none (CLIP only)"))}; '
            f"metric {e(first.metric)}, aggregation {e(first.aggregation)}</p>"
        )
        if first.distractors:  # folded: a long list that would push the assets down
            lines.append(f'<details class="meta"><summary>contrast prompts ({len(first.distractors)})</summary>'
                         + "; ".join(f"<q>{e(d)}</q>" for d in first.distractors) + "</details>")
        return "\n".join(lines)

    def _summary(self, ranked: list[_Row]) -> str:
        e = html.escape
        components = [c for c in ("clip", "caption", "reference") if any(c in r.components for r in ranked)]
        head = "".join(f'<th class="num">{c}</th>' for c in components)
        cols = "".join('<col class="comp">' for _ in components)
        rows = []
        for rank, row in enumerate(ranked, start=1):
            cells = "".join(
                f'<td class="num">{row.components[c]:.3f}</td>' if c in row.components else "<td>-</td>"
                for c in components
            )
            name = f'<a href="#{row.anchor}">{e(row.name)}</a>' if row.article else e(row.name)
            css = ' class="invalid"' if row.invalid else ""
            rows.append(
                f'<tr{css}><td class="num">{rank}</td><td>{name}</td>'
                f'<td class="num total">{row.score:.3f}</td>{cells}<td>{e(row.colours or "-")}</td>'
                f'<td class="notes">{e("; ".join(row.notes))}</td></tr>'
            )
        if not rows:
            rows.append(f'<tr><td colspan="{5 + len(components)}">no asset could be scored</td></tr>')
        return (
            '<h2 id="summary">Summary</h2><p class="note">Scores, then each asset; '
            '<a href="#legend">how to read the numbers</a> is at the end.</p><table class="summary">'
            f'<colgroup><col class="rank"><col><col class="score">{cols}<col class="colours"><col class="notes">'
            '</colgroup>'
            f'<tr><th class="num">rank</th><th>file</th><th class="num">score</th>{head}<th>colours</th>'
            "<th>notes</th></tr>" + "".join(rows) + "</table>"
        )

    def _legend(self, first: RewardReport | None) -> str:
        from text3d.reward.config import DEFAULT_SIMILARITY_RANGE

        e = html.escape
        weights = ", ".join(f"{k} {v:.2f}" for k, v in (first.weights.items() if first else ()))
        metric = first.metric if first else "cosine"
        low, high = DEFAULT_SIMILARITY_RANGE.get(metric, (0.0, 1.0))
        return _LEGEND.format(weights=e(f"weights: {weights}") if weights else "weights as configured",
                              metric=e(metric), low=low, high=high)


def _article(name: str, report: RewardReport, image_paths: list[str], anchor: str, links: Sequence[str] = ()) -> str:
    """One asset's section: its notes, the viewer's place, then each view with its own numbers (each once).

    The views sit in a regular grid (4 columns, or as many as there are views; 2 on a narrow
    screen), each a link to its full-size image.
    """
    e = html.escape
    lines = [f'<article class="asset" id="{anchor}"><h3>#{_RANK} {e(name)}</h3>']
    lines += [f'<p class="note">{e(note)}</p>' for note in report.notes]
    if links:
        lines.append(f'<p class="files">{" · ".join(links)}</p>')
    lines.append(_MESH)
    n_views = max(1, len(report.views))
    cols = 4 if n_views % 4 == 0 or n_views > 4 else n_views
    lines.append(f'<div class="views" style="--cols: {cols}; --cols-narrow: {min(2, cols)}">')
    for view in report.views:
        src = image_paths[view.index] if view.index < len(image_paths) else None
        img = (f'<a href="{e(src)}" title="view {view.index}: full size"><img src="{e(src)}" alt="view {view.index}" '
               'loading="lazy"></a>') if src else ""
        extra = ""
        if view.ocr_rejected:
            extra += f'<br><span class="rejected">OCR read <q>{e(view.ocr_text or "")}</q>: counts 0</span>'
        if view.rejected:
            extra += f"<br>junk: <q>{e(view.best_reject)}</q> {view.best_reject_similarity:.3f}"
        if view.caption is not None:
            similarity = "" if view.caption_similarity is None else f" ({view.caption_similarity:.3f})"
            extra += f"<br>caption: <q>{e(view.caption)}</q>{similarity}"
            if view.caption_flag:
                extra += f'<br><span class="rejected">caption not counted: {e(view.caption_flag)}</span>'
        lines.append(
            f"<figure>{img}<figcaption>view {view.index}: CLIP {view.clip_similarity:.3f}, "
            f"p {view.clip_probability:.3f}{extra}</figcaption></figure>"
        )
    lines.append("</div></article>")
    return "\n".join(lines)


def viewer_glb(mesh: object, max_bytes: int = 16 * _MIB) -> bytes | None:
    """``mesh`` (a trimesh) as GLB for the page's viewer, or None when it cannot be written or is over
    ``max_bytes``. Textures are kept; a mesh without colours is shown in the renderer's neutral grey."""
    from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

    try:
        data = encode_mesh(mesh, MeshFormat.GLB)  # type: ignore[arg-type]
    except ValueError:
        try:
            import numpy as np

            grey = mesh.copy()  # type: ignore[attr-defined]
            grey.visual.vertex_colors = np.tile(np.array([[170, 170, 170, 255]], dtype=np.uint8), (len(grey.vertices), 1))
            data = encode_mesh(grey, MeshFormat.GLB)
        except Exception:
            return None
    except Exception:  # a mesh the writer cannot handle only loses its viewer
        return None
    return data if 0 < len(data) <= max_bytes else None


def write_html_report(
    entries: Sequence[tuple[str, RewardReport]],
    out_dir: Path,
    title: str,
    *,
    unscored: Sequence[tuple[str, str]] = (),
    colours: dict[str, str] | None = None,
    model_set: str | None = None,
    meshes: dict[str, bytes] | None = None,
    **options: object,
) -> Path:
    """Write ``out_dir/index.html`` and the views as PNGs in one call; returns the index path.

    ``entries`` are (asset name, report) pairs; invalid reports are listed with their
    reasons, as are the ``unscored`` (name, reason) pairs. ``meshes`` maps an asset name to
    its GLB for the viewer; ``options`` are ``HtmlReport``'s (``preamble_html``,
    ``viewer_src``, ``max_meshes``, ...).
    """
    report = HtmlReport(Path(out_dir), title, model_set=model_set, **options)  # type: ignore[arg-type]
    for name, entry in entries:
        report.add(name, entry, (colours or {}).get(name), glb=(meshes or {}).get(name))
    for name, reason in unscored:
        report.add_unscored(name, reason)
    return report.write()
