"""The validator's state survives restarts and crashes, and a new hotkey inherits nothing.

Pinned rules: the moving average is ``alpha * score + (1 - alpha) * previous`` with
scores clipped to [0, 1] and NaN counted as 0; a uid whose hotkey changes starts from
zero; saving is atomic (a failed save leaves the previous file intact); load(save(s))
is s; a missing file is a fresh start, a corrupt one is refused with a clear message.
"""

import json
import os

import pytest

from text3d.validator.state import ValidatorState


def test_moving_average():
    state = ValidatorState()
    assert state.update(3, 1.0, alpha=0.5) == pytest.approx(0.5)
    assert state.update(3, 1.0, alpha=0.5) == pytest.approx(0.75)
    assert state.update(3, 0.0, alpha=0.5) == pytest.approx(0.375)


def test_scores_are_clipped_and_nan_counts_as_zero():
    state = ValidatorState()
    assert state.update(0, 7.0, alpha=1.0) == 1.0
    assert state.update(1, -2.0, alpha=1.0) == 0.0
    assert state.update(2, float("nan"), alpha=1.0) == 0.0


def test_hotkey_change_resets_that_uid_only():
    state = ValidatorState()
    state.sync_hotkeys(["a", "b", "c"])
    for uid in range(3):
        state.update(uid, 1.0, alpha=1.0)
    assert state.sync_hotkeys(["a", "NEW", "c"]) == [1]
    assert state.averages == {0: 1.0, 2: 1.0}
    assert state.hotkeys[1] == "NEW"


def test_shrinking_metagraph_forgets_vanished_uids():
    state = ValidatorState()
    state.sync_hotkeys(["a", "b", "c"])
    state.update(2, 1.0, alpha=1.0)
    state.sync_hotkeys(["a", "b"])
    assert 2 not in state.averages and 2 not in state.hotkeys


def test_save_then_load_resumes(tmp_path):
    state = ValidatorState(averages={0: 0.25, 5: 0.5}, hotkeys={0: "a", 5: "f"}, step=42, last_weight_block=1200)
    path = tmp_path / "deep" / "state.json"
    state.save(path)
    assert ValidatorState.load(path) == state
    # no temp files left: the state and its repeat memory only
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.json.answers.npz"]


def test_failed_save_leaves_previous_state_intact(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    ValidatorState(averages={1: 0.9}, step=1).save(path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        ValidatorState(averages={1: 0.1}, step=2).save(path)
    monkeypatch.undo()
    assert ValidatorState.load(path).averages == {1: 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.answers.npz"]


def test_missing_file_is_a_fresh_start_and_corrupt_file_is_refused(tmp_path):
    assert ValidatorState.load(tmp_path / "nothing.json") == ValidatorState()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="move it away"):
        ValidatorState.load(bad)
    bad.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError):
        ValidatorState.load(bad)


def test_the_repeat_memory_is_saved_beside_the_state_and_a_damaged_one_is_not_fatal(tmp_path):
    """Issue 17: the memory of each miner's answers survives a restart; it is expendable, the averages are not."""
    from tests.meshes import coloured_sphere
    from text3d.reward.defences.fingerprint import fingerprint

    state = ValidatorState(averages={3: 0.5}, hotkeys={3: "hk"}, step=7)
    for step in range(10):  # more than answers_per_miner: the oldest go
        state.answers.add("hk", step, f"prompt {step}", fingerprint(coloured_sphere(2000, seed=step % 2)))
    path = tmp_path / "state.json"
    state.save(path)
    assert ValidatorState.answers_path(path).exists()
    back = ValidatorState.load(path)
    assert back == state and len(back.answers) == 8 and [a.step for a in back.answers.answers("hk")] == list(range(2, 10))
    ValidatorState.answers_path(path).write_bytes(b"PK\x03\x04 damaged")
    damaged = ValidatorState.load(path)
    assert damaged.averages == {3: 0.5} and len(damaged.answers) == 0


def test_a_repeat_memory_of_an_older_fingerprint_format_starts_empty_and_keeps_the_averages(tmp_path, caplog):
    """A release that changes the fingerprint (0.1.7: the body trim) cannot compare its clouds with
    the ones it saved: the memory starts empty, the log says why, the moving averages survive."""
    import io

    import numpy as np

    from tests.meshes import coloured_sphere
    from text3d.reward.defences.fingerprint import fingerprint

    state = ValidatorState(averages={3: 0.5}, hotkeys={3: "hk"}, step=7)
    state.answers.add("hk", 1, "a chair", fingerprint(coloured_sphere(2000, seed=0)))
    path = tmp_path / "state.json"
    state.save(path)

    def older(blob: bytes) -> bytes:  # the same npz, written as fingerprint format 3 (spec 0.1.6)
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        arrays["version"] = np.int32(3)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    with np.load(io.BytesIO(ValidatorState.answers_path(path).read_bytes()), allow_pickle=False) as npz:
        memory = {name: npz[name] for name in npz.files}
    memory = {name: (np.frombuffer(older(value.tobytes()), np.uint8) if name.startswith("fp") else value)
              for name, value in memory.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **memory)
    ValidatorState.answers_path(path).write_bytes(buffer.getvalue())

    with caplog.at_level("WARNING"):
        back = ValidatorState.load(path)
    assert back.averages == {3: 0.5} and back.step == 7 and len(back.answers) == 0
    assert "unknown fingerprint version 3" in caplog.text
