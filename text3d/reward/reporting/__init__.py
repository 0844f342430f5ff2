"""The evidence behind a score, for people: JSON, HTML pages and safe terminal text.

    evidence.py   ``RewardReport``: every number that went into one asset's score
    html.py       a self-contained page showing why each asset scored what it did
    ranking.py    a ranking as it grows: JSON in rank order, the HTML, a compact table or CSV, one set of counts
    changes.py    what changed between two scorings of one asset (``text3d score --watch``)
    terminal.py   text from strangers made safe to print
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "RewardReport": "text3d.reward.reporting.evidence",
    "ViewReport": "text3d.reward.reporting.evidence",
    "write_html_report": "text3d.reward.reporting.html",
    "Ranking": "text3d.reward.reporting.ranking",
    "terminal_safe": "text3d.reward.reporting.terminal",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
