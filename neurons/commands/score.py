"""``text3d score PATH --prompt "..."``: score and rank 3D assets against a description.

PATH is one mesh file or a folder of them (PLY, GLB, Draco: ``.ply .glb .drc .draco``),
decoded with the wire codec's checks exactly as a validator decodes a miner's answer.
A file that does not decode or render is listed as invalid (score 0), never a crash.
Prints a ranked table; ``--json`` writes every report, ``--html`` a page with the views,
captions and scores side by side. Works without a wallet, a chain or bittensor.
"""

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run", "MESH_SUFFIXES"]

MESH_SUFFIXES = (".ply", ".glb", ".drc", ".draco")
_METRICS = ("cosine", "jaccard", "euclidean", "dot")
_AGGREGATIONS = ("sum", "mean", "median", "none")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score and rank mesh files against a text prompt (CLIP + caption similarity)",
        description="Render each mesh, caption its views (optional) and score it against the prompt in [0, 1].",
    )
    parser.add_argument("path", type=Path, help="a mesh file (.ply .glb .drc) or a folder of them")
    parser.add_argument("--prompt", required=True, help="the text the assets should depict")
    parser.add_argument("--references", nargs="+", default=[], metavar="TEXT",
                        help="extra reference descriptions the captions are compared with")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all reports as JSON to FILE")
    parser.add_argument("--html", type=Path, metavar="DIR", help="write an HTML report with the views into DIR")
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
    parser.set_defaults(run=run)
    return parser


def _mesh_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    return [path]


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from reward.config import RewardConfig

    if not args.path.exists():
        return _fail(f"{args.path} does not exist.")
    files = _mesh_files(args.path)
    if not files:
        return _fail(f"{args.path} holds no mesh files ({', '.join(MESH_SUFFIXES)}).")
    try:
        config = RewardConfig(n_views=args.views, resolution_px=args.resolution, metric=args.metric,
                              aggregation=args.aggregation)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid option {first['loc'][0]}: {first['msg']}.")

    from protocol.errors import EXIT_CONFIG, ConfigError
    from reward.errors import ValidatorFault
    from reward.factory import build_reward_model

    captioner = None
    try:
        if args.captioner.lower() != "none":
            from reward.caption import CaptionerConfig, OpenAICaptioner

            try:
                captioner = OpenAICaptioner(CaptionerConfig(base_url=args.captioner))
            except ValidationError:
                return _fail(f"--captioner must be an http(s) URL or 'none', got {args.captioner!r}.")
        model = build_reward_model(args.models, captioner, device=args.device, config=config)
        names, reports = _score_files(model, files, args.prompt, list(args.references))
    except ConfigError as exc:  # e.g. --device cuda without a working GPU: a setting to change
        print(f"text3d score: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:  # models, captioner or renderer missing: our side, say how to fix it
        return _fail(str(exc))
    finally:
        if captioner is not None:
            captioner.close()

    _print_table(names, reports, args)
    try:
        if args.json is not None:
            _write_json(args.json, names, reports, args)
        if args.html is not None:
            from reward.report_html import write_html_report

            index = write_html_report(list(zip(names, reports)), args.html, f"text3d score: {args.prompt}")
            print(f"HTML report: {index}")
    except OSError as exc:
        return _fail(f"cannot write the report: {exc.strerror or exc}.")
    return 0


def _score_files(model, files: list[Path], prompt: str, references: list[str]):
    """Decode every file (a bad one becomes an invalid entry) and score the rest in one batch."""
    from protocol.limits import MeshDecodeError
    from protocol.mesh_codec import decode_mesh

    entries: list = []  # a mesh, or the reason it is invalid
    for path in files:
        try:
            entries.append(decode_mesh(path.read_bytes()))
        except MeshDecodeError as exc:
            entries.append(f"cannot decode {path.name}: {exc}")
        except OSError as exc:
            entries.append(f"cannot read {path.name}: {exc.strerror or exc}")
    meshes = [e for e in entries if not isinstance(e, str)]
    scored = iter(model.score_batch(meshes, [prompt] * len(meshes), [references] * len(meshes)) if meshes else [])
    from reward.report import RewardReport

    reports = [
        RewardReport.invalid(prompt, e, references=references, metric=model.metric, aggregation=model.aggregation,
                             captioner=model.captioner_name, models=model.models())
        if isinstance(e, str) else next(scored)
        for e in entries
    ]
    return [p.name for p in files], reports


def _ranking(reports) -> list[int]:
    """Indices best first; invalid assets after valid ones with the same score."""
    return sorted(range(len(reports)), key=lambda i: (-reports[i].score, reports[i].invalid_reason is not None))


def _print_table(names, reports, args) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"text3d score: {args.prompt!r} ({args.models} models)")
    for column in ("rank", "asset", "score", "clip", "caption", "reference", "status"):
        table.add_column(column, justify="right" if column in ("rank", "score", "clip", "caption", "reference") else "left")
    order = _ranking(reports)
    for rank, i in enumerate(order, start=1):
        r = reports[i]
        comp = r.components

        def cell(key: str) -> str:
            return f"{comp[key]:.3f}" if key in comp else "-"

        status = f"invalid: {r.invalid_reason}" if r.invalid_reason else ("; ".join(r.notes) or "ok")
        table.add_row(str(rank), names[i], f"{r.score:.4f}", cell("clip"), cell("caption"), cell("reference"), status)
    Console(file=sys.stdout, width=max(120, Console().width)).print(table)


def _write_json(path: Path, names, reports, args) -> None:
    order = _ranking(reports)
    rank = {i: r for r, i in enumerate(order, start=1)}
    document = {
        "prompt": args.prompt,
        "references": list(args.references),
        "models": args.models,
        "assets": [{"name": n, "rank": rank[i], "report": reports[i].to_dict()} for i, n in enumerate(names)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    print(f"JSON report: {path}")


def _fail(message: str) -> int:
    print(f"text3d score: {message}", file=sys.stderr)
    return 1
