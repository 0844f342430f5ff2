"""A ranking of assets as it grows: one record per asset, written as JSON, HTML, a table or CSV.

``text3d score`` (and ``text3d search``) rank assets against a description. Three outputs
tell the same story, with the same counts -- files found, scored, invalid (score 0, ranked
last with their reason), not scored (not assets, listed with the reason):

* the JSON document (``--json``): a head (prompt, references, models, off-protocol options,
  counts, whether the run completed) then ``assets`` IN RANK ORDER, then ``not_scored``;
  rewritten at most every ``every_s`` seconds while the run goes on, so an interrupted run
  keeps what it finished;
* the HTML folder (``--html``, ``text3d.reward.reporting.html.HtmlReport``);
* the terminal: a compact table, one line per asset (long names shortened in the middle,
  notes shortened at the end; the JSON and HTML hold everything), or CSV (``--format csv``:
  every field, one row per asset, cells that a spreadsheet would run as a formula quoted).

Memory: a few KB per asset (each report's JSON is serialised once, on arrival); the views
are written to the HTML folder as the asset arrives and dropped.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from text3d.reward.assets.safe_fs import write_inside
from text3d.reward.reporting.evidence import RewardReport, score_notes
from text3d.reward.reporting.terminal import terminal_safe

__all__ = ["Record", "Ranking", "FORMATS"]

FORMATS = ("table", "csv", "none")
_LISTED = 40  # not-scored files printed in the terminal; the JSON and HTML list them all
_COMPONENTS = ("clip", "caption", "reference")


@dataclass(frozen=True)
class Record:
    """What is kept of one ranked asset: the table's fields and its report as JSON text.
    ``extra`` holds further ranked numbers (a search's likeness or filter score)."""

    name: str
    score: float
    components: dict[str, float]
    notes: tuple[str, ...]
    invalid_reason: str | None
    colours: str | None
    report_json: str
    extra: dict[str, float] = field(default_factory=dict)
    key: float | None = None  # what the ranking sorts by (default: score)

    @property
    def rank_key(self) -> float:
        return self.score if self.key is None else self.key


class Ranking:
    """Records as they come, and the three outputs (see the module docstring).

    ``head`` goes first in the JSON document (prompt, references, models, ...);
    ``unscored`` lists (name, reason) of files that are not assets; ``off_protocol`` names
    the options that make these scores differ from a validator's (in every output).
    """

    def __init__(self, *, title: str, head: dict[str, Any], unscored: list[tuple[str, str]],
                 json_path: Path | None = None, html_dir: Path | None = None, model_set: str | None = None,
                 off_protocol: tuple[str, ...] = (), every_s: float = 2.0, key_label: str = "score",
                 show_counts: bool = True) -> None:
        from text3d.reward.reporting.html import HtmlReport

        self.title = title
        self.head = dict(head)
        self.unscored = list(unscored)
        self.json_path = json_path
        self.html_dir = html_dir
        self.off_protocol = tuple(off_protocol)
        self.every_s = every_s
        self.key_label = key_label  # the ranked column's name ("score"; a search's "rank key")
        self.show_counts = show_counts
        self.records: list[Record] = []
        self._flushed_at = float("-inf")
        self.html = None
        if html_dir is not None:
            self.html = HtmlReport(Path(html_dir), title, model_set=model_set, off_protocol=self.off_protocol)
            for name, reason in self.unscored:
                self.html.add_unscored(name, reason)

    # -- growing ------------------------------------------------------------------------

    def add(self, name: str, report: RewardReport, colours: str | None = None, *,
            extra: dict[str, float] | None = None, key: float | None = None, html: bool = True,
            mesh: Any = None, source: Path | None = None) -> Record:
        """Record one asset (and write its views into the HTML folder when ``html``; ``mesh``
        goes in the page's 3D viewer when the asset ranks among the page's best, ``source``
        is linked)."""
        if self.html is not None and html:
            glb = None
            if mesh is not None and report.is_valid and self.html.wants_mesh(float(report.score)):
                from text3d.reward.reporting.html import viewer_glb

                glb = viewer_glb(mesh, self.html.max_mesh_bytes)
            self.html.add(name, report, colours, glb=glb, source=source)
        notes = [_without_name(note, name) for note in score_notes(report)]
        return self.add_record(Record(name, float(report.score), dict(report.components), tuple(notes),
                                      report.invalid_reason, colours, report.to_json(), dict(extra or {}), key))

    def add_record(self, record: Record) -> Record:
        """Record an asset ranked by something other than one report (``report_json`` may be "null")."""
        self.records.append(record)
        return record

    # -- reading ------------------------------------------------------------------------

    def ranking(self) -> list[int]:
        """Indices best first; invalid assets after valid ones with the same key."""
        return sorted(range(len(self.records)),
                      key=lambda i: (-self.records[i].rank_key, self.records[i].invalid_reason is not None))

    def counts(self) -> dict[str, int]:
        invalid = sum(r.invalid_reason is not None for r in self.records)
        return {"files": len(self.records) + len(self.unscored), "scored": len(self.records) - invalid,
                "invalid": invalid, "not_scored": len(self.unscored)}

    def counts_line(self) -> str:
        c = self.counts()
        return (f"{c['files']} files: {c['scored']} scored, {c['invalid']} invalid (score 0), "
                f"{c['not_scored']} not scored")

    # -- writing ------------------------------------------------------------------------

    def flush(self, final: bool, complete: bool = True) -> None:
        """Rewrite the JSON document and the HTML index (at most every ``every_s`` unless ``final``)."""
        now = time.monotonic()
        if not final and now - self._flushed_at < self.every_s:
            return
        self._flushed_at = now
        if self.json_path is not None:
            self.write_json(complete=final and complete)
        if self.html is not None:
            self.html.write()

    def paths(self) -> list[tuple[str, Path]]:
        out = []
        if self.json_path is not None:
            out.append(("JSON report", Path(self.json_path)))
        if self.html_dir is not None:
            out.append(("HTML report", Path(self.html_dir) / "index.html"))
        return out

    def write_json(self, complete: bool) -> None:
        """The document, one asset per line, in rank order."""
        head = {**self.head, "off_protocol": list(self.off_protocol), "counts": self.counts(), "complete": complete}
        lines = []
        for rank, i in enumerate(self.ranking(), start=1):
            r = self.records[i]
            extra = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in r.extra.items())
            if r.key is not None:
                extra += f', "key": {json.dumps(r.key)}'
            lines.append(f'{{"name": {json.dumps(r.name)}, "rank": {rank}, "colours": {json.dumps(r.colours)}, '
                         f'"notes": {json.dumps(list(r.notes))}{extra}, "report": {r.report_json}}}')
        not_scored = json.dumps([{"name": n, "reason": reason} for n, reason in self.unscored], indent=1)
        text = json.dumps(head)[:-1] + ',\n"assets": [\n' + ",\n".join(lines) + f'\n],\n"not_scored": {not_scored}\n}}\n'
        path = Path(self.json_path)
        write_inside(path.parent, path.name, text)

    def print_table(self, fmt: str = "table", out: TextIO | None = None, width: int | None = None) -> None:
        """The ranking on ``out`` (stdout): ``table`` (compact, one line per asset), ``csv``, ``none``."""
        out = out or sys.stdout
        if fmt == "none":
            return
        if fmt == "csv":
            self._print_csv(out)
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        terminal = Console(file=out)
        width = width or (max(100, terminal.width) if terminal.is_terminal else 160)
        console = Console(file=out, width=width, markup=False, highlight=False, emoji=False)
        extras = list(dict.fromkeys(k for r in self.records for k in r.extra))
        components = [c for c in _COMPONENTS if any(c in r.components for r in self.records)]
        title = Text(terminal_safe(self.title, 200))
        table = Table(title=title, highlight=False, box=None, pad_edge=False, padding=(0, 1), show_edge=False,
                      caption=Text(self.counts_line()) if self.show_counts else None)
        rank_chars = len(str(max(1, len(self.records))))
        table.add_column("rank", justify="right", no_wrap=True, min_width=max(4, rank_chars))
        for column in (self.key_label, *extras, *components):
            table.add_column(column, justify="right", no_wrap=True, min_width=max(5, len(column)))
        colours_chars = min(15, max([7] + [len(r.colours or "-") for r in self.records]))
        notes_chars = min(40, max([5] + [len("; ".join(r.notes)) for r in self.records]))
        table.add_column("colours", no_wrap=True, overflow="ellipsis", max_width=colours_chars)
        table.add_column("notes", no_wrap=True, overflow="ellipsis", max_width=notes_chars)
        table.add_column("asset", no_wrap=True, overflow="ellipsis", min_width=20)
        fixed = 5 + 6 * (1 + len(extras) + len(components)) + colours_chars + notes_chars + 3
        name_chars = max(20, width - fixed - 2)
        for rank, i in enumerate(self.ranking(), start=1):
            r = self.records[i]
            cells = [str(rank), f"{r.rank_key:.3f}", *(f"{r.extra[k]:.3f}" if k in r.extra else "-" for k in extras),
                     *(f"{r.components[c]:.3f}" if c in r.components else "-" for c in components),
                     r.colours or "-", "; ".join(r.notes) or "", _middle(r.name, name_chars)]
            table.add_row(*(Text(terminal_safe(cell)) for cell in cells))
        for line in self._off_protocol_lines():
            console.print(Text(line))
        console.print(table)

    def print_unscored(self, out: TextIO | None = None) -> None:
        out = out or sys.stdout
        if not self.unscored:
            return
        print(f"not scored ({len(self.unscored)} files):", file=out)
        for name, reason in self.unscored[:_LISTED]:
            print(f"  {terminal_safe(name, 120)}: {terminal_safe(reason, 200)}", file=out)
        if len(self.unscored) > _LISTED:
            print(f"  ... and {len(self.unscored) - _LISTED} more (all are listed in the JSON and HTML reports)",
                  file=out)

    def _off_protocol_lines(self) -> list[str]:
        if not self.off_protocol:
            return []
        return [terminal_safe("off-protocol: " + "; ".join(self.off_protocol)
                              + " (these scores differ from a validator's)")]

    def _print_csv(self, out: TextIO) -> None:
        extras = list(dict.fromkeys(k for r in self.records for k in r.extra))
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["rank", "name", self.key_label.replace(" ", "_"), *extras, *_COMPONENTS, "colours", "notes"])
        for rank, i in enumerate(self.ranking(), start=1):
            r = self.records[i]
            writer.writerow([rank, _cell(r.name), f"{r.rank_key:.6f}", *(_number(r.extra.get(k)) for k in extras),
                             *(_number(r.components.get(c)) for c in _COMPONENTS), _cell(r.colours or ""),
                             _cell("; ".join(r.notes))])


def _without_name(note: str, name: str) -> str:
    """``invalid: cannot load a/b.ply: reason`` -> ``invalid: cannot load: reason`` (the name is its own column)."""
    return note.replace(f"cannot load {name}: ", "cannot load: ", 1)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``= + - @`` (or tab/CR) would make
    Excel or LibreOffice run a stranger's file name as a formula, so it gets a quote mark."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _middle(name: str, max_chars: int) -> str:
    """``name`` shortened in the middle (``chairs/…/rocking.glb``): both ends say the most."""
    if len(name) <= max_chars:
        return name
    keep = max_chars - 1
    head = keep // 3
    return name[:head] + "…" + name[len(name) - (keep - head):]
