"""Asset libraries, indexing (``text3d index``). Rules pinned here:

- every file is accounted for exactly as ``text3d score`` accounts for it: the assets score
  ranks are indexed, its invalid ones are invalid with the same reason, its not-scored files
  are not scored with the same reason (archive members included);
- a second run indexes only what changed: a new file, a file whose bytes changed, a file
  whose texture changed (a file it reads), a reference that was missing and now exists;
  a file only touched (same bytes) keeps its row; deleted files are dropped;
- an index is one set of settings: another ``--views`` is refused in one sentence, and
  ``--rebuild`` starts again;
- hostile files, links and sizes still hold through ``index``: links out of the folder, a
  FIFO, a 3 GiB sparse file (one stat), a zip-slip member, an archive bomb, a 3DXML product
  structure that expands to 2^40 instances -- each listed with its reason, nothing read
  outside the folder;
- a stranger's file name never becomes SQL: rows are deleted by a number derived from the
  name (a file named ``x') OR ('1'='1.ply`` deleted alone, its neighbours kept), and names
  that are not UTF-8 are indexed with their bytes kept.
"""

import os
import shutil
import time

import numpy as np
import pytest

from tests.asset_corpus import coloured_box, quadrant_texture, three_dxml, write_corpus, zip_bytes
from tests.library_fixtures import TINY, index_rows, score_json, text3d

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    write_corpus(folder)
    return folder


def test_every_file_is_accounted_for_as_text3d_score_does(corpus, tmp_path, capsys):
    status, out, _ = text3d(capsys, "index", corpus, "--index", tmp_path / "index", *TINY)
    assert status == 0, out
    status, _, _ = text3d(capsys, "score", corpus, "--prompt", "a red cube", "--json", tmp_path / "s.json",
                          "--format", "none", *TINY)
    assert status == 0
    scored = score_json(tmp_path / "s.json")
    rows = index_rows(tmp_path / "index")
    valid = {a["name"] for a in scored["assets"] if a["report"]["invalid_reason"] is None}
    invalid = {a["name"]: a["report"]["invalid_reason"] for a in scored["assets"] if a["report"]["invalid_reason"]}
    not_scored = {n["name"]: n["reason"] for n in scored["not_scored"]}
    assert {n for n, r in rows.items() if r["status"] == "indexed"} == valid
    assert {n: f"cannot load {n}: {r['reason']}" for n, r in rows.items() if r["status"] == "invalid"} == invalid
    assert {n: r["reason"] for n, r in rows.items() if r["status"] == "not_scored"} == not_scored
    assert "archives/crates.zip/crate/crate.obj" in valid and "other/tetra.3dxml" in valid  # members, new formats
    c = scored["counts"]
    assert f"{c['scored']} indexed, {c['invalid']} invalid (score 0), {c['not_scored']} not scored" in out


def _copy(corpus, tmp_path):
    folder = tmp_path / "library"
    shutil.copytree(corpus, folder)
    return folder


def _summary(out: str) -> str:
    return next(line for line in out.splitlines() if " files: " in line)


def test_a_second_run_indexes_only_what_changed(corpus, tmp_path, capsys):
    folder, index = _copy(corpus, tmp_path), tmp_path / "index"
    assert text3d(capsys, "index", folder, "--index", index, *TINY)[0] == 0
    before = index_rows(index, ("name", "status", "indexed_at", "sha256"))
    n_files = len(before)

    status, out, _ = text3d(capsys, "index", folder, "--index", index, *TINY)
    assert status == 0 and _summary(out) == f"{n_files} files: 0 new, 0 changed, {n_files} unchanged, 0 touched " \
                                            "(same bytes), 0 deleted"
    assert index_rows(index, ("name", "indexed_at")) == {n: {"name": n, "indexed_at": r["indexed_at"]}
                                                          for n, r in before.items()}

    time.sleep(0.01)  # a later mtime for the files written below
    (folder / "new" ).mkdir()
    (folder / "new" / "box.ply").write_bytes(coloured_box((10, 200, 10)).export(file_type="ply"))  # new
    (folder / "ply" / "uncoloured.ply").write_bytes(coloured_box().export(file_type="ply"))  # changed bytes
    quadrant_texture(64).rotate(90).save(folder / "obj_textured" / "material_0.png")  # a texture crate.obj reads
    touched = folder / "stl" / "binary.stl"
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))  # same bytes, new mtime
    (folder / "off" / "model.off").unlink()  # deleted
    status, out, _ = text3d(capsys, "index", folder, "--index", index, *TINY)
    assert status == 0
    # changed: uncoloured.ply and crate.obj (its texture); the texture's own row (not scored) is as it was
    assert _summary(out) == f"{n_files} files: 1 new, 2 changed, {n_files - 4} unchanged, 1 touched (same bytes), " \
                            "1 deleted"
    after = index_rows(index, ("name", "status", "indexed_at", "sha256", "mtime_ns"))
    assert "off/model.off" not in after and after["new/box.ply"]["status"] == "indexed"
    redone = {n for n in before if n in after and after[n]["indexed_at"] != before[n]["indexed_at"]}
    assert redone == {"ply/uncoloured.ply", "obj_textured/crate.obj"}
    assert after["ply/uncoloured.ply"]["sha256"] != before["ply/uncoloured.ply"]["sha256"]
    assert after["stl/binary.stl"]["mtime_ns"] == touched.stat().st_mtime_ns  # the stat is recorded, no re-index


def test_a_missing_reference_that_appears_reindexes_its_mesh(tmp_path, capsys):
    folder, index = tmp_path / "library", tmp_path / "index"
    folder.mkdir()
    (folder / "tet.obj").write_text("mtllib tet.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nusemtl red\n"
                                    "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    assert text3d(capsys, "index", folder, "--index", index, *TINY)[0] == 0
    first = index_rows(index, ("name", "colours", "indexed_at"))["tet.obj"]
    assert first["colours"] == "no colours"  # the MTL is missing: grey
    (folder / "tet.mtl").write_text("newmtl red\nKd 0.86 0.12 0.12\n")
    status, out, _ = text3d(capsys, "index", folder, "--index", index, *TINY)
    assert status == 0 and "1 new, 1 changed" in _summary(out)  # the MTL (not scored) is new, tet.obj changed
    assert index_rows(index, ("name", "colours"))["tet.obj"]["colours"] == "material colour"


def test_other_settings_are_refused_in_one_sentence_and_rebuild_starts_again(corpus, tmp_path, capsys):
    folder, index = tmp_path / "lib", tmp_path / "index"
    folder.mkdir()
    (folder / "box.ply").write_bytes(coloured_box().export(file_type="ply"))
    assert text3d(capsys, "index", folder, "--index", index, *TINY)[0] == 0
    status, _, err = text3d(capsys, "index", folder, "--index", index, "--models", "tiny", "--views", "3",
                            "--resolution", "64")
    assert status == 78 and err.count("\n") == 1 and "n_views 2, asked 3" in err \
        and "--rebuild" in err
    status, out, _ = text3d(capsys, "index", folder, "--index", index, "--models", "tiny", "--views", "3",
                            "--resolution", "64", "--rebuild")
    assert status == 0 and "1 new" in _summary(out)
    from text3d.library.store import AssetStore

    assert AssetStore.open(index).meta.views == 3
    status, _, err = text3d(capsys, "search", tmp_path / "nothing-here", "a box")
    assert status == 78 and "is not a text3d library index" in err


def test_hostile_files_links_and_sizes_still_hold_through_index(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.ply"
    secret.write_bytes(coloured_box().export(file_type="ply"))
    folder, index = tmp_path / "library", tmp_path / "index"
    folder.mkdir()
    (folder / "ok.ply").write_bytes(coloured_box().export(file_type="ply"))
    (folder / "link_out.ply").symlink_to(secret)
    (folder / "linked_dir").symlink_to(outside)
    os.mkfifo(folder / "pipe.obj")
    with open(folder / "huge.stl", "wb") as handle:  # 3 GiB, sparse: costs a stat
        handle.truncate(3 << 30)
    (folder / "slip.zip").write_bytes(zip_bytes({"../../escaped.ply": coloured_box().export(file_type="ply"),
                                                 "/abs.ply": coloured_box().export(file_type="ply"),
                                                 "fine.ply": coloured_box().export(file_type="ply")}))
    edges = [("10", "1", "20")]  # 40 layers of two parallel instances: 2^40 paths to the part
    for layer in range(40):
        a, b = f"{layer}a", f"{layer}b"
        parent, child = ("20" if layer == 0 else f"n{layer}"), f"n{layer + 1}"
        edges += [(a, parent, child), (b, parent, child)]
    edges.append(("last", "n40", "2"))
    (folder / "paths.3dxml").write_bytes(three_dxml(edges))
    status, out, _ = text3d(capsys, "index", folder, "--index", index, *TINY)  # the timeout: no 2^40 walk
    assert status == 0
    rows = index_rows(index)
    reason = {n: r["reason"] for n, r in rows.items()}
    assert rows["ok.ply"]["status"] == "indexed" and rows["slip.zip/fine.ply"]["status"] == "indexed"
    assert "outside the folder" in reason["link_out.ply"] and "linked folder" in reason["linked_dir/"]
    assert "not a regular file" in reason["pipe.obj"]
    assert "3221225472 bytes, the limit is" in reason["huge.stl"]
    assert "leaves the archive" in reason["slip.zip/../../escaped.ply"]
    assert "leaves the archive" in reason["slip.zip//abs.ply"]
    assert "part instances" in reason["paths.3dxml"]
    assert not (tmp_path / "escaped.ply").exists() and not any(tmp_path.rglob("escaped.ply"))
    assert "secret" not in out


def test_archive_bombs_are_refused_at_their_declared_or_actual_size(tmp_path, capsys):
    import zipfile

    folder, index = tmp_path / "library", tmp_path / "index"
    folder.mkdir()
    with zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.ply", "w", force_zip64=True) as member:  # 200 MiB of zeros in ~200 KB
            for _ in range(200):
                member.write(bytes(1 << 20))
    # a member whose header says 1 KB but that unpacks to 200 MiB (the header lies)
    data = bytearray((folder / "bomb.zip").read_bytes())
    liar = folder / "liar.zip"
    with zipfile.ZipFile(folder / "bomb.zip") as archive:
        info = archive.infolist()[0]
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (1024).to_bytes(4, "little")  # uncompressed size in the central directory
    liar.write_bytes(bytes(data))
    status, _, _ = text3d(capsys, "index", folder, "--index", index, *TINY, "--max-file-mb", "8")
    assert status == 0 and info.file_size == 200 << 20
    reason = {n: r["reason"] for n, r in index_rows(index).items()}
    assert "209715200 bytes unpacked, the limit is 8388608" in reason["bomb.zip/zeros.ply"]
    assert reason.get("liar.zip/zeros.ply") and ("more than 8388608 bytes" in reason["liar.zip/zeros.ply"]
                                                 or "cannot be unpacked" in reason["liar.zip/zeros.ply"])


def test_file_names_never_become_sql_and_odd_bytes_survive(tmp_path, capsys):
    folder, index = tmp_path / "library", tmp_path / "index"
    folder.mkdir()
    box = coloured_box().export(file_type="ply")
    names = ["a.ply", "x') OR ('1'='1.ply", "b'; DROP TABLE assets; --.ply", "c.ply"]
    for name in names:
        (folder / name).write_bytes(box)
    odd = os.fsencode(str(folder)) + b"/caf\xe9.ply"  # latin-1, not UTF-8
    with open(odd, "wb") as handle:
        handle.write(box)
    assert text3d(capsys, "index", folder, "--index", index, *TINY)[0] == 0
    rows = index_rows(index, ("name", "status", "path_bytes"))
    assert rows["caf\\xe9.ply"]["status"] == "indexed" and rows["caf\\xe9.ply"]["path_bytes"] == b"caf\xe9.ply"
    (folder / names[1]).unlink()
    status, out, _ = text3d(capsys, "index", folder, "--index", index, *TINY)
    assert status == 0 and "1 deleted" in _summary(out)
    assert sorted(index_rows(index)) == sorted(["a.ply", names[2], "c.ply", "caf\\xe9.ply"])


def test_take_answers_in_the_order_asked(tmp_path):
    """``AssetStore.take`` relies on LanceDB answering ascending offsets in ascending order,
    across fragments and after deletes; pinned here so an upgrade that changes it fails."""
    from text3d.library.schema import IndexMeta
    from text3d.library.store import AssetStore

    store = AssetStore.open(tmp_path / "index", create=True)
    store.adopt(IndexMeta(models="tiny", clip="c", config={}, rig={}, views=1, clip_dim=2, root=str(tmp_path),
                          protocol_digest="x"))
    for chunk in range(4):  # several fragments
        store.upsert([{"name": f"n{chunk}-{i}", "status": "indexed", "clip": np.array([chunk, i], np.float32),
                       "clip_mean": np.array([chunk, i], np.float32)} for i in range(50)])
    store.delete([f"n1-{i}" for i in range(0, 50, 3)])
    names = store.scan(["name"]).column("name").to_pylist()
    offsets = list(np.random.default_rng(0).permutation(len(names))[:60])
    assert store.take(offsets, ["name"]).column("name").to_pylist() == [names[o] for o in offsets]
