"""A self-contained HTML page that shows why each asset scored what it did.

Layout, top to bottom: the title, the prompt and the models used (with a banner when
they are the tiny random test models, and one naming any off-protocol option), the counts
(files, scored, invalid, not scored: the same numbers the terminal and the JSON give), a
summary table (rank, file, score, components, colours, and notes saying why a score
dropped: invalid with the reason, flatness, OCR, the caption guard), a legend that says what
every number means and what counts as good, one section per scored asset (its notes, its
views with per-view CLIP numbers and captions), and the files that could not be scored,
each with its reason. Invalid assets are ranked (score 0, last) like everywhere else.
Every number appears once.

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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from text3d.reward.assets.safe_fs import write_inside
from text3d.reward.reporting.evidence import RewardReport, score_notes

__all__ = ["HtmlReport", "write_html_report", "is_tiny_models"]

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
.views { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; width: 192px; max-width: 100%; font-size: 0.8em; }
figure img { width: 192px; height: 192px; max-width: 100%; border: 1px solid #eee; display: block; }
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


@dataclass(frozen=True)
class _Row:
    """What the page needs of one scored asset: a few numbers and its article, already
    rendered to HTML (so the report holds kilobytes per asset, not its RewardReport)."""

    name: str
    score: float
    components: dict[str, float]
    colours: str | None
    anchor: str
    article: str  # "" for an invalid asset (its reason is in notes)
    notes: tuple[str, ...] = ()
    invalid: bool = False


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
    _rows: list[_Row] = field(default_factory=list)
    _unscored: list[tuple[str, str]] = field(default_factory=list)
    _first: RewardReport | None = None  # the page's context (prompt, models, weights), without images
    _count: int = 0

    def add(self, name: str, report: RewardReport, colours: str | None = None) -> None:
        """Add one asset: its views are written now; a report without views (invalid) is
        listed with its reason."""
        index = self._count
        self._count += 1
        anchor = f"asset-{index}"
        if not report.is_valid:
            self._rows.append(_Row(name, 0.0, {}, colours, anchor, "", tuple(score_notes(report)), invalid=True))
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
        self._rows.append(_Row(name, float(report.score), dict(report.components), colours, anchor,
                               _article(name, report, paths, anchor), tuple(score_notes(report))))

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
        parts = [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(self.title)}</title><style>{_STYLE}</style></head>\n<body>",
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
        parts.append(self._context(first))
        invalid = sum(row.invalid for row in ranked)
        parts.append(f'<p class="counts" id="counts">{len(ranked) + len(self._unscored)} files: '
                     f"{len(ranked) - invalid} scored, {invalid} invalid (score 0), {len(self._unscored)} not scored</p>")
        parts.append(self._summary(ranked))
        parts.append("<h2 id=\"legend\">How to read the numbers</h2>" + self._legend(first))
        if ranked:
            parts.append('<h2 id="assets">Assets, best first</h2>')
            parts.extend(row.article.replace(_RANK, str(rank)) for rank, row in enumerate(ranked, start=1)
                         if row.article)
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
        parts.append("</body></html>\n")
        return "\n".join(parts)

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
        if first.distractors:
            lines.append('<p class="meta">contrast prompts: ' + "; ".join(f"<q>{e(d)}</q>" for d in first.distractors)
                         + "</p>")
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
            '<h2 id="summary">Summary</h2><table class="summary">'
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


def _article(name: str, report: RewardReport, image_paths: list[str], anchor: str) -> str:
    """One asset's section: its notes, then each view with its own numbers (each once)."""
    e = html.escape
    lines = [f'<article class="asset" id="{anchor}"><h3>#{_RANK} {e(name)}</h3>']
    lines += [f'<p class="note">{e(note)}</p>' for note in report.notes]
    lines.append('<div class="views">')
    for view in report.views:
        src = image_paths[view.index] if view.index < len(image_paths) else None
        img = f'<img src="{e(src)}" alt="view {view.index}" loading="lazy">' if src else ""
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


def write_html_report(
    entries: Sequence[tuple[str, RewardReport]],
    out_dir: Path,
    title: str,
    *,
    unscored: Sequence[tuple[str, str]] = (),
    colours: dict[str, str] | None = None,
    model_set: str | None = None,
    off_protocol: Sequence[str] = (),
) -> Path:
    """Write ``out_dir/index.html`` and the views as PNGs in one call; returns the index path.

    ``entries`` are (asset name, report) pairs; invalid reports are listed with their
    reasons, as are the ``unscored`` (name, reason) pairs.
    """
    report = HtmlReport(Path(out_dir), title, model_set=model_set, off_protocol=tuple(off_protocol))
    for name, entry in entries:
        report.add(name, entry, (colours or {}).get(name))
    for name, reason in unscored:
        report.add_unscored(name, reason)
    return report.write()
