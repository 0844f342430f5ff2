"""Search results as a self-contained HTML page: each asset in the interactive 3D viewer.

``write_results_page(results, out_dir, root)`` writes ``out_dir/index.html`` with, per
result: its rank, name, the ranking key and each part of it (description score and
components, likeness, filter score), colours and notes (why a score dropped), the stored
thumbnail as the poster, and the asset itself in ``<model-viewer>`` (orbit, zoom,
auto-rotate; ``text3d.web.viewer``) -- the file is loaded again with the same hostile-file
rules as ``text3d score`` and embedded as a GLB ``data:`` URI so the page works from
``file://`` without a server. Meshes larger than ``max_embed_bytes`` as GLB are shown by
their thumbnail only, with a note; so are files that changed or vanished since they were
indexed. The viewer's script is copied beside the page (never a CDN); without it (not
installed) the page says how to get it and shows still images. Every piece of text is
escaped: names, prompts and captions come from strangers. Nothing is written through a link
planted in the output folder (``text3d.reward.assets.safe_fs.write_inside``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from text3d.library.search import SearchResults
from text3d.reward.assets.safe_fs import write_inside

__all__ = ["write_results_page", "MAX_EMBED_BYTES"]

MAX_EMBED_BYTES = 2 << 20  # a GLB larger than this is not embedded (base64 makes it 4/3 larger in the page)

_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1400px; color: #222;
       line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1.4em; margin: 0.2em 0 0.4em 0; }
.banner { background: #fff3cd; border: 2px solid #d39e00; border-radius: 6px; padding: 0.6em 0.9em; font-weight: 600; }
.meta { margin: 0.3em 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 1em; margin-top: 1em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em; }
.card h2 { font-size: 1em; margin: 0 0 0.4em 0; }
.viewer, .poster { width: 100%; height: 280px; background: #fafafa; border: 1px solid #eee; display: block; }
.poster { object-fit: contain; image-rendering: auto; }
table.nums { border-collapse: collapse; width: 100%; font-size: 0.9em; margin-top: 0.4em; }
table.nums td { padding: 0.1em 0.3em; border-bottom: 1px solid #eee; }
table.nums td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #8a4b00; font-size: 0.85em; margin: 0.2em 0; }
details { font-size: 0.85em; margin-top: 0.3em; }
q { font-style: italic; }
"""


def write_results_page(results: SearchResults, out_dir: str | Path, root: str | Path, *, title: str,
                       thumbnails: dict[str, bytes | None] | None = None, model_set: str | None = None,
                       max_embed_bytes: int = MAX_EMBED_BYTES) -> Path:
    """Write the page (see the module docstring); returns the path of ``index.html``.
    ``thumbnails``: the results' stored thumbnails by name (``Library.thumbnails``)."""
    from text3d.reward.reporting.html import TINY_BANNER
    from text3d.web.viewer import VIEWER_MISSING_NOTE, copy_viewer_beside, viewer_script_tag

    e = html.escape
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    viewer_src = copy_viewer_beside(out_dir)
    query = results.query
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{e(title)}</title><style>{_STYLE}</style>"
             + (viewer_script_tag(viewer_src) if viewer_src else "") + "</head>\n<body>", f"<h1>{e(title)}</h1>"]
    if model_set == "tiny":
        parts.append(f'<p class="banner" id="tiny-models">{e(TINY_BANNER)}</p>')
    if results.off_protocol:
        parts.append('<p class="banner" id="off-protocol">Off-protocol options: ' + e("; ".join(results.off_protocol))
                     + ". These scores differ from what validators compute.</p>")
    if viewer_src is None:
        parts.append(f'<p class="note" id="viewer-missing">{e(VIEWER_MISSING_NOTE)}</p>')
    asked = []
    if query.description:
        asked.append(f"description <q>{e(query.description)}</q>")
    if query.like is not None:
        asked.append(f"looks like <q>{e(str(query.like))}</q>")
    if query.filter:
        asked.append(f"filter <q>{e(query.filter)}</q>")
    c = results.counts
    parts.append(f'<p class="meta" id="query">{"; ".join(asked)}</p>')
    parts.append(f'<p class="meta" id="counts">library: {c.get("indexed", 0)} indexed, {c.get("invalid", 0)} invalid, '
                 f'{c.get("not_scored", 0)} not scored; {results.judged} judged with the exact formula; '
                 f"{len(results.results)} shown, best first</p>")
    parts.append('<div class="grid">')
    from text3d.reward.assets.archives import ArchiveCache

    with ArchiveCache() as archives:
        for rank, result in enumerate(results.results, start=1):
            thumbnail = (thumbnails or {}).get(result.name)
            parts.append(_card(rank, result, thumbnail, out_dir, Path(root), archives, max_embed_bytes,
                               viewer_src is not None))
    parts.append("</div>")
    if not results.results:
        parts.append("<p>No indexed asset matches.</p>")
    parts.append("</body></html>\n")
    return write_inside(out_dir, "index.html", "\n".join(parts))


def _card(rank: int, result: Any, thumbnail: bytes | None, out_dir: Path, root: Path, archives: Any,
          max_embed_bytes: int, viewer: bool) -> str:
    from text3d.web.viewer import glb_data_uri, viewer_element

    e = html.escape
    row = result.row
    poster = None
    if thumbnail:
        poster = f"thumbs/{rank:03d}.png"
        write_inside(out_dir, poster, thumbnail)
    glb, note = _glb(row, root, archives, max_embed_bytes) if viewer else (None, None)
    if glb is not None:
        shown = viewer_element(glb_data_uri(glb), alt=result.name, poster=poster, element_id=f"viewer-{rank}")
    elif poster is not None:
        shown = f'<img class="poster" src="{e(poster)}" alt="{e(result.name)}">'
    else:
        shown = ""
    numbers = [("rank key", result.key)]
    report = result.report
    if report is not None:
        numbers.append(("description", report.score))
        numbers += [(f"  {k}", v) for k, v in report.components.items()]
    if result.likeness is not None:
        numbers.append(("likeness", result.likeness))
    if result.filter_score is not None:
        numbers.append(("filter", result.filter_score))
    rows = "".join(f'<tr><td>{e(label)}</td><td class="num">{value:.3f}</td></tr>' for label, value in numbers)
    notes = []
    if report is not None:
        from text3d.reward.reporting.evidence import score_notes

        notes += score_notes(report)
    if note:
        notes.append(note)
    notes_html = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    evidence = ""
    if report is not None and report.views:
        items = []
        for view in report.views:
            text = f"view {view.index}: CLIP {view.clip_similarity:.3f}, p {view.clip_probability:.3f}"
            if view.caption is not None:
                text += f", caption “{view.caption}”"
            items.append(f"<li>{e(text)}</li>")
        evidence = f"<details><summary>per view</summary><ul>{''.join(items)}</ul></details>"
    return (f'<article class="card" id="result-{rank}"><h2>#{rank} {e(result.name)}</h2>{shown}'
            f'<table class="nums">{rows}</table><p class="meta">colours: {e(str(row.get("colours") or "-"))}</p>'
            f"{notes_html}{evidence}</article>")


def _glb(row: dict[str, Any], root: Path, archives: Any, max_embed_bytes: int) -> tuple[bytes | None, str | None]:
    """The asset as GLB bytes for the viewer, or (None, why not)."""
    from text3d.library.work import file_digest
    from text3d.reward.assets.loader import AssetLimits, Entry, load_asset
    from text3d.reward.errors import InvalidAssetError

    relative = os.fsdecode(row["path_bytes"]) if row.get("path_bytes") else row.get("file")
    if not relative:
        return None, None
    path = root / relative
    limits = AssetLimits()
    if not path.exists():
        return None, "the file is gone since it was indexed (re-run text3d index)"
    digest = file_digest(path, limits.max_file_bytes) if row.get("member") is None else None
    if row.get("member") is None and digest is not None and row.get("sha256") and digest != row["sha256"]:
        return None, "the file changed since it was indexed (re-run text3d index)"
    try:
        asset = load_asset(Entry(row["name"], path, "mesh", member=row.get("member")), root, limits, archives)
    except (InvalidAssetError, OSError) as exc:
        return None, f"cannot be shown in 3D: {exc}"
    from text3d.reward.reporting.html import viewer_glb

    glb = viewer_glb(asset.mesh, max_embed_bytes)  # the same writer as text3d score's pages
    if glb is None:
        return None, (f"{asset.n_faces} faces: too large to embed in the page (over {max_embed_bytes >> 20} MB as "
                      "GLB); open the file")
    return glb, None
