"""Per-step evidence: one folder per validator step, a history of every step, pages to read them by.

    reports_dir/
        index.html        every step newest first (canary, answers, best score), every miner
        history.jsonl     one line per step: what the index and the miner pages are made of
        miners/uid_NNN.html  one miner's history: a chart of its scores and average, one row a step
        model-viewer-umd.min.js  the 3D viewer, once for every step page
        step_000042/
            step.json     task, timing breakdown, per-miner outcomes (uid, hotkey, score,
                          status, timing, averages before and after, the RewardReport JSON)
            index.html    + view images and the top answers' meshes (``NNN_uid.../mesh.glb``),
                          written by ``text3d.reward.reporting.html``

The cap is on the whole folder: after each write, whole step folders are deleted
oldest first (by step number) until the total -- pages, history and viewer included -- is
at most ``max_mb``; the step just written is never deleted. The history outlives the step
folders (the index lists a pruned step without its link) but has its own share of the cap
(``HISTORY_SHARE``): past it, its oldest half goes.

The step page has the same design as ``text3d score``'s (``text3d.reward.reporting.html``),
opened by ``text3d.validator.report_pages.step_section``: each answer's status, seconds,
bytes, score and average before and after, what a step score is next to the moving
average, and the canary; then the scored miners' views, the best ``TOP_MESHES`` answers'
meshes in the 3D viewer, and the miners that were not scored with their reason. Files are
written without following links planted in the reports folder (``text3d.reward.assets.safe_fs``),
and sizes are counted and folders pruned without following links either.
"""

import json
import logging
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from text3d.validator import report_pages

__all__ = ["StepReports", "STEP_PREFIX", "TOP_MESHES", "MAX_MESH_BYTES", "top_meshes"]

log = logging.getLogger("text3d.validator")

STEP_PREFIX = "step_"
TOP_MESHES = 3  # the best answers of a step whose meshes the step page keeps for the 3D viewer
MAX_MESH_BYTES = 8 * 1024 * 1024  # a bigger GLB is not kept (it is embedded in the page too); Shap-E at grid 128: ~5 MB
HISTORY_NAME = "history.jsonl"
HISTORY_SHARE = 0.1  # of max_mb, at least HISTORY_MIN_BYTES
HISTORY_MIN_BYTES = 256 * 1024
VIEWER_MIN_FREE_FACTOR = 4  # the viewer script (~1 MB) is copied only while this many copies would fit the cap


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder``, links neither followed nor counted."""
    total = 0
    for path in folder.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
    return total


class StepReports:
    def __init__(self, reports_dir: str | Path, max_mb: float, *, min_free_mb: float = 200.0,
                 wall_clock: Callable[[], float] = time.time, history_max_bytes: int | None = None) -> None:
        """``history_max_bytes``: the history's share of the cap (default ``HISTORY_SHARE`` of it, at least
        ``HISTORY_MIN_BYTES``)."""
        self.reports_dir = Path(reports_dir)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)
        self.history_max_bytes = history_max_bytes or max(HISTORY_MIN_BYTES, int(self.max_bytes * HISTORY_SHARE))
        self._wall_clock = wall_clock
        self._history: list[dict[str, Any]] | None = None  # loaded from history.jsonl on first use
        self._history_bytes = 0
        self._history_clean = True

    def folder_of(self, step: int) -> Path:
        return self.reports_dir / f"{STEP_PREFIX}{step:06d}"

    def step_folders(self) -> list[Path]:
        """Existing step folders, oldest (lowest step) first."""
        if not self.reports_dir.is_dir():
            return []
        folders = [p for p in self.reports_dir.iterdir()
                   if p.name.startswith(STEP_PREFIX) and p.is_dir() and not p.is_symlink()]
        return sorted(folders, key=lambda p: p.name)

    def write(
        self,
        step: int,
        summary: dict[str, Any],
        scored: Sequence[tuple[str, Any]] = (),
        title: str | None = None,
        meshes: Mapping[int, bytes] | None = None,
    ) -> Path:
        """Write ``step.json`` (``summary``) and, when any miner answered, ``index.html``;
        then the step's line in the history, the index and the pages of the miners in it.

        ``scored`` pairs a label with a ``RewardReport``; miners in ``summary["miners"]``
        without a report are listed on the page as not scored, with their status and
        detail. ``meshes`` maps a uid to its answer as GLB: the best ``TOP_MESHES`` of those
        up to ``MAX_MESH_BYTES`` are kept for the viewer. Returns the step folder.
        """
        from text3d.reward.assets.safe_fs import make_dirs_inside, write_inside

        folder = make_dirs_inside(self.reports_dir, self.folder_of(step).name)
        miners = [m for m in summary.get("miners", []) if isinstance(m, dict)]
        unscored = [(_miner_label(m), f"{m.get('status', '?')}: {m.get('detail') or 'no detail'}")
                    for m in miners if m.get("report") is None]
        page = bool(scored or unscored)
        if page:
            from text3d.reward.reporting.html import write_html_report

            with_report = [m for m in miners if m.get("report") is not None]
            aligned = len(with_report) == len(scored)
            labels = [_miner_label(m) for m in with_report] if aligned else None
            entries = [(labels[i] if labels else _strip_score(label), report)
                       for i, (label, report) in enumerate(scored)]
            glbs = {}
            viewer = self._viewer_src()
            if aligned and meshes and viewer:
                glbs = {label: meshes[int(m["uid"])] for label, m in zip(labels or [], with_report)
                        if int(m.get("uid", -1)) in meshes}
            previous = [int(p.name[len(STEP_PREFIX):]) for p in self.step_folders()
                        if p.name < folder.name and (p / "index.html").is_file()]
            write_html_report(entries, folder, title or f"text3d validator step {step}", unscored=unscored,
                              meshes=glbs, max_meshes=TOP_MESHES, max_mesh_bytes=MAX_MESH_BYTES,
                              viewer_src=viewer or "", extra_style=report_pages.STEP_STYLE,
                              preamble_html=report_pages.step_section(summary, previous_step=max(previous, default=None)))
        write_inside(folder, "step.json", json.dumps(summary, indent=1, default=str))
        brief = report_pages.brief_of(summary, time_unix=self._wall_clock(), page=page)
        self._record(brief)
        self.prune(keep=folder)
        self.write_pages(uids=[m["uid"] for m in brief["miners"]])
        return folder

    # -- history and pages -------------------------------------------------------------------

    @property
    def history_path(self) -> Path:
        return self.reports_dir / HISTORY_NAME

    def history(self) -> list[dict[str, Any]]:
        """Every step's brief, oldest first (read once from ``history.jsonl``; unreadable lines skipped)."""
        if self._history is None:
            self._history = []
            try:
                text = self.history_path.read_text(errors="replace") if _regular(self.history_path) else ""
            except OSError:
                text = ""
            lines = text.splitlines()
            self._history_clean = not text or text.endswith("\n")  # a torn last line: rewrite before appending
            for line in lines:
                try:
                    brief = json.loads(line)
                    brief["step"] = int(brief["step"])
                    brief["miners"] = [m for m in brief.get("miners") or [] if isinstance(m, dict) and "uid" in m]
                except (ValueError, TypeError, KeyError, AttributeError):
                    self._history_clean = False
                    continue
                self._history.append(brief)
            self._history.sort(key=lambda b: b["step"])
            self._history_bytes = sum(len(line.encode()) + 1 for line in lines)
        return self._history

    def _record(self, brief: dict[str, Any]) -> None:
        """Add the step to the history: one appended line, normally; the file is rewritten when a step
        is run again (its line replaced) or the history passes its share of the cap (the oldest half goes)."""
        from text3d.reward.assets.safe_fs import write_inside

        history = self.history()
        line = json.dumps(brief, separators=(",", ":"), default=str) + "\n"
        in_order = self._history_clean and (not history or history[-1]["step"] < brief["step"])
        if in_order and self._history_bytes + len(line.encode()) <= self.history_max_bytes and _append(
                self.history_path, line):
            history.append(brief)
            self._history_bytes += len(line.encode())
            return
        history = sorted([b for b in history if b["step"] != brief["step"]] + [brief], key=lambda b: b["step"])
        lines = [json.dumps(b, separators=(",", ":"), default=str) + "\n" for b in history]
        while len(lines) > 1 and sum(len(text.encode()) for text in lines) > self.history_max_bytes:
            drop = max(1, len(lines) // 2)
            lines, history = lines[drop:], history[drop:]
        write_inside(self.reports_dir, HISTORY_NAME, "".join(lines))
        self._history = history
        self._history_bytes = sum(len(text.encode()) for text in lines)
        self._history_clean = True

    def write_pages(self, uids: Sequence[int] | None = None) -> None:
        """(Re)write ``index.html`` and the pages of ``uids`` (None: every miner in the history)."""
        from text3d.reward.assets.safe_fs import write_inside

        history = self.history()
        kept = {int(p.name[len(STEP_PREFIX):]) for p in self.step_folders() if (p / "index.html").is_file()}
        used = self.total_bytes()
        write_inside(self.reports_dir, "index.html", report_pages.index_page(
            history, title=f"text3d validator reports ({self.reports_dir.parent.name or 'validator'})",
            kept_steps=kept, used_mb=used / 2**20, cap_mb=self.max_bytes / 2**20))
        wanted = {int(m["uid"]) for b in history for m in b["miners"]} if uids is None else set(map(int, uids))
        for uid in sorted(wanted):
            write_inside(self.reports_dir, f"miners/{report_pages.miner_page_name(uid)}",
                         report_pages.miner_page(uid, history, kept_steps=kept))

    def _viewer_src(self) -> str | None:
        """``../model-viewer-umd.min.js`` once the script is in the reports folder; None when it is not
        installed or the cap is too small to spend a megabyte on it (the pages show still images)."""
        from text3d.web.viewer import VIEWER_JS_NAME, viewer_js_path

        target = self.reports_dir / VIEWER_JS_NAME
        source = viewer_js_path()
        if source is None:
            return None
        if not (_regular(target) and target.stat().st_size == source.stat().st_size):
            used = self.total_bytes()
            if self.cap_bytes(used) - used < VIEWER_MIN_FREE_FACTOR * source.stat().st_size:
                return None
            from text3d.reward.assets.safe_fs import write_inside

            write_inside(self.reports_dir, VIEWER_JS_NAME, source.read_bytes())
        return f"../{VIEWER_JS_NAME}"

    def total_bytes(self) -> int:
        """Everything under the reports folder: step folders, pages, history, viewer (links not counted)."""
        return _folder_bytes(self.reports_dir) if self.reports_dir.is_dir() else 0

    def cap_bytes(self, used_bytes: int) -> int:
        """The folder's cap now: ``max_mb``, and never more than the disk holds while keeping some free.

        The space kept free is ``min_free_mb``, or a tenth of the file system when that is
        smaller (a small disk). A full disk makes the cap smaller than what the reports use,
        so pruning frees room for the validator's state first.
        """
        folder = self.reports_dir if self.reports_dir.exists() else _existing_parent(self.reports_dir)
        try:
            disk = shutil.disk_usage(folder)
        except OSError:
            return self.max_bytes
        keep_free = min(self.min_free_bytes, disk.total // 10)
        return max(0, min(self.max_bytes, used_bytes + disk.free - keep_free))

    def last_step_bytes(self) -> int:
        """Size of the newest step folder: what the next step will roughly need."""
        folders = self.step_folders()
        return _folder_bytes(folders[-1]) if folders else 0

    def prune(self, keep: Path | None = None, *, reserve_bytes: int = 0) -> list[Path]:
        """Delete the oldest step folders until the total plus ``reserve_bytes`` fits ``cap_bytes``.

        Called before each write (with room for the next step reserved) and after it (the
        step just written, ``keep``, is never deleted). Returns what was deleted.
        """
        folders = self.step_folders()
        sizes = {folder: _folder_bytes(folder) for folder in folders}
        total = self.total_bytes()  # the pages, the history and the viewer count too
        cap = self.cap_bytes(total)
        deleted = []
        for folder in folders:
            if total + reserve_bytes <= cap:
                break
            if keep is not None and folder == keep:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= sizes[folder]
            deleted.append(folder)
        return deleted


def top_meshes(scored: Sequence[tuple[Any, Any]], k: int = TOP_MESHES, max_bytes: int = MAX_MESH_BYTES) -> dict[int, bytes]:
    """Executor job: ``{uid: GLB}`` of the ``k`` best-scoring ok answers among ``(outcome, mesh)`` pairs.

    The GLB is written by us from the decoded, limit-checked mesh (never the miner's bytes), and
    one over ``max_bytes`` is left out: a miner cannot make the reports hold more than
    ``k`` x ``max_bytes`` of its meshes per step. Never raises: evidence is best-effort.
    """
    from text3d.reward.reporting.html import viewer_glb

    ranked = sorted((pair for pair in scored if pair[0].status == "ok" and pair[1] is not None),
                    key=lambda pair: -float(pair[0].score))
    kept: dict[int, bytes] = {}
    for outcome, mesh in ranked:
        if len(kept) >= k:
            break
        glb = viewer_glb(mesh, max_bytes)
        if glb is not None:
            kept[int(outcome.uid)] = glb
    return kept


def _append(path: Path, text: str) -> bool:
    """Append to ``path`` (created if missing) without following a link; False when that cannot be done."""
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        return False  # a planted link (ELOOP) or no room: the caller rewrites the file instead
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        os.write(fd, text.encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _regular(path: Path) -> bool:
    """A regular file, not a link to one (a planted link is never read or counted)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _miner_label(miner: dict) -> str:
    """``uid 3 (5Grwva…)``: who answered, without the score (the page shows it once)."""
    hotkey = str(miner.get("hotkey", ""))[:8]
    return f"uid {miner.get('uid', '?')} ({hotkey})" if hotkey else f"uid {miner.get('uid', '?')}"


def _strip_score(label: str) -> str:
    return re.sub(r"\s*score\s+[-0-9.]+\s*$", "", str(label))
