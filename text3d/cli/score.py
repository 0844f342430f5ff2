"""``text3d score PATH --prompt "..."``: score and rank 3D assets against a description.

PATH is one mesh file or a folder (walked recursively) of them, in every format trimesh
reads (``text3d.reward.assets.loader``: GLB/glTF, OBJ + MTL, PLY, STL, OFF, 3MF, DAE, ZAE,
XAML, 3DXML, Draco), zip and tar archives (each member an asset), with their textures and
material colours; uncoloured meshes are drawn with a neutral default material. A file that
cannot be scored is listed with the reason (invalid assets score 0 and rank last; files that
are not meshes are listed as not scored), never a crash and never silently. The terminal, the
HTML and the JSON give the same counts (``text3d.reward.reporting.ranking``).

Streaming: assets are loaded, rendered and scored ``--batch-size`` at a time; results
are written as they come (``--json`` rewritten and ``--html`` views saved after every
batch), so an interrupted run keeps what it finished. Memory is bounded by one batch
(meshes, textures at most 2048 px a side, views) plus a few KB per asset for the ranking.
A progress bar runs on stderr when it is a terminal. Everything printed is escaped (rich
markup and terminal control characters). Works without a wallet, a chain or bittensor.

Options a library user needs but a validator never uses (your own ``--contrast`` prompts,
``--no-flatness`` for CAD plates, other views or resolutions) are named as off-protocol in
every output. ``--watch`` re-scores one file each time it is saved, with the models loaded
once. On a machine without network the hub is not retried: cached weights load at once and
missing ones are one sentence (``text3d.common.hub``).
"""

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

_METRICS = ("cosine", "jaccard", "euclidean", "dot")
_AGGREGATIONS = ("sum", "mean", "median", "none")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score and rank mesh files against a text prompt (CLIP + caption similarity)",
        description="Render each mesh, caption its views (optional) and score it against the prompt in [0, 1].",
    )
    parser.add_argument("path", type=Path, help="a mesh file (.glb .gltf .obj .ply .stl .off .3mf .dae .zae .xaml "
                                                ".3dxml .drc), a zip or tar archive of them, or a folder")
    parser.add_argument("--prompt", required=True, help="the text the assets should depict")
    parser.add_argument("--references", nargs="+", default=[], metavar="TEXT",
                        help="extra reference descriptions the captions are compared with")
    parser.add_argument("--contrast", nargs="+", default=None, metavar="TEXT",
                        help="your own contrast prompts for the CLIP component, e.g. the other things in your "
                             "library (off-protocol; default: the protocol's pool)")
    parser.add_argument("--no-flatness", action="store_true",
                        help="do not lower the score of flat shapes (CAD plates, tiles; off-protocol)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all reports as JSON to FILE (updated as it goes)")
    parser.add_argument("--html", type=Path, metavar="DIR", help="write an HTML report with the views into DIR")
    parser.add_argument("--format", choices=("table", "csv", "none"), default="table",
                        help="what is printed: a compact table, CSV with every field, or nothing (default: table)")
    parser.add_argument("--watch", action="store_true",
                        help="re-score the file each time it is saved (Ctrl-C stops); PATH must be one file")
    parser.add_argument("--captioner", default="none", metavar="URL|none",
                        help="OpenAI-compatible vision server (e.g. http://127.0.0.1:8080, see `text3d llava`); "
                             "default: none = score without captions (CLIP only)")
    parser.add_argument("--models", choices=("real", "tiny"), default="real",
                        help="real: production CLIP + all-mpnet-base-v2 (default); tiny: random tiny CLIP + "
                             "genuine mpnet, offline smoke runs")
    parser.add_argument("--views", type=int, default=8, help="views per mesh (default: 8)")
    parser.add_argument("--resolution", type=int, default=512, help="view size in pixels (default: 512)")
    parser.add_argument("--metric", choices=_METRICS, default="cosine", help="caption similarity (default: cosine)")
    parser.add_argument("--aggregation", choices=_AGGREGATIONS, default="mean",
                        help="reduction over views/references (default: mean)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="assets loaded, rendered and scored together (default: 8); memory grows with it")
    parser.add_argument("--max-file-mb", type=float, default=64.0,
                        help="largest mesh file (and file it references) that is read, in MiB (default: 64)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from text3d.common.hub import prefer_offline_when_unreachable
    from text3d.protocol.errors import EXIT_CONFIG
    from text3d.reward.assets.loader import MESH_SUFFIXES, AssetLimits, discover
    from text3d.reward.config import RewardConfig

    if not args.path.exists() and not args.path.is_symlink():
        return _fail(f"{args.path} does not exist.", EXIT_CONFIG)
    if args.batch_size < 1 or not args.max_file_mb > 0:
        return _fail("--batch-size must be at least 1 and --max-file-mb positive.", EXIT_CONFIG)
    if args.watch and args.path.is_dir():
        return _fail("--watch follows one file: give a mesh file, not a folder.", EXIT_CONFIG)
    if args.contrast is not None and not [c for c in args.contrast if c.strip()]:
        return _fail("--contrast needs at least one non-empty prompt.", EXIT_CONFIG)
    try:
        config = RewardConfig(n_views=args.views, resolution_px=args.resolution, metric=args.metric,
                              aggregation=args.aggregation, **({"min_thickness": 0.0} if args.no_flatness else {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid option {first['loc'][-1] if first['loc'] else '?'}: {first['msg']}.", EXIT_CONFIG)
    limits = AssetLimits(max_file_bytes=int(args.max_file_mb * (1 << 20)))
    root, entries = discover(args.path, limits)
    meshes = [e for e in entries if e.kind == "mesh"]
    if not meshes:
        detail = f": {entries[0].reason}" if len(entries) == 1 and entries[0].reason else ""
        return _fail(f"{args.path} holds no mesh files ({' '.join(MESH_SUFFIXES)}){detail}.", EXIT_CONFIG)
    prefer_offline_when_unreachable()  # before anything imports huggingface_hub

    from text3d.protocol.errors import ConfigError
    from text3d.reward.errors import ModelUnavailable, ValidatorFault
    from text3d.reward.factory import build_reward_model

    captioner = None
    try:
        if args.captioner.lower() != "none":
            from text3d.reward.caption import CaptionerConfig, OpenAICaptioner

            try:
                captioner = OpenAICaptioner(CaptionerConfig(base_url=args.captioner))
            except ValidationError:
                return _fail(f"--captioner must be an http(s) URL or 'none', got {args.captioner!r}.", EXIT_CONFIG)
        model = build_reward_model(args.models, captioner, device=args.device, config=config)
        if args.watch:
            return _watch(model, root, meshes[0], args, limits)
        return _score_folder(model, root, entries, meshes, args, limits)
    except ConfigError as exc:  # e.g. --device cuda without a working GPU: a setting to change
        return _fail(str(exc), EXIT_CONFIG)
    except ModelUnavailable as exc:  # weights to fetch: a setting to change, like a ConfigError
        return _fail(str(exc), EXIT_CONFIG)
    except ValidatorFault as exc:  # captioner or renderer failing: our side, say how to fix it
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the report: {exc.strerror or exc}.")
    finally:
        if captioner is not None:
            captioner.close()


def _ranking(model, args, unscored):
    from text3d.reward.config import off_protocol
    from text3d.reward.reporting.ranking import Ranking

    flags = off_protocol(model.config)
    if args.contrast is not None:
        flags = ["own contrast prompts (--contrast)", *[f for f in flags if f != "contrast prompts changed"]]
    head = {"prompt": args.prompt, "references": list(args.references), "models": args.models,
            "contrast": args.contrast, "captioner": model.captioner_name}
    return Ranking(title=f"text3d score: {args.prompt!r} ({args.models} models)", head=head, unscored=unscored,
                   json_path=args.json, html_dir=args.html, model_set=args.models, off_protocol=tuple(flags))


def _score_folder(model, root: Path, entries, meshes, args, limits) -> int:
    from text3d.reward.assets.archives import ArchiveCache
    from text3d.reward.reporting.evidence import CLIP_ONLY_NOTE

    ranking = _ranking(model, args, [(e.name, str(e.reason)) for e in entries if e.kind != "mesh"])
    interrupted = False
    with ArchiveCache(limits.archives) as archives:
        try:
            _score_streaming(model, root, meshes, args, ranking, limits, archives)
        except KeyboardInterrupt:
            interrupted = True
    ranking.flush(final=True, complete=not interrupted)
    if args.format != "none":
        if model.captioner is None and args.format == "table":
            print(f"{CLIP_ONLY_NOTE}: --captioner none")
        ranking.print_table(args.format)
        if args.format == "table":
            ranking.print_unscored()
            for label, path in ranking.paths():
                print(f"{label}: {_safe(path)}")
            if args.models == "tiny":
                print("note: --models tiny scores with a random-weight CLIP (an offline test model): the numbers "
                      "exercise the pipeline and say nothing about the assets; score with --models real for "
                      "meaningful ones.")
    if interrupted:
        print(f"text3d score: interrupted after {len(ranking.records)} of {len(meshes)} assets; "
              "the reports hold what finished.", file=sys.stderr)
        return 130
    return 0


def _score_entries(model, root: Path, batch, args, limits, archives) -> list[tuple[object, object, str | None, object]]:
    """(entry, report, colours, mesh or None) for a batch of entries: loaded, rendered and scored together."""
    from text3d.reward.assets import loader
    from text3d.reward.errors import InvalidAssetError
    from text3d.reward.reporting.evidence import RewardReport

    prompt, references = args.prompt, list(args.references)
    loaded: list = []
    for entry in batch:
        try:
            loaded.append(loader.load_asset(entry, root, limits, archives))
        except InvalidAssetError as exc:
            loaded.append(f"cannot load {entry.name}: {exc}")
    assets = [a for a in loaded if not isinstance(a, str)]
    distractors = None if args.contrast is None else [list(args.contrast)] * len(assets)
    scored = iter(model.score_batch([a.mesh for a in assets], [prompt] * len(assets), [references] * len(assets),
                                    distractors=distractors) if assets else [])
    out = []
    for entry, item in zip(batch, loaded):
        if isinstance(item, str):
            report = RewardReport.invalid(prompt, item, references=references, metric=model.metric,
                                          aggregation=model.aggregation, captioner=model.captioner_name,
                                          models=model.models())
            out.append((entry, report, None, None))
        else:
            report = next(scored)
            report.notes.extend(item.notes)
            out.append((entry, report, item.colours, item.mesh))
    return out


def _score_streaming(model, root: Path, meshes, args, ranking, limits, archives) -> None:
    """Load, render and score ``args.batch_size`` assets at a time, writing each batch out."""
    from tqdm import tqdm

    progress = tqdm(total=len(meshes), unit="asset", desc="scoring", file=sys.stderr, disable=None,
                    dynamic_ncols=True, leave=False)
    invalid = 0
    try:
        for start in range(0, len(meshes), args.batch_size):
            batch = meshes[start : start + args.batch_size]
            for entry, report, colours, mesh in _score_entries(model, root, batch, args, limits, archives):
                invalid += not report.is_valid
                ranking.add(entry.name, report, colours, mesh=mesh, source=entry.path)
            ranking.flush(final=False)  # meshes, textures and views of this batch are gone now
            progress.update(len(batch))
            progress.set_postfix(invalid=invalid, refresh=False)
    finally:
        progress.close()


def _watch(model, root: Path, entry, args, limits) -> int:
    """Score ``entry`` now and again after each save until Ctrl-C; print what changed."""
    import os
    import time

    from watchfiles import watch

    from text3d.reward.assets.archives import ArchiveCache
    from text3d.reward.reporting.changes import changes, describe

    target = os.path.realpath(entry.path)

    def ours(change, changed_path: str) -> bool:
        return os.path.realpath(changed_path) == target or os.path.basename(changed_path) == entry.path.name

    # the folder is watched from before the first scoring: a save during it is not missed. A burst of
    # writes (an exporter writing, renaming, touching) is one save (the debounce).
    events = watch(entry.path.parent, watch_filter=ours, debounce=400, step=100, rust_timeout=200,
                   yield_on_timeout=True, raise_interrupt=True)
    previous = None
    try:
        next(events)  # the watcher is set up once it has waited its first 200 ms
        print(_safe(f"watching {entry.path} (Ctrl-C stops); prompt {args.prompt!r}, {args.models} models"), flush=True)
        changed: set | None = None
        while True:
            if changed is not None and not changed:
                changed = next(events)
                continue
            if not os.path.exists(target):
                changed = set()  # a save in progress (removed, then written): the next event brings it
                continue
            with ArchiveCache(limits.archives) as archives:
                ((_, report, colours, mesh),) = _score_entries(model, root, [entry], args, limits, archives)
            print(_safe(f"-- {time.strftime('%H:%M:%S')} {entry.name}"), flush=True)
            for line in describe(report):
                print(_safe(line), flush=True)
            if previous is not None:
                print("changed since the last save:", flush=True)
                for line in changes(previous, report):
                    print(_safe(f"  {line}"), flush=True)
            previous = report
            if args.json is not None or args.html is not None:
                ranking = _ranking(model, args, [])
                ranking.add(entry.name, report, colours, mesh=mesh, source=entry.path)
                ranking.flush(final=True)
            changed = set()
    except KeyboardInterrupt:
        pass
    finally:
        events.close()
    return 0


def _safe(text: object, max_chars: int | None = None) -> str:
    from text3d.reward.reporting.terminal import terminal_safe

    return terminal_safe(text, max_chars)


def _fail(message: str, status: int = 1) -> int:
    """Print the one sentence; ``status``: 78 (EXIT_CONFIG) for a setting to change, 1 for a failure."""
    print(f"text3d score: {_safe(message)}", file=sys.stderr)
    return status
