"""The evidence behind a score, for people: JSON, HTML pages and safe terminal text.

    evidence.py   ``RewardReport``: every number that went into one asset's score
    html.py       a self-contained page showing why each asset scored what it did
    terminal.py   text from strangers made safe to print
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "RewardReport": "text3d.reward.reporting.evidence",
    "ViewReport": "text3d.reward.reporting.evidence",
    "write_html_report": "text3d.reward.reporting.html",
    "terminal_safe": "text3d.reward.reporting.terminal",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
