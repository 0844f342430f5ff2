"""The validator's report pages beside the step folders: the index, one page per miner, the step's own section.

Pure functions of step *briefs* (``brief_of``: a few hundred bytes per step, what ``history.jsonl``
keeps) returning HTML text; ``text3d.validator.reports.StepReports`` decides when to write them.

    index.html              every step kept in the history, newest first: time, prompt, answers,
                            the best score, the canary's result, whether the step counted; links to
                            each step's page while its folder exists, and to every miner's page
    miners/uid_NNN.html     one miner's history: a small chart of its step scores and moving
                            average (inline SVG, no script), then one row per step it was queried in
    step_NNNNNN/index.html  (``text3d.reward.reporting.html``) opens with ``step_section``: the answers
                            (status, seconds, bytes, score, average before -> after), what a step
                            score is next to the moving average, and the canary

Everything a miner or the chain wrote (prompts, hotkeys, details) is HTML-escaped; numbers
are formatted by us. Pages carry the viewport tag and fit 600 px.
"""

from __future__ import annotations

import html
import math
import time
from typing import Any, Mapping, Sequence

__all__ = ["brief_of", "index_page", "miner_page", "step_section", "miner_page_name", "PAGES_STYLE", "STEP_STYLE"]

_MAX_INDEX_ROWS = 1000
_MAX_MINER_ROWS = 500
_MAX_CHART_POINTS = 1000

PAGES_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1400px; color: #222;
       line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1.4em; margin: 0.2em 0 0.4em 0; } h2 { font-size: 1.15em; margin: 1.2em 0 0.5em 0; }
nav { margin: 0.2em 0 0.8em 0; } nav a { margin-right: 1em; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25em 0.45em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; overflow-wrap: normal; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00; } .good { color: #06702a; } .muted { color: #666; } small { color: #666; }
.explain { background: #f4f7fb; border-left: 4px solid #4a78b5; padding: 0.5em 0.9em; margin: 0.6em 0; }
svg.chart { width: 100%; height: auto; max-width: 900px; display: block; border: 1px solid #eee; }
@media (max-width: 700px) { body { padding: 0.6em; } table { font-size: 0.85em; } }
"""

# Added to the step page's own style (``text3d.reward.reporting.html``) for ``step_section``.
STEP_STYLE = """
nav { margin: 0.2em 0 0.8em 0; } nav a { margin-right: 1em; }
.bad { color: #b00; } .good { color: #06702a; } .muted { color: #666; } small { color: #666; }
.explain { background: #f4f7fb; border-left: 4px solid #4a78b5; padding: 0.5em 0.9em; margin: 0.6em 0; }
@media (max-width: 700px) { table.answers { font-size: 0.85em; } }
"""


def _head(title: str) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{PAGES_STYLE}</style></head>\n<body>")


def _f(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{number:.{digits}f}" if math.isfinite(number) else "-"


def _when(time_unix: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(time_unix)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def miner_page_name(uid: int) -> str:
    return f"uid_{int(uid):03d}.html"


def brief_of(summary: Mapping[str, Any], *, time_unix: float, page: bool) -> dict[str, Any]:
    """The few hundred bytes of a step that the index and the miner pages need (``step.json`` has the rest)."""
    task = summary.get("task") or {}
    averages = summary.get("averages") or {}
    miners = []
    for miner in summary.get("miners") or []:
        if not isinstance(miner, Mapping):
            continue
        uid = int(miner.get("uid", -1))
        average = averages.get(str(uid)) or averages.get(uid) or {}
        miners.append({
            "uid": uid, "hotkey": str(miner.get("hotkey", ""))[:48], "status": str(miner.get("status", "?"))[:32],
            "score": float(miner.get("score") or 0.0), "before": average.get("before"), "after": average.get("after"),
            "response_s": miner.get("response_s"), "bytes": int(miner.get("payload_bytes") or 0),
            "detail": str(miner.get("detail") or "")[:160],
        })
    timing = summary.get("timing_s") or {}
    return {
        "step": int(summary.get("step", 0)), "time_unix": float(time_unix), "prompt": str(task.get("prompt", ""))[:400],
        "canary": summary.get("canary"), "updated": bool(summary.get("updated", False)),
        "fault": summary.get("fault"), "weights": summary.get("weights"), "alpha": summary.get("alpha"),
        "total_s": timing.get("total_s"), "page": bool(page), "miners": miners,
    }


def _canary_cell(canary: Any) -> str:
    if canary is None:
        return '<span class="muted">not run</span>'
    if canary == "ok":
        return '<span class="good">ok</span>'
    return f'<span class="bad">failed: {html.escape(str(canary)[:120])}</span>'


def _result_cell(brief: Mapping[str, Any]) -> str:
    if brief.get("updated"):
        return '<span class="good">scored</span>'
    return f'<span class="bad" title="{html.escape(str(brief.get("fault") or ""), quote=True)}">void</span>'


def _step_link(brief: Mapping[str, Any], prefix: str = "") -> str:
    step = int(brief["step"])
    if brief.get("page") and brief.get("kept", True):
        return f'<a href="{prefix}step_{step:06d}/index.html">step {step}</a>'
    return f'step {step}'


# -- index -------------------------------------------------------------------------------------------


def index_page(briefs: Sequence[Mapping[str, Any]], *, title: str, kept_steps: set[int], used_mb: float,
               cap_mb: float) -> str:
    """The reports' front page: steps newest first, then the miners seen, each linking to its history."""
    e = html.escape
    parts = [_head(title), f"<h1>{e(title)}</h1>"]
    newest = sorted(briefs, key=lambda b: -int(b["step"]))
    parts.append(f'<p class="muted">{len(newest)} steps in the history, {len(kept_steps)} with their page and '
                 f'views kept; {used_mb:.1f} MB of the {cap_mb:.0f} MB cap (oldest steps go first).</p>')
    parts.append('<nav><a href="#steps">steps</a><a href="#miners">miners</a></nav>')
    rows = []
    for brief in newest[:_MAX_INDEX_ROWS]:
        step = int(brief["step"])
        miners = brief.get("miners") or []
        ok = [m for m in miners if m.get("status") == "ok"]
        best = max((float(m.get("score") or 0.0) for m in ok), default=None)
        marked = dict(brief, kept=step in kept_steps)
        rows.append(
            f"<tr><td>{_step_link(marked)}<br><small>{e(_when(brief.get('time_unix')))}</small></td>"
            f"<td>{e(str(brief.get('prompt', '')))}</td><td class=\"num\">{len(ok)}/{len(miners)}</td>"
            f"<td class=\"num\">{_f(best) if best is not None else '-'}</td><td>{_canary_cell(brief.get('canary'))}</td>"
            f"<td>{_result_cell(brief)}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="6">no step yet</td></tr>')
    parts.append(
        '<h2 id="steps">Steps, newest first</h2><table><colgroup><col style="width:9.5em"><col>'
        '<col style="width:4.2em"><col style="width:4.2em"><col style="width:20%"><col style="width:4.8em"></colgroup>'
        '<tr><th>step</th><th>prompt</th><th class="num">ok</th><th class="num">best</th><th>canary</th>'
        f'<th>result</th></tr>{"".join(rows)}</table>'
    )
    if len(newest) > _MAX_INDEX_ROWS:
        parts.append(f'<p class="muted">{len(newest) - _MAX_INDEX_ROWS} older steps are in history.jsonl.</p>')
    parts.append(_miners_table(newest))
    parts.append(
        '<p class="explain">A step score is what one answer earned in one step. Weights follow each miner\'s moving '
        "average, which folds every step in a little at a time; a void step (our captioner or canary failed) "
        "changes nobody's average. Each step's page says more.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _miners_table(newest: Sequence[Mapping[str, Any]]) -> str:
    e = html.escape
    last: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
    seen: dict[int, int] = {}
    for brief in newest:
        for miner in brief.get("miners") or []:
            uid = int(miner["uid"])
            seen[uid] = seen.get(uid, 0) + 1
            last.setdefault(uid, (brief, miner))
    rows = []
    for uid in sorted(last):
        brief, miner = last[uid]
        rows.append(
            f'<tr><td><a href="miners/{miner_page_name(uid)}">uid {uid}</a></td>'
            f"<td><code>{e(str(miner.get('hotkey', ''))[:16])}</code></td><td>{e(str(miner.get('status')))}</td>"
            f"<td class=\"num\">{_f(miner.get('score'))}</td><td class=\"num\">{_f(miner.get('after'))}</td>"
            f"<td class=\"num\">{seen[uid]}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="6">no miner queried yet</td></tr>')
    return (
        '<h2 id="miners">Miners</h2><table><colgroup><col style="width:5.5em"><col><col style="width:6.5em">'
        '<col style="width:4.8em"><col style="width:5.2em"><col style="width:4.2em"></colgroup>'
        '<tr><th>miner</th><th>hotkey</th><th>last status</th><th class="num">last score</th>'
        f'<th class="num">average</th><th class="num">steps</th></tr>{"".join(rows)}</table>'
    )


# -- one miner ----------------------------------------------------------------------------------------


def _chart(points: Sequence[tuple[int, float, float | None, bool]]) -> str:
    """Step score (dots; red when the answer was not ok) and moving average (line) against the step number."""
    width, height, left, right, top, bottom = 600, 180, 34, 8, 8, 22
    if not points:
        return '<p class="muted">no steps yet</p>'
    steps = [p[0] for p in points]
    lo, hi = min(steps), max(steps)
    span = max(1, hi - lo)

    def x(step: int) -> float:
        return left + (step - lo) / span * (width - left - right) if hi > lo else (left + width - right) / 2

    def y(value: float) -> float:
        return top + (1.0 - min(1.0, max(0.0, value))) * (height - top - bottom)

    grid = "".join(
        f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e3e3"/>'
        f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end" fill="#666">{v:g}</text>'
        for v in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    line = " ".join(f"{x(s):.1f},{y(a):.1f}" for s, _, a, _ in points if a is not None)
    dots = "".join(
        f'<circle cx="{x(s):.1f}" cy="{y(score):.1f}" r="2.6" fill="{"#2f6db5" if ok else "#c0392b"}">'
        f"<title>step {s}: {score:.3f}</title></circle>"
        for s, score, _, ok in points
    )
    axis = (f'<text x="{left}" y="{height - 5}" font-size="11" fill="#666">step {lo}</text>'
            f'<text x="{width - right}" y="{height - 5}" font-size="11" text-anchor="end" fill="#666">step {hi}</text>')
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="step scores and moving average">'
        f'{grid}<polyline points="{line}" fill="none" stroke="#e08a00" stroke-width="2"/>{dots}{axis}</svg>'
        '<p class="muted"><span style="color:#2f6db5">●</span> step score (<span style="color:#c0392b">●</span> not '
        'ok: counts 0) &nbsp; <span style="color:#e08a00">━</span> moving average after the step</p>'
    )


def miner_page(uid: int, briefs: Sequence[Mapping[str, Any]], *, kept_steps: set[int]) -> str:
    """One miner's history: the chart, then its rows newest first."""
    e = html.escape
    rows_in_order = [(b, m) for b in sorted(briefs, key=lambda b: int(b["step"]))
                     for m in (b.get("miners") or []) if int(m["uid"]) == uid]
    hotkeys = list(dict.fromkeys(str(m.get("hotkey", "")) for _, m in rows_in_order))
    title = f"uid {uid}: history"
    parts = [_head(title), f"<h1>{e(title)}</h1>", '<nav><a href="../index.html">all steps and miners</a></nav>']
    if hotkeys:
        parts.append(f'<p>hotkey <code>{e(hotkeys[-1])}</code>'
                     + (f' (earlier: {", ".join(f"<code>{e(h)}</code>" for h in hotkeys[:-1])}; a new hotkey starts '
                        "from 0)" if len(hotkeys) > 1 else "") + "</p>")
    points = [(int(b["step"]), float(m.get("score") or 0.0) if m.get("status") == "ok" else 0.0,
               None if m.get("after") is None else float(m["after"]), m.get("status") == "ok")
              for b, m in rows_in_order[-_MAX_CHART_POINTS:]]
    parts.append("<h2>Score per step and moving average</h2>" + _chart(points))
    ok = sum(1 for _, m in rows_in_order if m.get("status") == "ok")
    parts.append(f'<p class="muted">{len(rows_in_order)} steps, {ok} answered ok.</p>')
    rows = []
    for brief, miner in reversed(rows_in_order[-_MAX_MINER_ROWS:]):
        step = int(brief["step"])
        status = str(miner.get("status"))
        detail = f"<br><small>{e(str(miner.get('detail')))}</small>" if miner.get("detail") and status != "ok" else ""
        seconds = "-" if miner.get("response_s") is None else f"{float(miner['response_s']):.2f}"
        void = "" if brief.get("updated") else ' <span class="bad">(void step)</span>'
        rows.append(
            f"<tr><td>{_step_link(dict(brief, kept=step in kept_steps), '../')}<br>"
            f"<small>{e(_when(brief.get('time_unix')))}</small></td>"
            f'<td class="{"good" if status == "ok" else "bad"}">{e(status)}{detail}{void}</td>'
            f'<td class="num">{_f(miner.get("score"))}</td><td class="num">{_f(miner.get("after"))}</td>'
            f'<td class="num">{seconds}</td><td class="num">{int(miner.get("bytes") or 0):,}</td></tr>'
        )
    parts.append(
        '<h2>Steps, newest first</h2><table><colgroup><col style="width:9.5em"><col><col style="width:4.3em">'
        '<col style="width:4.3em"><col style="width:4em"><col style="width:6.5em"></colgroup>'
        '<tr><th>step</th><th>status</th><th class="num">score</th><th class="num">avg</th><th class="num">s</th>'
        f'<th class="num">bytes</th></tr>{"".join(rows)}</table>'
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- the step page's own section -----------------------------------------------------------------------


def step_section(summary: Mapping[str, Any], *, previous_step: int | None) -> str:
    """What opens a step page: navigation, the answers table, score versus average, the canary."""
    e = html.escape
    brief = brief_of(summary, time_unix=0.0, page=True)
    nav = ['<a href="../index.html">all steps</a>']
    if previous_step is not None:
        nav.append(f'<a href="../step_{previous_step:06d}/index.html">previous step ({previous_step})</a>')
    parts = [f'<nav>{"".join(nav)}</nav>']
    if not brief["updated"]:
        parts.append(f'<p class="banner">This step is void: {e(str(brief.get("fault") or "our fault"))}. No miner\'s '
                     "average changed.</p>")
    parts.append(f'<p class="meta">canary: {_canary_cell(brief.get("canary"))}'
                 + (f'; weights: {e(str(brief["weights"]))}' if brief.get("weights") else "")
                 + (f'; step took {_f(brief.get("total_s"), 1)} s' if brief.get("total_s") is not None else "")
                 + "</p>")
    rows = []
    for miner in sorted(brief["miners"], key=lambda m: (m["status"] != "ok", -m["score"], m["uid"])):
        status = miner["status"]
        detail = f"<br><small>{e(miner['detail'])}</small>" if miner["detail"] and status != "ok" else ""
        seconds = "-" if miner["response_s"] is None else f"{float(miner['response_s']):.2f}"
        rows.append(
            f'<tr><td><a href="../miners/{miner_page_name(miner["uid"])}">uid {miner["uid"]}</a><br>'
            f"<small><code>{e(miner['hotkey'][:10])}</code></small></td>"
            f'<td class="{"good" if status == "ok" else "bad"}">{e(status)}{detail}</td>'
            f'<td class="num">{seconds}</td><td class="num">{miner["bytes"]:,}</td>'
            f'<td class="num">{_f(miner["score"])}</td>'
            f'<td class="num">{_f(miner["before"])} → {_f(miner["after"])}</td></tr>'
        )
    if rows:
        parts.append(
            '<h2 id="answers">Answers</h2><table class="answers"><colgroup><col style="width:7em"><col>'
            '<col style="width:3.8em"><col style="width:6.2em"><col style="width:4.3em"><col style="width:8.6em">'
            '</colgroup><tr><th>miner</th><th>status</th><th class="num">s</th><th class="num">bytes</th>'
            f'<th class="num">score</th><th class="num">average</th></tr>{"".join(rows)}</table>'
        )
    parts.append(_explain(brief))
    return "\n".join(parts)


def _explain(brief: Mapping[str, Any]) -> str:
    alpha = brief.get("alpha")
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        return ""
    example = max((m for m in brief["miners"] if m["status"] == "ok"), key=lambda m: m["score"], default=None)
    steps_to_90 = math.ceil(math.log(0.1) / math.log(1 - alpha)) if alpha < 1 else 1
    text = (
        f"<b>Step score and moving average.</b> The score is what an answer earned in this step alone (0 for any "
        f"status but ok). Weights follow each miner's moving average, which folds a step in with α = {alpha:g}: "
        f"average ← {alpha:g} × score + {1 - alpha:g} × average."
    )
    if example is not None and example["before"] is not None and example["after"] is not None:
        text += (
            f" So uid {example['uid']}'s {example['score']:.3f} here moved its average from {example['before']:.3f} "
            f"to {example['after']:.3f}; a miner holding a score needs about {steps_to_90} steps to bring its "
            "average within 10 % of it, and one bad step costs it a fraction α of its average, not all of it."
        )
    if not brief.get("updated"):
        text += " This step is void, so no average moved."
    return f'<p class="explain" id="average">{text}</p>'
