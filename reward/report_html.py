"""A self-contained HTML page that shows why each asset scored what it did.

``write_html_report`` writes every asset's rendered views as PNGs next to an
``index.html`` that lists the assets ranked by score, each with its views, captions,
per-view CLIP numbers and score components side by side. Image paths are relative (the
folder can be moved or served as is) and every piece of text is HTML-escaped (prompts
and captions come from miners and models). The validator reuses it for per-step reports.
"""

import html
import re
from pathlib import Path
from typing import Sequence

from reward.report import RewardReport

__all__ = ["write_html_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.asset { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em; margin-bottom: 1.2em; }
.asset h2 { margin: 0 0 0.3em 0; font-size: 1.1em; }
.score { font-weight: bold; }
.invalid { color: #b00; }
.views { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; width: 192px; font-size: 0.8em; }
figure img { width: 192px; height: 192px; border: 1px solid #eee; }
figcaption .rejected { color: #b00; }
table.components td { padding: 0 0.8em 0 0; }
"""


def _slug(name: str, index: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "asset"
    return f"{index:03d}_{cleaned[:60]}"


def _asset_html(rank: int, name: str, report: RewardReport, image_paths: list[str]) -> str:
    e = html.escape
    lines = [f'<div class="asset"><h2>#{rank} {e(name)} &mdash; <span class="score">{report.score:.4f}</span></h2>']
    lines.append(f"<div>prompt: <q>{e(report.prompt)}</q></div>")
    if report.references:
        lines.append("<div>references: " + "; ".join(f"<q>{e(r)}</q>" for r in report.references) + "</div>")
    if report.invalid_reason is not None:
        lines.append(f'<div class="invalid">invalid: {e(report.invalid_reason)}</div></div>')
        return "\n".join(lines)
    cells = "".join(
        f"<td>{e(k)}: {v:.3f} (w {report.weights.get(k, 0.0):.2f})</td>" for k, v in report.components.items()
    )
    lines.append(f'<table class="components"><tr>{cells}</tr></table>')
    meta = f"metric {e(report.metric)}, aggregation {e(report.aggregation)}, captioner {e(str(report.captioner))}"
    lines.append(f"<div>{meta}</div>")
    for note in report.notes:
        lines.append(f"<div><em>{e(note)}</em></div>")
    lines.append('<div class="views">')
    for view in report.views:
        src = image_paths[view.index] if view.index < len(image_paths) else None
        img = f'<img src="{e(src)}" alt="view {view.index}">' if src else ""
        reject = (f'<span class="rejected">rejected: {e(view.best_reject)} ({view.best_reject_similarity:.3f})</span>'
                  if view.rejected else f"best reject: {e(view.best_reject)} ({view.best_reject_similarity:.3f})")
        caption = "" if view.caption is None else f"<br><q>{e(view.caption)}</q>"
        if view.caption_similarity is not None:
            caption += f"<br>caption sim {view.caption_similarity:.3f}"
        lines.append(
            f"<figure>{img}<figcaption>view {view.index}: CLIP {view.clip_similarity:.3f}, "
            f"p {view.clip_probability:.3f}<br>{reject}{caption}</figcaption></figure>"
        )
    lines.append("</div></div>")
    return "\n".join(lines)


def write_html_report(entries: Sequence[tuple[str, RewardReport]], out_dir: Path, title: str) -> Path:
    """Write ``out_dir/index.html`` (assets ranked by score) and the views as PNGs; returns the index path.

    ``entries`` are (asset name, report) pairs; reports without images (invalid assets,
    reports parsed back from JSON) are listed without pictures.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranked = sorted(enumerate(entries), key=lambda item: (-item[1][1].score, not item[1][1].is_valid))
    blocks = []
    for rank, (index, (name, report)) in enumerate(ranked, start=1):
        slug = _slug(name, index)
        paths = []
        for v, image in enumerate(report.images):
            relative = f"{slug}/view_{v:02d}.png"
            (out_dir / slug).mkdir(exist_ok=True)
            image.save(out_dir / relative)
            paths.append(relative)
        blocks.append(_asset_html(rank, name, report, paths))
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
        + "\n".join(blocks)
        + "\n</body></html>\n"
    )
    index_path = out_dir / "index.html"
    index_path.write_text(page, encoding="utf-8")
    return index_path
