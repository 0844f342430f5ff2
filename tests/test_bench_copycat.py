"""bench/copycat.py keeps running: its --smoke mode ends with one JSON line of figures and exits 0,
and a fault anywhere under it exits non-zero with the reason on its last line."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_copycat_bench_smoke_runs_and_ends_with_one_json_line():
    done = subprocess.run([sys.executable, "bench/copycat.py", "--smoke"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "copycat" and result["smoke"] is True and result["ok"] is True
    assert result["tables"] and result["environment"]["versions"]["python"]  # the harness's JSON line
    figures = result["figures"]
    for row in figures["asset"].values():
        assert row["fingerprint_s"] > 0 and row["baseline_s"] > 0 and row["ratio"] > 0
    assert set(figures["step"]) == {"4", "8"} and all(s["false_groups"] == [] for s in figures["step"].values())
    honest = figures["honest"]  # 3 seeds of each generator and prompt: every pair judged, none joined
    assert len(honest) == 9 and all(c["pairs"] >= 1 and c["joined"] == [] for c in honest.values())
    assert sum(c["pairs"] for c in honest.values()) == 2 * 3 + 2 * 1 + 3 * 1 + 1 + 66
    assert figures["pair_s"] > 0 and figures["watchdog_overhead_ms"] >= 0 and figures["peak_rss_mb"] > 0


def test_a_fault_under_the_bench_exits_non_zero_with_the_reason_last(tmp_path):
    missing = tmp_path / "no such folder"
    done = subprocess.run([sys.executable, "bench/copycat.py", "--smoke", "--corpus", str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert done.stdout.strip().splitlines()[-1].startswith("FAILED copycat: FileNotFoundError")


def test_corpus_pairs_are_counted_by_object_strictly_and_by_what_a_scene_holds():
    """The real-file false-positive rate is a count over joined pairs: worked out by hand on five pairs."""
    from bench.copycat import different_objects

    joined = [["cube.obj", "box.stl", {}],         # one object: not counted
              ["cube.obj", "scene.3mf", {}],       # a scene holding the cube: counted strictly only
              ["letters.stl", "cube.obj", {}],     # different objects: counted both ways
              ["scene.3mf", "pair.obj", {}],       # two scenes that both hold the cube: strictly only
              ["letters.stl", "scene.3mf", {}]]    # the scene holds a cube, not the lettered one: both ways
    names = ["cube.obj", "box.stl", "scene.3mf", "letters.stl", "pair.obj", "tube.obj"]
    counted = different_objects(names, joined, {"cube": ["cube.obj", "box.stl"]},
                                {"scene.3mf": "cube", "pair.obj": "cube"})
    assert counted["different"] == [["cube.obj", "scene.3mf"], ["letters.stl", "cube.obj"], ["scene.3mf", "pair.obj"],
                                    ["letters.stl", "scene.3mf"]]
    assert counted["different_unless_held"] == [["letters.stl", "cube.obj"], ["letters.stl", "scene.3mf"]]
    # six files are five objects (cube.obj and box.stl one); four pairs of them are joined strictly, two counting scenes
    assert counted["objects"] == 5 and counted["object_pairs"] == 10
    assert counted["objects_joined"] == [["cube", "letters.stl"], ["cube", "scene.3mf"], ["letters.stl", "scene.3mf"],
                                         ["pair.obj", "scene.3mf"]]
    assert counted["objects_joined_unless_held"] == [["cube", "letters.stl"], ["letters.stl", "scene.3mf"]]


def test_the_shipped_object_lists_name_each_file_once():
    from bench.copycat import merged_object_lists

    corpora = REPO / "bench" / "corpora"
    trimesh_models = json.loads((corpora / "trimesh-models.json").read_text())
    both = merged_object_lists([trimesh_models, json.loads((corpora / "common-3d-test-models.json").read_text())])
    for objects, holds in (merged_object_lists([trimesh_models]), both):
        listed = [name for names in objects.values() for name in names]
        assert len(listed) == len(set(listed)) and len(listed) > 40
        assert set(holds.values()) <= set(objects)  # a scene holds a listed object
        assert not set(holds) & set(listed)  # and is an object of its own besides
    assert both[0]["suzanne"] == ["monkey.glb", "suzanne.ply", "suzanne.obj"]  # merged: the first list's files first


def test_an_object_list_without_a_corpus_fails_before_any_measuring():
    done = subprocess.run([sys.executable, "bench/copycat.py", "--smoke", "--corpus-objects",
                           "bench/corpora/trimesh-models.json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert done.stdout.strip().splitlines()[-1] == "FAILED copycat: --corpus-objects needs --corpus"
    assert "fingerprint" not in done.stderr  # no asset was timed first


def test_copies_of_a_corpus_are_made_per_distinct_object_and_counted_per_family(tmp_path):
    """``--corpus-copies``: one file stands for each object of the list (the chair saved twice is
    copied once), every deformation family of tests/copycat_corpus.py is applied, and what was
    caught, what escaped and what could not be made add up; every copy of the box chair is caught
    (as tests/test_copycat_rules.py finds)."""
    from tests import copycat_corpus as cc

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    chair = cc.box_chair()
    chair.export(corpus / "chair.ply")
    chair.export(corpus / "chair_again.glb")
    cc.distinct_objects()["torus"].export(corpus / "torus.ply")
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({"objects": {"chair": ["chair.ply", "chair_again.glb"]}}))
    done = subprocess.run([sys.executable, "bench/copycat.py", "--smoke", "--corpus", str(corpus), "--corpus-objects",
                           str(objects), "--corpus-copies", "1"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    copies = json.loads(done.stdout.strip().splitlines()[-1])["figures"]["corpus_copies"]
    assert set(copies["objects"]) == {"chair", "torus.ply"} and copies["objects"]["chair"]["file"] == "chair.ply"
    families = {**cc.DEFORMATIONS, **cc.COMBINATIONS}
    assert set(copies["families"]) == set(families)
    assert all(t["copies"] + t["unmade"] == 2 and 0 <= t["caught"] <= t["copies"] for t in copies["families"].values())
    escaped = sum(t["copies"] - t["caught"] for t in copies["families"].values())
    assert len(copies["escaped"]) == escaped and all(obj != "chair" for obj, *_ in copies["escaped"])
    assert sum(t["copies"] for t in copies["families"].values()) >= 2 * len(families) - 4


def test_corpus_copies_need_a_corpus():
    done = subprocess.run([sys.executable, "bench/copycat.py", "--smoke", "--corpus-copies", "2"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert done.stdout.strip().splitlines()[-1] == "FAILED copycat: --corpus-copies needs --corpus and a count of draws of 0 or more"
