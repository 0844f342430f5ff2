"""Per-step evidence: one folder per validator step, the oldest deleted past a size cap.

    reports_dir/
        step_000042/
            step.json     task, timing breakdown, per-miner outcomes (uid, hotkey, score,
                          status, timing, the RewardReport JSON)
            index.html    + view images, written by ``reward.report_html.write_html_report``

The cap is on the whole folder: after each write, whole step folders are deleted
oldest first (by step number) until the total is at most ``max_mb``; the step just
written is never deleted.
"""

import json
import shutil
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
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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
        folders = [p for p in self.reports_dir.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)]
        return sorted(folders, key=lambda p: p.name)

    def write(
        self,
        step: int,
        summary: dict[str, Any],
        scored: Sequence[tuple[str, Any]] = (),
        title: str | None = None,
    ) -> Path:
        """Write ``step.json`` (``summary``) and, when anything was scored, ``index.html``.

        ``scored`` pairs a label with a ``RewardReport``. Returns the step folder.
        """
        folder = self.folder_of(step)
        folder.mkdir(parents=True, exist_ok=True)
        if scored:
            from reward.report_html import write_html_report

            write_html_report(list(scored), folder, title or f"text3d validator step {step}")
        (folder / "step.json").write_text(json.dumps(summary, indent=1, default=str))
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
