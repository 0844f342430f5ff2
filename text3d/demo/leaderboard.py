"""The demo's results: who earned what, from the chain's weights and the validator's state.

``leaderboard_rows`` joins three sources that the demo does not own the format of only
through stable contracts: the devnet's weights (``ChainAdapter.weights``), the validator's
state file (``text3d.validator.state.ValidatorState``: per-uid moving averages) and the validator's
per-step report folders (``text3d.validator.reports``: ``step_NNNNNN/index.html``).
"""

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["LeaderboardRow", "leaderboard_rows", "read_averages", "last_step_report", "render_table", "write_html"]


@dataclass(frozen=True)
class LeaderboardRow:
    uid: int
    name: str
    hotkey: str
    weight: float
    moving_average: float | None


def read_averages(state_path: Path) -> dict[int, float]:
    """Per-uid moving averages from the validator's state file ({} when absent)."""
    if not Path(state_path).is_file():
        return {}
    data = json.loads(Path(state_path).read_text())
    return {int(uid): float(value) for uid, value in data.get("averages", {}).items()}


def leaderboard_rows(
    names_by_uid: Mapping[int, str],
    hotkeys_by_uid: Mapping[int, str],
    weights: Mapping[int, float],
    averages: Mapping[int, float],
) -> list[LeaderboardRow]:
    """One row per neuron, best weight first (ties: better average, then uid)."""
    rows = [
        LeaderboardRow(uid, names_by_uid.get(uid, "?"), hotkeys_by_uid.get(uid, ""), float(weights.get(uid, 0.0)),
                       averages.get(uid))
        for uid in sorted(hotkeys_by_uid)
    ]
    return sorted(rows, key=lambda r: (-r.weight, -(r.moving_average or 0.0), r.uid))


def last_step_report(reports_dir: Path) -> Path | None:
    """The newest complete ``step_*/index.html`` under ``reports_dir`` (by step number), or None.

    A step folder is complete once its ``step.json`` exists (the validator writes it last).
    """
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        return None
    pages = sorted(
        (p.parent / "index.html" for p in reports_dir.glob("step_*/step.json") if (p.parent / "index.html").is_file()),
        key=lambda p: p.parent.name,
    )
    return pages[-1] if pages else None


def render_table(rows: Sequence[LeaderboardRow], title: str):
    """A ``rich.table.Table`` of the rows."""
    from rich.table import Table

    table = Table(title=title)
    for column, justify in (("uid", "right"), ("neuron", "left"), ("hotkey", "left"), ("weight", "right"),
                            ("moving avg score", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        average = "-" if row.moving_average is None else f"{row.moving_average:.4f}"
        table.add_row(str(row.uid), row.name, row.hotkey, f"{row.weight:.4f}", average)
    return table


def write_html(rows: Sequence[LeaderboardRow], out_path: Path, title: str, step_report: Path | None,
               reports_index: Path | None = None) -> Path:
    """A standalone page with the leaderboard, links to the validator's reports and a frame of the last step.

    Fits a 600 px screen: the hotkey column wraps, the frame takes the page's width.
    """
    out_path = Path(out_path)
    body_rows = "\n".join(
        f"<tr><td>{r.uid}</td><td>{html.escape(r.name)}</td><td><code>{html.escape(r.hotkey)}</code></td>"
        f"<td>{r.weight:.4f}</td><td>{'-' if r.moving_average is None else f'{r.moving_average:.4f}'}</td></tr>"
        for r in rows
    )
    links = []
    if reports_index is not None:
        links.append(f'<p>Every step and each miner\'s history: <a href="{html.escape(reports_index.resolve().as_uri())}">'
                     "the validator's reports</a></p>")
    if step_report is not None:
        link = html.escape(step_report.resolve().as_uri())
        links.append(f'<p>Last validator step (views, captions, scores, the best meshes in 3D): <a href="{link}">'
                     f'step page</a></p><iframe src="{link}" title="last step"></iframe>')
    else:
        links.append("<p>The validator wrote no step report.</p>")
    out_path.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1400px;"
        "overflow-wrap:anywhere}td,th{padding:4px 8px;text-align:left;vertical-align:top}th{overflow-wrap:normal}"
        "table{border-collapse:collapse;width:100%;table-layout:fixed}tr:nth-child(even){background:#f4f4f4}"
        "col.num{width:6.5em}col.uid{width:3.5em}iframe{width:100%;height:80vh;border:1px solid #ccc}"
        "@media (max-width:700px){table{font-size:0.85em}col.num{width:6em}}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><colgroup><col class='uid'><col style='width:18%'><col><col class='num'>"
        "<col class='num'></colgroup><tr><th>uid</th><th>neuron</th><th>hotkey</th><th>weight</th>"
        f"<th>moving avg score</th></tr>{body_rows}</table>{''.join(links)}</body></html>"
    )
    return out_path
