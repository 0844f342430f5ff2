"""What changed between two scorings of one asset: the lines ``text3d score --watch`` prints.

A designer saving a mesh again wants three things at a glance: the new score, the evidence
per view, and what moved since the last save -- the score and each component, the views
whose CLIP value moved most, notes that appeared or went away (flatness, OCR, invalid).
``describe(report)`` and ``changes(before, after)`` turn reports into those lines (plain
text; the caller makes them terminal-safe). Pure: no I/O.
"""

from __future__ import annotations

from text3d.reward.reporting.evidence import RewardReport, score_notes

__all__ = ["describe", "changes"]

_MOVED = 0.005  # smaller moves of a value in [0, 1] are noise, not news


def describe(report: RewardReport) -> list[str]:
    """The score, its components and one line per view (CLIP similarity, the view's clip
    value, its caption when there is one)."""
    if not report.is_valid:
        return [f"score 0.000: invalid: {report.invalid_reason}"]
    parts = ", ".join(f"{name} {value:.3f}" for name, value in report.components.items())
    lines = [f"score {report.score:.3f} ({parts})"]
    lines += [f"  why lower: {note}" for note in score_notes(report)]
    for view in report.views:
        line = f"  view {view.index}: CLIP {view.clip_similarity:.3f}, p {view.clip_probability:.3f}"
        if view.caption is not None:
            line += f", caption {view.caption!r}"
        if view.ocr_rejected:
            line += f", OCR read {view.ocr_text!r}"
        lines.append(line)
    return lines


def changes(before: RewardReport, after: RewardReport, max_views: int = 3) -> list[str]:
    """What moved from ``before`` to ``after`` (same prompt); ``["no change"]`` when nothing did."""
    lines = []
    if before.is_valid != after.is_valid:
        lines.append("now valid" if after.is_valid else f"now invalid: {after.invalid_reason}")
    delta = after.score - before.score
    if abs(delta) >= _MOVED:
        lines.append(f"score {before.score:.3f} -> {after.score:.3f} ({delta:+.3f})")
    for name in dict.fromkeys([*before.components, *after.components]):
        a, b = before.components.get(name), after.components.get(name)
        if a is None or b is None:
            lines.append(f"{name}: {'added' if a is None else 'gone'}")
        elif abs(b - a) >= _MOVED:
            lines.append(f"{name} {a:.3f} -> {b:.3f} ({b - a:+.3f})")
    old, new = set(score_notes(before)), set(score_notes(after))
    lines += [f"new: {note}" for note in score_notes(after) if note not in old]
    lines += [f"gone: {note}" for note in score_notes(before) if note not in new]
    if before.is_valid and after.is_valid and len(before.views) == len(after.views):
        moves = sorted(((b.clip_probability - a.clip_probability, a.index)
                        for a, b in zip(before.views, after.views)), key=lambda m: -abs(m[0]))
        for move, index in moves[:max_views]:
            if abs(move) >= _MOVED:
                lines.append(f"view {index}: p {move:+.3f}")
    return lines or ["no change"]
