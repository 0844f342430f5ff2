"""Cost of the copycat rule per asset and per step, against the previous fingerprint in the same run.

Through the production entry points (``text3d.reward.defences.fingerprint``):

    asset      ``fingerprint(mesh)`` (geometry; the 32 px views are a resize of the rendered
               views, ~1 ms) for Shap-E-like coloured blobs of 20k, 100k and 1M faces, and the
               baseline ``bench/copycat_baseline.geometry_fingerprint`` (the rule before issue 17)
    pair       ``match(a, b)``: the cheap evidence, then as much of the alignment as the pair needs,
               for two honest answers
    step       ``cluster_copies`` over 16 and 64 honest answers (blobs of different seeds; any group
               among them is a false positive, listed), plus
               the repeat check of each answer against the remembered answers of its miner
               (``RecentAnswers``, its default of 8), fingerprints excluded (counted per asset above)
    watchdog   the cost ``text3d.reward.render.watchdog.render_within`` adds around one render
    corpus     with ``--corpus DIR``: every pair of the mesh files in DIR (e.g. trimesh's
               models/ folder) judged; pairs joined as the same object are listed (the
               false-positive rate on real files, after removing true duplicates by eye)

Medians over ``--repeats``; peak memory (RSS high-water mark) of the process; ends with ONE
JSON line. ``--smoke``: small sizes (2k/10k faces, steps of 4 and 8 answers), for the test
that keeps this script alive. Exits non-zero, with the reason on its last line, when
anything under it faults.

Run from the repo root: ``python bench/copycat.py [--repeats 3] [--corpus DIR] [--smoke]``.
"""

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def corpus_pairs(folder: Path) -> dict:
    """Judge every pair of loadable mesh files under ``folder``; returns counts and the joined pairs."""
    import trimesh

    from text3d.reward.defences.fingerprint import fingerprint, match

    prints = {}
    for path in sorted(folder.iterdir()):
        try:
            loaded = trimesh.load(path, force="mesh", process=False)
            if len(loaded.faces) < 4 or len(loaded.faces) > 1_000_000:
                continue
            prints[path.name] = fingerprint(loaded)
        except Exception:  # unreadable or degenerate files are not part of the corpus
            continue
    names = list(prints)
    joined = []
    for a, b in itertools.combinations(names, 2):
        found = match(prints[a], prints[b])
        if found.same:
            joined.append([a, b, found.as_dict()])
    return {"files": len(names), "pairs": len(names) * (len(names) - 1) // 2, "joined": joined}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=None, help="a folder of mesh files to judge pair by pair")
    parser.add_argument("--smoke", action="store_true", help="small sizes: a quick check that the bench runs")
    args = parser.parse_args(argv)

    from bench.copycat_baseline import geometry_fingerprint
    from tests.meshes import coloured_sphere
    from text3d.reward.defences.fingerprint import Fingerprint, cluster_copies, fingerprint, match
    from text3d.reward.render.watchdog import render_within
    from text3d.validator.repeats import RecentAnswers

    sizes = (2_000, 10_000) if args.smoke else (20_000, 100_000, 1_000_000)
    steps = (4, 8) if args.smoke else (16, 64)
    repeats = 1 if args.smoke else args.repeats
    out: dict = {"bench": "copycat", "smoke": args.smoke, "python": platform.python_version(),
                 "machine": platform.machine(), "cpus": os.cpu_count()}

    asset = {}
    for faces in sizes:
        mesh = coloured_sphere(faces, seed=1)
        new_s = median_time(lambda: fingerprint(mesh), repeats)
        old_s = median_time(lambda: geometry_fingerprint(mesh), repeats)
        asset[str(faces)] = {"faces": len(mesh.faces), "fingerprint_s": round(new_s, 4),
                             "baseline_s": round(old_s, 4), "ratio": round(new_s / old_s, 2)}
        print(f"asset {len(mesh.faces):>9,} faces: fingerprint {new_s:.3f} s, baseline {old_s:.3f} s "
              f"({new_s / old_s:.1f}x)", flush=True)
    out["asset"] = asset

    answer_faces = 2_000 if args.smoke else 20_000
    prints = [fingerprint(coloured_sphere(answer_faces, seed=s)) for s in range(max(steps))]
    pair_s = median_time(lambda: match(prints[0], prints[1]), repeats)
    out["pair_s"] = round(pair_s, 4)
    print(f"pair (two honest answers): {pair_s * 1000:.1f} ms", flush=True)

    remembered = [fingerprint(coloured_sphere(answer_faces, seed=1000 + k)) for k in range(8)]
    step = {}
    for n in steps:
        answers = prints[:n]
        memory = RecentAnswers()  # the default: each miner's last 8 answers
        for hotkey in range(n):  # every miner remembers earlier answers, none of them this one
            for k, fp in enumerate(remembered):
                memory.add(str(hotkey), k, f"prompt {k}", fp)
        cluster_s = median_time(lambda: cluster_copies(answers), repeats)
        repeats_s = median_time(lambda: [memory.repeat_of(str(h), "a new prompt", fp) for h, fp in enumerate(answers)],
                                repeats)
        groups = cluster_copies(answers)
        step[str(n)] = {"answers": n, "cluster_s": round(cluster_s, 4), "repeat_check_s": round(repeats_s, 4),
                        "false_groups": [[int(i) for i in g] for g in groups]}
        print(f"step of {n} answers: duplicates {cluster_s:.3f} s, repeats {repeats_s:.3f} s; honest answers "
              f"joined (false positives): {groups or 'none'}", flush=True)
    out["step"] = step

    direct = median_time(lambda: [None for _ in range(100)], repeats) / 100
    guarded = median_time(lambda: [render_within(lambda: None, 5.0) for _ in range(100)], repeats) / 100
    out["watchdog_overhead_ms"] = round((guarded - direct) * 1000, 4)
    print(f"watchdog: {out['watchdog_overhead_ms']:.3f} ms per asset", flush=True)

    if args.corpus is not None:
        out["corpus"] = corpus_pairs(args.corpus)
        c = out["corpus"]
        print(f"corpus {args.corpus}: {c['files']} files, {c['pairs']} pairs, {len(c['joined'])} joined", flush=True)
        for a, b, found in c["joined"]:
            print(f"  joined: {a} ~ {b} {found}")
    assert isinstance(Fingerprint.from_bytes(prints[0].to_bytes()), Fingerprint)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # any fault: non-zero, the reason last
        traceback.print_exc()
        print(f"bench/copycat.py failed: {type(exc).__name__}: {exc}")
        sys.exit(1)
