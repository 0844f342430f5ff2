"""The validator's report pages and what they may cost: a unit's worth of rules, no browser.

Pinned:
- the step page keeps the meshes of the best ``TOP_MESHES`` ok answers, written by us as GLB from
  the decoded mesh; a miner whose mesh would make a GLB over ``MAX_MESH_BYTES`` gets no copy kept
  (the attack: answer a huge mesh to fill the validator's disk through its reports);
- the whole reports folder -- step folders, index, miner pages, history -- stays within the cap
  after every step (the newest step folder excepted), and the history keeps to its share of it;
  the index still lists a pruned step, without a link;
- text from miners and prompts (markup, quotes) is escaped on every page;
- the history survives a restart (read back from ``history.jsonl``; a torn line is skipped).
"""

from __future__ import annotations

import json

import numpy as np
import trimesh

from text3d.validator import report_pages
from text3d.validator.outcomes import MinerOutcome
from text3d.validator.reports import MAX_MESH_BYTES, StepReports, top_meshes
from tests.asset_corpus import coloured_box

HOSTILE = '<script>alert("x")</script>'


def _summary(step: int, *, prompt: str = "a red chair", hotkey: str = "5Honest", detail: str = "",
             canary: str | None = "ok") -> dict:
    return {
        "step": step, "task": {"prompt": prompt, "seed": step}, "canary": canary, "updated": True, "fault": None,
        "weights": None, "alpha": 0.1, "timing_s": {"total_s": 2.0},
        "averages": {"1": {"before": 0.1, "after": 0.15}, "2": {"before": 0.0, "after": 0.0}},
        "miners": [
            {"uid": 1, "hotkey": hotkey, "status": "ok", "score": 0.6, "response_s": 1.2, "payload_bytes": 1000,
             "detail": "", "report": None},
            {"uid": 2, "hotkey": "5Late", "status": "late", "score": 0.0, "response_s": 12.0, "payload_bytes": 0,
             "detail": detail, "report": None},
        ],
    }


def test_only_the_best_meshes_are_kept_and_a_huge_one_never():
    huge = trimesh.creation.icosphere(subdivisions=8)  # 1,310,720 faces: a GLB of ~26 MB
    huge.visual.vertex_colors = np.full((len(huge.vertices), 4), 200, dtype=np.uint8)
    pairs = [(MinerOutcome(1, "a", "ok", score=0.9), huge),
             (MinerOutcome(2, "b", "ok", score=0.8), coloured_box()),
             (MinerOutcome(3, "c", "ok", score=0.7), coloured_box((0, 200, 0))),
             (MinerOutcome(4, "d", "ok", score=0.6), coloured_box((0, 0, 200))),
             (MinerOutcome(5, "e", "ok", score=0.5), coloured_box((9, 9, 9))),
             (MinerOutcome(6, "f", "invalid", score=0.99), coloured_box())]
    kept = top_meshes(pairs, k=3)
    assert sorted(kept) == [2, 3, 4]  # the huge one is skipped, the invalid one never considered
    assert all(glb[:4] == b"glTF" and len(glb) <= MAX_MESH_BYTES for glb in kept.values())


def test_the_folder_stays_within_the_cap_and_the_history_outlives_the_steps(tmp_path):
    reports = StepReports(tmp_path / "reports", max_mb=0.5, min_free_mb=0.0)
    for step in range(1, 31):
        folder = reports.write(step, _summary(step))
        (folder / "views.bin").write_bytes(b"x" * 60_000)  # what PNGs would weigh
        reports.prune()
        assert reports.total_bytes() <= reports.max_bytes + 70_000
    kept = [p.name for p in reports.step_folders()]
    assert 1 <= len(kept) < 30 and kept[-1] == "step_000030"
    history = reports.history()
    assert [b["step"] for b in history] == list(range(1, 31))  # the index still knows every step
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "step 1<" in index and 'href="step_000001/' not in index  # pruned: listed, not linked
    assert 'href="step_000030/index.html"' in index
    assert (tmp_path / "reports" / "miners" / "uid_001.html").is_file()


def test_the_history_keeps_to_its_share_of_the_cap(tmp_path):
    reports = StepReports(tmp_path, max_mb=1.0, min_free_mb=0.0, history_max_bytes=12_000)
    assert StepReports(tmp_path, max_mb=500.0).history_max_bytes == 50 * 1024 * 1024  # a tenth of the cap
    for step in range(1, 61):
        reports.write(step, _summary(step, detail="x" * 150))
        assert (tmp_path / "history.jsonl").stat().st_size <= 12_000
    steps = [b["step"] for b in StepReports(tmp_path, max_mb=1.0).history()]
    assert steps[-1] == 60 and steps == list(range(steps[0], 61)) and steps[0] > 1  # the oldest went first


def test_text_from_miners_and_prompts_is_escaped_everywhere(tmp_path):
    reports = StepReports(tmp_path, max_mb=5.0, min_free_mb=0.0)
    reports.write(1, _summary(1, prompt=HOSTILE, hotkey=HOSTILE, detail=HOSTILE, canary=HOSTILE))
    pages = [tmp_path / "index.html", tmp_path / "miners" / "uid_001.html", tmp_path / "miners" / "uid_002.html"]
    section = report_pages.step_section(_summary(1, prompt=HOSTILE, hotkey=HOSTILE, detail=HOSTILE, canary=HOSTILE),
                                        previous_step=None)
    for text in [p.read_text() for p in pages] + [section]:
        assert "<script>" not in text and "&lt;script&gt;" in text


def test_the_history_survives_a_restart_and_a_torn_line(tmp_path):
    reports = StepReports(tmp_path, max_mb=5.0, min_free_mb=0.0)
    for step in (1, 2):
        reports.write(step, _summary(step))
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"step": 3, "miners": [')  # killed mid-line
    again = StepReports(tmp_path, max_mb=5.0, min_free_mb=0.0)
    assert [b["step"] for b in again.history()] == [1, 2]
    again.write(3, _summary(3))
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


def test_the_step_section_explains_average_versus_score():
    text = report_pages.step_section(_summary(4), previous_step=3)
    assert "α = 0.1" in text and "0.100 to 0.150" in text and "22 steps" in text
    assert 'href="../step_000003/index.html"' in text and 'href="../index.html"' in text


def test_a_miners_detail_cannot_forge_a_log_line(caplog):
    """The attack: a detail carrying a newline would let a miner write a line of its own into the validator's
    log ("step 9 uid 2 ...: ok score 0.999"). Each miner gets exactly one line, control characters escaped."""
    import logging

    from text3d.validator.engine import Validator
    from text3d.validator.outcomes import StepResult
    from text3d.validator.prompts import Task

    forged = "bad header\nINFO text3d.validator: step 9 uid 2 5Forged: ok score 0.999 avg 0.999"
    result = StepResult(9, Task("a red chair", 0), [MinerOutcome(2, "5Honest", "malformed", detail=forged)],
                        {"total_s": 1.0}, updated=True, averages={2: (0.1, 0.09)})
    caplog.set_level(logging.INFO, logger="text3d")
    Validator._log_step(object.__new__(Validator), result, 1)
    lines = [r.getMessage() for r in caplog.records if "uid 2" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "\\x0a" in lines[0], lines
