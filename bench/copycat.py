"""Copycat rule: its cost per asset and per step, against the previous fingerprint in the same run.

Through the production entry points (``text3d.reward.defences.fingerprint``):

    asset      ``fingerprint(mesh)`` (geometry; the 32 px views are a resize of the rendered
               views, ~1 ms) for Shap-E-like coloured blobs of 20k, 100k and 1M faces, and the
               baseline ``bench/_copycat_baseline.geometry_fingerprint`` (the rule before issue 17)
    pair       ``match(a, b)``: the cheap evidence, then as much of the alignment as the pair needs,
               for two honest answers
    step       ``cluster_copies`` over 16 and 64 honest answers (blobs of different seeds; any group
               among them is a false positive, listed), plus
               the repeat check of each answer against the remembered answers of its miner
               (``RecentAnswers``, its default of 8), fingerprints excluded (counted per asset above)
    flood      ``cluster_copies`` over a step of 16 and 64 packed variants of one blob (stretches and
               tilts, the issue's packing attack): one group must come out; against judging every
               pair of them (what ``cluster_copies`` did before it judged only each answer against
               the leaders before it), timed once in the same run
    watchdog   the cost ``text3d.reward.render.watchdog.render_within`` adds around one render
    honest     with ``--honest-seeds N`` (the docs' figures: 44): every pair of honest answers
               of one prompt judged, for N procedural seeds each of a torus and a cone (the
               generator whose seeds come closest), N/2 each of a sphere and a cube, N/3 tiny
               Shap-E seeds each of three prompts, N/2 Shap-E-like blobs, and the distinct
               objects of ``tests/copycat_corpus.py``: pairs joined (false positives, listed)
               and the closest pairs by bent distance over their shape bound
    corpus     with ``--corpus DIR [DIR ...]``: every pair of the mesh files in the folders (e.g.
               trimesh's models/ folder) judged as one corpus; pairs joined as the same object
               are listed, and with ``--corpus-objects FILE [FILE ...]`` (``bench/corpora/``:
               trimesh's models, and what Alec Jacobson's common 3D test models add to them)
               counted by which files are one object: the false-positive rate on real files,
               per pair of files and per pair of distinct objects, strictly and counting a
               scene that holds an object as that object too
    copies     with ``--corpus-copies DRAWS`` as well: each distinct object of the corpus (one file
               standing for it) copied under every deformation family of
               ``tests/copycat_corpus.py``, DRAWS draws each, and judged against its original: the
               rule's catch rate on real files per family, and every copy that escaped with its
               distances, bound and the object's relief and fine detail

Medians over ``--repeats``; peak memory (RSS high-water mark) of the process. ``--smoke``:
small sizes (2k/10k faces, steps of 4 and 8 answers, 3 honest seeds); ``tests/test_bench_copycat.py`` runs it.
Honest answers joined as copies are false positives: listed in the table, not a fault.

Run from the repo root:
``python bench/copycat.py [--sizes 20000,100000,1000000] [--steps 16,64] [--repeats 3] [--honest-seeds 44] [--corpus DIR [DIR ...] [--corpus-objects FILE [FILE ...]] [--corpus-copies DRAWS]] [--smoke]``.
"""

import argparse
import itertools
import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, run  # noqa: E402

SMOKE = {"sizes": "2000,10000", "steps": "4,8", "answer_faces": 2_000, "repeats": 1, "honest_seeds": 3}
SUITE_RUNS = [["--honest-seeds", "44"]]  # make bench: the honest corpus docs/copycats.md quotes, every pair
SMOKE_TEST = "tests/test_bench_copycat.py::test_the_copycat_bench_smoke_runs_and_ends_with_one_json_line"
PACKAGES = ("numpy", "scipy", "trimesh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="20000,100000,1000000", help="faces of the fingerprinted assets")
    parser.add_argument("--steps", default="16,64", help="answers per step for the duplicate and repeat checks")
    parser.add_argument("--answer-faces", type=int, default=20_000, help="faces of each answer in a step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--honest-seeds", type=int, default=0,
                        help="judge every pair of this many honest seeds per prompt (0: skip; the docs use 44)")
    parser.add_argument("--corpus", type=Path, nargs="+", default=None,
                        help="folders of mesh files to judge pair by pair, as one corpus")
    parser.add_argument("--corpus-copies", type=int, default=0, metavar="DRAWS",
                        help="with --corpus: copy each distinct object of the corpus under every deformation "
                             "family of tests/copycat_corpus.py, DRAWS draws each, and count the copies caught")
    parser.add_argument("--corpus-objects", type=Path, nargs="+", default=None,
                        help="JSON lists of which files of --corpus are one object, merged in order "
                             "(bench/corpora/trimesh-models.json)")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_corpus(folders: list[Path]) -> dict:
    """{name: mesh} of the loadable mesh files in ``folders`` (4 to 1,000,000 faces, with area).

    A file is named by its file name, or ``<folder name>/<file name>`` where an earlier folder
    already had a file of that name (``--corpus-objects`` files use these names)."""
    import trimesh

    meshes, seen = {}, set()
    for path in [path for folder in folders for path in sorted(folder.iterdir())]:
        name = path.name if path.name not in seen else f"{path.parent.name}/{path.name}"
        seen.add(path.name)
        try:
            loaded = trimesh.load(path, force="mesh", process=False)
        except Exception:  # unreadable files are not part of the corpus
            continue
        if 4 <= len(loaded.faces) <= 1_000_000:
            meshes[name] = loaded
    return meshes


def corpus_prints(meshes: dict) -> dict:
    """{name: fingerprint} of the corpus meshes ``{name: mesh}`` (``load_corpus``) that fingerprint."""
    from text3d.reward.defences.fingerprint import fingerprint

    prints = {}
    for name, mesh in meshes.items():
        try:
            prints[name] = fingerprint(mesh)
        except Exception:  # degenerate files (no area) are not part of the corpus
            continue
    return prints


def corpus_pairs(prints: dict) -> dict:
    """Judge every pair of the corpus fingerprints ``{name: fingerprint}`` (``corpus_prints``);
    returns counts, the names and the joined pairs."""
    from text3d.reward.defences.fingerprint import match

    names = list(prints)
    joined = []
    for a, b in itertools.combinations(names, 2):
        found = match(prints[a], prints[b])
        if found.same:
            joined.append([a, b, found.as_dict()])
    return {"files": len(names), "names": names, "pairs": len(names) * (len(names) - 1) // 2, "joined": joined}


def corpus_copies(meshes: dict, prints: dict, objects: dict[str, list[str]], draws: int) -> dict:
    """Copies of real objects under every deformation family (``tests/copycat_corpus.py``'s
    ``DEFORMATIONS`` and ``COMBINATIONS``), ``draws`` random draws each, judged against their
    original by ``match``: the rule's catch rate on real files, the other side of the
    false-positive rate.

    One file stands for each distinct object (the first of its files in ``objects`` that
    fingerprints; a file not listed is an object of its own). Returns ``objects`` (those copied,
    with each one's relief and fine detail), per family ``caught`` / ``copies`` / ``unmade``
    (a deformation that failed on the file: not counted), and ``escaped``: ``[object, family,
    draw, geometry, bound, bent]`` for every copy judged another object (geometry None: the
    cheap evidence, proportions or radial profiles, set them apart before any alignment)."""
    import numpy as np

    from tests import copycat_corpus as cc
    from text3d.reward.defences.cloud_evidence import fine_detail, relief
    from text3d.reward.defences.fingerprint import fingerprint, match, parallel_map

    own = {name: obj for obj, files in objects.items() for name in files}
    chosen: dict[str, str] = {}
    for name in prints:  # load order: the first file of each object that fingerprints
        chosen.setdefault(own.get(name, name), name)
    families = {**cc.DEFORMATIONS, **cc.COMBINATIONS}
    jobs = [(obj, family, draw) for obj in chosen for family in families for draw in range(1, draws + 1)]

    def judge(job: tuple[str, str, int]) -> tuple:
        obj, family, draw = job
        try:
            copy = fingerprint(families[family](meshes[chosen[obj]], np.random.default_rng(draw)))
        except Exception:
            return job, None
        return job, match(prints[chosen[obj]], copy)

    def measured(x: float | None) -> float | None:
        """None where nothing was measured (inf: the cheap evidence alone set them apart)."""
        return None if x is None or not np.isfinite(x) else round(float(x), 4)

    tally = {family: {"copies": 0, "caught": 0, "unmade": 0} for family in families}
    escaped = []
    for (obj, family, draw), found in parallel_map(judge, jobs):
        if found is None:
            tally[family]["unmade"] += 1
            continue
        tally[family]["copies"] += 1
        tally[family]["caught"] += int(found.same)
        if not found.same:
            escaped.append([obj, family, draw, measured(found.geometry), measured(found.bound), measured(found.bent)])
    shape = {obj: {"file": name, "relief": round(relief(prints[name].cloud), 4),
                   "fine_detail": round(fine_detail(prints[name].cloud), 4)} for obj, name in chosen.items()}
    return {"objects": shape, "draws": draws, "families": tally, "escaped": escaped}


def merged_object_lists(specs: list[dict]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(objects, holds) of several ``--corpus-objects`` lists: an object named in more than one
    gains every list's files (in order, each once); a later list's ``holds`` entry wins."""
    objects: dict[str, list[str]] = {}
    holds: dict[str, str] = {}
    for spec in specs:
        for name, files in spec["objects"].items():
            objects.setdefault(name, []).extend(f for f in files if f not in objects[name])
        holds.update(spec.get("holds", {}))
    return objects, holds


def different_objects(names: list[str], joined: list, objects: dict[str, list[str]], holds: dict[str, str]) -> dict:
    """The joined corpus pairs (``corpus_pairs``'s ``[a, b, ...]`` over the files ``names``) that
    are different objects, per pair of files and per pair of distinct objects.

    ``objects`` maps an object's name to the files that are it; a file not listed is an object
    of its own. ``holds`` maps a file that is a scene to the object it holds beside something
    else. Returns:

    * ``different``: the joined file pairs of different objects (strict: a scene is an object
      of its own), and ``different_unless_held`` those left when a scene is also the object it
      holds (as the decoy rule means it to be); each a list of ``[a, b]``;
    * ``objects``: how many distinct objects the files are, ``object_pairs`` the pairs of them,
      and ``objects_joined`` /
      ``objects_joined_unless_held``: the pairs of distinct objects of which some two files are
      joined (a sorted ``[x, y]`` each): the rate on a corpus of distinct objects, where a
      file pair count weighs an object by how many files hold it (trimesh's models hold 21 cubes).
    """
    own = {name: obj for obj, files in objects.items() for name in files}

    def kinds(name: str) -> set[str]:
        return {own.get(name, name)} | ({holds[name]} if name in holds else set())

    different = [[a, b] for a, b, *_ in joined if own.get(a, a) != own.get(b, b)]
    unless_held = [[a, b] for a, b in different if not kinds(a) & kinds(b)]

    def object_pairs(pairs: list) -> list[list[str]]:
        return sorted({tuple(sorted((own.get(a, a), own.get(b, b)))) for a, b in pairs})

    count = len({own.get(name, name) for name in names})
    return {"different": different, "different_unless_held": unless_held,
            "objects": count, "object_pairs": count * (count - 1) // 2,
            "objects_joined": [list(x) for x in object_pairs(different)],
            "objects_joined_unless_held": [list(x) for x in object_pairs(unless_held)]}


def honest_pairs(seeds: int) -> dict:
    """Every pair of honest answers of one prompt (and of the distinct objects) judged.

    Returns per corpus its pair count, the joined pairs (false positives) and the three
    closest pairs by bent distance over their shape bound (the rule's margin: a ratio under
    1 would join them), measured only where the bend is measured at all.
    """
    import numpy as np

    from tests import copycat_corpus as cc
    from text3d.reward.defences.alignment import bent_distance, compare
    from text3d.reward.defences.fingerprint import DEFAULT_RULE, fingerprint, match

    corpora = {f"procedural {p!r}, {seeds} seeds": cc.procedural_seeds(p, range(6, 6 + seeds))
               for p in ("a green torus", "a yellow cone")}
    corpora |= {f"procedural {p!r}, {max(2, seeds // 2)} seeds": cc.procedural_seeds(p, range(max(2, seeds // 2)))
                for p in ("a red sphere", "a blue cube")}
    corpora |= {f"tiny Shap-E {p!r}, {max(2, seeds // 3)} seeds": cc.tiny_shap_e_seeds(p, range(max(2, seeds // 3)))
                for p in ("a red chair", "a wooden table", "a blue car")}
    corpora[f"Shap-E-like blobs, {max(2, seeds // 2)} seeds"] = cc.blob_seeds(range(max(2, seeds // 2)))
    corpora["distinct objects"] = list(cc.distinct_objects().values())
    out = {}
    for name, meshes in corpora.items():
        clouds = [fingerprint(m) for m in meshes]
        joined, margins = [], []
        for i, j in itertools.combinations(range(len(clouds)), 2):
            a, b = clouds[i].cloud, clouds[j].cloud
            if match(clouds[i], clouds[j]).same:
                joined.append([i, j])
            # the verdict is the production match(), which skips the bend where the rule needs none;
            # the margin wants the bend for every pair close enough, so the alignment runs again
            found = compare(a, b)
            if np.isfinite(found.geometry) and found.geometry < 0.3:
                margins.append((bent_distance(a, b, found) / DEFAULT_RULE.shape_bound(a, b), i, j))
        margins.sort()
        out[name] = {"pairs": len(clouds) * (len(clouds) - 1) // 2, "joined": joined,
                     "closest_bent_over_bound": [[round(r, 3), i, j] for r, i, j in margins[:3]]}
    return out


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    from bench._copycat_baseline import geometry_fingerprint
    from tests.meshes import coloured_sphere
    from tests.copycat_corpus import packing_variants
    from text3d.reward.defences.fingerprint import Fingerprint, cluster_copies, fingerprint, match, parallel_map
    from text3d.reward.render.watchdog import render_within
    from text3d.validator.repeats import RecentAnswers

    bench.check(args.corpus_objects is None or args.corpus is not None, "--corpus-objects needs --corpus")
    bench.check(args.corpus_copies >= 0 and (args.corpus_copies == 0 or args.corpus is not None),
                "--corpus-copies needs --corpus and a count of draws of 0 or more")
    sizes = [int(x) for x in args.sizes.split(",")]
    steps = [int(x) for x in args.steps.split(",")]
    out: dict = {}
    asset = {}
    for faces in sizes:
        mesh = coloured_sphere(faces, seed=1)
        new_s = bench.time(lambda: fingerprint(mesh), args.repeats).median_s
        old_s = bench.time(lambda: geometry_fingerprint(mesh), args.repeats).median_s
        asset[str(faces)] = {"faces": len(mesh.faces), "fingerprint_s": round(new_s, 4),
                             "baseline_s": round(old_s, 4), "ratio": round(new_s / old_s, 2)}
        bench.log(f"asset {len(mesh.faces):>9,} faces: fingerprint {new_s:.3f} s, baseline {old_s:.3f} s "
                  f"({new_s / old_s:.1f}x)")
    out["asset"] = asset

    prints = [fingerprint(coloured_sphere(args.answer_faces, seed=s)) for s in range(max(steps))]
    bench.check(isinstance(Fingerprint.from_bytes(prints[0].to_bytes()), Fingerprint),
                "a fingerprint did not survive to_bytes/from_bytes")
    pair_s = bench.time(lambda: match(prints[0], prints[1]), args.repeats).median_s
    out["pair_s"] = round(pair_s, 4)
    bench.log(f"pair (two honest answers): {pair_s * 1000:.1f} ms")

    remembered = [fingerprint(coloured_sphere(args.answer_faces, seed=1000 + k)) for k in range(8)]
    step = {}
    for n in steps:
        answers = prints[:n]
        memory = RecentAnswers()  # the default: each miner's last 8 answers
        for hotkey in range(n):  # every miner remembers earlier answers, none of them this one
            for k, fp in enumerate(remembered):
                memory.add(str(hotkey), k, f"prompt {k}", fp)
        cluster_s = bench.time(lambda: cluster_copies(answers), args.repeats).median_s
        repeats_s = bench.time(lambda: [memory.repeat_of(str(h), "a new prompt", fp) for h, fp in enumerate(answers)],
                               args.repeats).median_s
        groups = cluster_copies(answers)
        step[str(n)] = {"answers": n, "cluster_s": round(cluster_s, 4), "repeat_check_s": round(repeats_s, 4),
                        "false_groups": [[int(i) for i in g] for g in groups]}
        bench.log(f"step of {n} answers: duplicates {cluster_s:.3f} s, repeats {repeats_s:.3f} s; honest answers "
                  f"joined (false positives): {groups or 'none'}")
    out["step"] = step

    flood = {}
    original = coloured_sphere(args.answer_faces, seed=7)
    for n in steps:
        copies = [fingerprint(original)] + [fingerprint(v) for v in packing_variants(original, n - 1)]
        flood_s = bench.time(lambda: cluster_copies(copies), args.repeats).median_s
        pairs = list(itertools.combinations(range(n), 2))
        every_s = bench.time(lambda: parallel_map(lambda p: match(copies[p[0]], copies[p[1]]).same, pairs), 1).median_s
        groups = cluster_copies(copies)
        bench.check(groups == [list(range(n))], f"a step of {n} packed copies came out as {groups}, not one group")
        flood[str(n)] = {"answers": n, "cluster_s": round(flood_s, 4), "every_pair_s": round(every_s, 4),
                         "ratio": round(flood_s / every_s, 3), "groups": len(groups)}
        bench.log(f"flooded step of {n} packed copies: duplicates {flood_s:.3f} s, every pair judged {every_s:.3f} s "
                  f"({flood_s / every_s:.2f}x); groups: {len(groups)}")
    out["flood"] = flood

    direct = bench.time(lambda: [None for _ in range(100)], args.repeats).median_s / 100
    guarded = bench.time(lambda: [render_within(lambda: None, 5.0) for _ in range(100)], args.repeats).median_s / 100
    out["watchdog_overhead_ms"] = round((guarded - direct) * 1000, 4)
    bench.log(f"watchdog: {out['watchdog_overhead_ms']:.3f} ms per asset")

    if args.honest_seeds > 0:
        out["honest"] = honest_pairs(args.honest_seeds)
        for name, c in out["honest"].items():
            bench.log(f"honest {name}: {c['pairs']} pairs, joined {c['joined'] or 'none'}; closest bent/bound "
                      + ", ".join(f"{i}~{j} {r:.2f}" for r, i, j in c["closest_bent_over_bound"]))
    corpus_note = ""
    if args.corpus is not None:
        objects, holds = (merged_object_lists([json.loads(path.read_text()) for path in args.corpus_objects])
                          if args.corpus_objects is not None else ({}, {}))
        meshes = load_corpus(args.corpus)
        prints = corpus_prints(meshes)
        out["corpus"] = corpus_pairs(prints)
        where = " ".join(str(folder) for folder in args.corpus)
        c = out["corpus"]
        bench.log(f"corpus {where}: {c['files']} files, {c['pairs']} pairs, {len(c['joined'])} joined")
        for a, b, found in c["joined"]:
            bench.log(f"  joined: {a} ~ {b} {found}")
        corpus_note = f" Corpus {' + '.join(folder.name for folder in args.corpus)}: {c['files']} files, {c['pairs']:,} pairs, {len(c['joined'])} joined."
        if args.corpus_objects is not None:
            lists = " ".join(str(path) for path in args.corpus_objects)
            listed = {name for names in objects.values() for name in names} | set(holds)
            unknown = sorted(listed - set(c["names"]))
            bench.check(not unknown, f"{lists} name files {where} does not hold or load: {unknown}")
            c.update(different_objects(c["names"], c["joined"], objects, holds))
            strict, held = len(c["different"]), len(c["different_unless_held"])
            for a, b in c["different"]:
                bench.log(f"  different objects: {a} ~ {b}" + ("" if [a, b] in c["different_unless_held"]
                                                                 else " (the same, counting what a scene holds)"))
            by_object, by_object_held = len(c["objects_joined"]), len(c["objects_joined_unless_held"])
            for x, y in c["objects_joined"]:
                bench.log(f"  distinct objects joined: {x} ~ {y}")
            counts = (f"file pairs of different objects joined: {strict} of {c['pairs']:,} "
                      f"({100 * strict / c['pairs']:.2f} %), {held} ({100 * held / c['pairs']:.2f} %) counting a "
                      f"scene as the object it holds too; pairs of the {c['objects']} distinct objects joined: "
                      f"{by_object} of {c['object_pairs']:,} ({100 * by_object / c['object_pairs']:.2f} %), "
                      f"{by_object_held} ({100 * by_object_held / c['object_pairs']:.2f} %) counting scenes so")
            bench.log(f"corpus: {counts}")
            corpus_note += f" Objects by {' + '.join(path.name for path in args.corpus_objects)}: {counts}."
        if args.corpus_copies > 0:
            copies = out["corpus_copies"] = corpus_copies(meshes, prints, objects, args.corpus_copies)
            for family, t in copies["families"].items():
                bench.log(f"copies {family}: {t['caught']} of {t['copies']} caught"
                          + (f" ({t['unmade']} could not be made)" if t["unmade"] else ""))
            for obj, family, draw, geometry, bound, bent in copies["escaped"]:
                shape = copies["objects"][obj]
                bench.log(f"  escaped: {obj} ({shape['file']}; relief {shape['relief']}, fine detail "
                          f"{shape['fine_detail']}) {family} draw {draw}: geometry {geometry}, bound {bound}, bent {bent}")
            made = sum(t["copies"] for t in copies["families"].values())
            caught = sum(t["caught"] for t in copies["families"].values())
            corpus_note += (f" Copies of its {len(copies['objects'])} distinct objects under every deformation family "
                            f"({copies['draws']} draws): {caught} of {made} caught.")
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)

    first, last = next(iter(asset.values())), step[str(max(steps))]
    honest_note = ""
    if args.honest_seeds > 0:
        honest_note = (f"; {sum(len(c['joined']) for c in out['honest'].values())} of "
                       f"{sum(c['pairs'] for c in out['honest'].values()):,} honest pairs of different seeds joined")
    bench.headline(f"Copycats: a {first['faces']:,}-face answer is fingerprinted in {duration(first['fingerprint_s'])} "
                   f"({first['ratio']:.1f}x the fingerprint before the deformation-proof rule), and a step of "
                   f"{last['answers']} honest blob answers (the worst case: every pair is aligned) is judged for "
                   f"duplicates in {duration(last['cluster_s'])} and for repeats in {duration(last['repeat_check_s'])}"
                   + honest_note + ".")
    bench.table(f"Copycat fingerprint per asset (Shap-E-like coloured blobs; median of {args.repeats})",
                ["faces", "fingerprint", "previous fingerprint (baseline)", "ratio"],
                [[f"{a['faces']:,}", duration(a["fingerprint_s"]), duration(a["baseline_s"]), f"{a['ratio']:.2f}x"]
                 for a in asset.values()],
                note="The baseline is the fingerprint before the deformation-proof rule (bench/_copycat_baseline.py), "
                     "timed in the same run.")
    bench.table(f"Copycat checks per step ({args.answer_faces:,}-face honest answers of different seeds)",
                ["answers", "duplicates (cluster_copies)", "repeats (8 remembered per miner)",
                 "honest answers joined (false positives)"],
                [[s["answers"], duration(s["cluster_s"]), duration(s["repeat_check_s"]),
                  ", ".join(str(g) for g in s["false_groups"]) or "none"] for s in step.values()],
                note=f"One pair of answers aligned and judged: {duration(pair_s)}; the render watchdog adds "
                     f"{out['watchdog_overhead_ms']:.3f} ms per asset; peak RSS {out['peak_rss_mb']:,.0f} MB."
                     + (f" Honest pairs of one prompt, different seeds: {sum(c['pairs'] for c in out['honest'].values()):,}, "
                        f"{sum(len(c['joined']) for c in out['honest'].values())} joined; the closest ends at "
                        f"{min((r for c in out['honest'].values() for r, _, _ in c['closest_bent_over_bound']), default=float('nan')):.2f} "
                        "of its shape bound." if args.honest_seeds > 0 else "")
                     + corpus_note)
    bench.table("A step flooded with copies (packed variants of one blob: stretches and tilts)",
                ["answers", "duplicates (cluster_copies)", "every pair judged (before)", "ratio", "groups"],
                [[f["answers"], duration(f["cluster_s"]), duration(f["every_pair_s"]), f"{f['ratio']:.2f}x", f["groups"]]
                 for f in flood.values()],
                note="Each answer is judged only against the group leaders before it; every pair judged is timed "
                     "once in the same run.")
    return out


if __name__ == "__main__":
    sys.exit(run("copycat", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
