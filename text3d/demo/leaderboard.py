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


def write_html(rows: Sequence[LeaderboardRow], out_path: Path, title: str, step_report: Path | None) -> Path:
    """A standalone page with the leaderboard and a link to (and frame of) the last step's report."""
    out_path = Path(out_path)
    body_rows = "\n".join(
        f"<tr><td>{r.uid}</td><td>{html.escape(r.name)}</td><td><code>{html.escape(r.hotkey)}</code></td>"
        f"<td>{r.weight:.4f}</td><td>{'-' if r.moving_average is None else f'{r.moving_average:.4f}'}</td></tr>"
        for r in rows
    )
    if step_report is not None:
        link = html.escape(step_report.resolve().as_uri())
        report = (f'<p>Last validator step (views, captions, scores per miner): <a href="{link}">{link}</a></p>'
                  f'<iframe src="{link}" style="width:100%;height:80vh;border:1px solid #ccc"></iframe>')
    else:
        report = "<p>The validator wrote no step report.</p>"
    out_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><tr><th>uid</th><th>neuron</th><th>hotkey</th><th>weight</th>"
        f"<th>moving avg score</th></tr>{body_rows}</table>{report}</body></html>"
    )
    return out_path
