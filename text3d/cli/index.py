"""``text3d index DIR --index PATH``: render and embed every asset of a folder once, into a library.

Every file is accounted for as in ``text3d score`` (indexed, invalid with the reason, or not
scored with the reason); a second run indexes only new or changed files (the file, or a file
it reads such as a texture) and drops deleted ones. ``--ray-address auto`` runs the same
per-asset work on a Ray cluster's workers (Ray Data, CPU or GPU actors) writing to the same
index. The flags that decide what is stored (``--models --views --resolution --captioner
--ocr``) are the index's settings: a later run must repeat them (or ``--rebuild``).
See ``text3d.library`` and docs/library.md.
"""

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

_LISTED = 40


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "index",
        help="index a folder of 3D assets once (views, CLIP embeddings, captions, fingerprints) for text3d search",
        description="Render every asset of DIR once under the canonical rig and store what scoring needs in a "
                    "LanceDB index at PATH; later runs index only what changed.",
    )
    parser.add_argument("dir", type=Path, help="the library: a folder (walked recursively), an archive or one file")
    parser.add_argument("--index", type=Path, required=True, metavar="PATH", help="the index folder (created)")
    parser.add_argument("--models", choices=("real", "tiny"), default="real",
                        help="real: production CLIP (+ mpnet with captions); tiny: the offline test models")
    parser.add_argument("--views", type=int, default=8, help="views per asset (default: 8, the protocol's)")
    parser.add_argument("--resolution", type=int, default=512, help="view size in pixels (default: 512)")
    parser.add_argument("--captioner", default="none", metavar="URL|none",
                        help="OpenAI-compatible vision server to caption the views (default: none, CLIP only)")
    parser.add_argument("--ocr", action="store_true", help="read text on the views (the typographic defence)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="assets observed together (default: 8)")
    parser.add_argument("--max-file-mb", type=float, default=64.0, help="largest file read, in MiB (default: 64)")
    parser.add_argument("--rebuild", action="store_true", help="start the index again (other settings, or a reset)")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="run on a Ray cluster with Ray Data: auto, HOST:6379 or ray://HOST:10001")
    parser.add_argument("--ray-workers", type=int, default=0,
                        help="actors in the pool (default 0: one per GPU with --ray-gpus, else the CPUs minus one)")
    parser.add_argument("--ray-cpus", type=float, default=1.0,
                        help="CPUs per actor (default 1; lowered so the pool never takes every CPU)")
    parser.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per actor (default 0: CPU actors)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from text3d.common.hub import prefer_offline_when_unreachable
    from text3d.protocol.errors import EXIT_CONFIG, ConfigError
    from text3d.reward.config import RewardConfig

    if not args.dir.exists():
        return _fail(f"{args.dir} does not exist.", EXIT_CONFIG)
    if args.batch_size < 1 or not args.max_file_mb > 0 or args.ray_workers < 0 or args.ray_cpus <= 0 \
            or args.ray_gpus < 0:
        return _fail("--batch-size and --ray-cpus must be positive, --max-file-mb positive, --ray-workers and "
                     "--ray-gpus not negative.", EXIT_CONFIG)
    try:
        config = RewardConfig(n_views=args.views, resolution_px=args.resolution)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid option {first['loc'][-1] if first['loc'] else '?'}: {first['msg']}.", EXIT_CONFIG)
    captioner = None
    if args.captioner.lower() != "none":
        from text3d.reward.caption_client import CaptionerConfig

        try:
            captioner = CaptionerConfig(base_url=args.captioner).model_dump(mode="json", exclude={"api_key"})
        except ValidationError:
            return _fail(f"--captioner must be an http(s) URL or 'none', got {args.captioner!r}.", EXIT_CONFIG)
    prefer_offline_when_unreachable()

    from text3d.common.device import resolve_device
    from text3d.library.indexer import RayOptions, index_library
    from text3d.library.store import LibraryError
    from text3d.library.work import IndexSpec
    from text3d.reward.errors import ModelUnavailable, ValidatorFault

    try:
        device = resolve_device(args.device) if args.ray_address is None else (
            "cuda" if args.ray_gpus > 0 else "cpu")
        spec = IndexSpec(models=args.models, config=config.model_dump(mode="json"), captioner=captioner,
                         ocr=args.ocr, device=device, max_file_bytes=int(args.max_file_mb * (1 << 20)))
        ray = None if args.ray_address is None else RayOptions(args.ray_address, args.ray_workers, args.ray_cpus,
                                                               args.ray_gpus, args.batch_size)
        stats = index_library(args.dir, args.index, spec, batch_size=args.batch_size, ray=ray, rebuild=args.rebuild,
                              progress=_progress())
    except (ConfigError, ModelUnavailable, LibraryError) as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except ValidatorFault as exc:
        return _fail(f"{exc} (nothing was marked invalid for it; run again when it is fixed)")
    except OSError as exc:
        return _fail(f"cannot write the index: {exc.strerror or exc}.")
    _report(args, stats)
    if stats.interrupted:
        print("text3d index: interrupted; what was written is kept and the next run goes on from there.",
              file=sys.stderr)
        return 130
    return 0


def _progress():
    from tqdm import tqdm

    bar = {"tqdm": None}

    def update(done: int, total: int) -> None:
        if bar["tqdm"] is None:
            bar["tqdm"] = tqdm(total=total, unit="asset", desc="indexing", file=sys.stderr, disable=None,
                               dynamic_ncols=True, leave=False)
        bar["tqdm"].update(done - bar["tqdm"].n)
        if done >= total:
            bar["tqdm"].close()

    return update


def _report(args, stats) -> None:
    from text3d.library.store import AssetStore
    from text3d.reward.reporting.terminal import terminal_safe

    store = AssetStore.open(args.index)
    total = stats.indexed + stats.invalid
    size = store.disk_bytes()
    where = f"on Ray ({stats.workers} workers)" if stats.mode == "ray" else "in this process"
    print(f"{stats.files} files: {stats.new} new, {stats.changed} changed, {stats.unchanged} unchanged, "
          f"{stats.touched} touched (same bytes), {stats.deleted} deleted")
    if stats.worked:
        print(f"observed {stats.worked} assets {where} in {stats.work_seconds:.1f} s ({stats.assets_per_s:.2f} "
              "assets/s)")
    print(f"index {terminal_safe(args.index)}: {stats.indexed} indexed, {stats.invalid} invalid (score 0), "
          f"{stats.not_scored} not scored; {size / (1 << 20):.1f} MiB"
          + (f" ({size / total / 1024:.1f} KiB per asset)" if total else ""))
    rows = store.scan(["name", "status", "reason"]).to_pylist()
    for status, label in (("invalid", "invalid"), ("not_scored", "not scored")):
        listed = [r for r in rows if r["status"] == status]
        if not listed:
            continue
        print(f"{label} ({len(listed)} files):")
        for row in listed[:_LISTED]:
            print(f"  {terminal_safe(row['name'], 120)}: {terminal_safe(row['reason'], 200)}")
        if len(listed) > _LISTED:
            print(f"  ... and {len(listed) - _LISTED} more (text3d search and the index hold them all)")


def _fail(message: str, status: int = 1) -> int:
    from text3d.reward.reporting.terminal import terminal_safe

    print(f"text3d index: {terminal_safe(message)}", file=sys.stderr)
    return status
