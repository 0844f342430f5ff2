"""Per-step evidence: one folder per validator step, the oldest deleted past a size cap.

    reports_dir/
        step_000042/
            step.json     task, timing breakdown, per-miner outcomes (uid, hotkey, score,
                          status, timing, the RewardReport JSON)
            index.html    + view images, written by ``text3d.reward.reporting.html.write_html_report``

The cap is on the whole folder: after each write, whole step folders are deleted
oldest first (by step number) until the total is at most ``max_mb``; the step just
written is never deleted.

The page has the same design as ``text3d score``'s (``text3d.reward.reporting.html``): a summary
table of the scored miners, the legend, each miner's views, and the miners that were not
scored (no answer, late, invalid mesh) with the reason from ``step.json``. Files are
written without following links planted in the reports folder (``text3d.reward.assets.safe_fs``), and
sizes are counted and folders pruned without following links either.
"""

import json
import re
import shutil
import stat
from pathlib import Path
from typing import Any, Sequence

__all__ = ["StepReports", "STEP_PREFIX"]

STEP_PREFIX = "step_"


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
    def __init__(self, reports_dir: str | Path, max_mb: float, *, min_free_mb: float = 200.0) -> None:
        self.reports_dir = Path(reports_dir)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)

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
    ) -> Path:
        """Write ``step.json`` (``summary``) and, when any miner answered, ``index.html``.

        ``scored`` pairs a label with a ``RewardReport``; miners in ``summary["miners"]``
        without a report are listed on the page as not scored, with their status and
        detail. Returns the step folder.
        """
        from text3d.reward.assets.safe_fs import make_dirs_inside, write_inside

        folder = make_dirs_inside(self.reports_dir, self.folder_of(step).name)
        miners = [m for m in summary.get("miners", []) if isinstance(m, dict)]
        unscored = [(_miner_label(m), f"{m.get('status', '?')}: {m.get('detail') or 'no detail'}")
                    for m in miners if m.get("report") is None]
        if scored or unscored:
            from text3d.reward.reporting.html import write_html_report

            with_report = [m for m in miners if m.get("report") is not None]
            labels = [_miner_label(m) for m in with_report] if len(with_report) == len(scored) else None
            entries = [(labels[i] if labels else _strip_score(label), report)
                       for i, (label, report) in enumerate(scored)]
            write_html_report(entries, folder, title or f"text3d validator step {step}", unscored=unscored)
        write_inside(folder, "step.json", json.dumps(summary, indent=1, default=str))
        self.prune(keep=folder)
        return folder

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
        total = sum(sizes.values())
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


def _miner_label(miner: dict) -> str:
    """``uid 3 (5Grwva…)``: who answered, without the score (the page shows it once)."""
    hotkey = str(miner.get("hotkey", ""))[:8]
    return f"uid {miner.get('uid', '?')} ({hotkey})" if hotkey else f"uid {miner.get('uid', '?')}"


def _strip_score(label: str) -> str:
    return re.sub(r"\s*score\s+[-0-9.]+\s*$", "", str(label))
