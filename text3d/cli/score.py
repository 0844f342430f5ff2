"""``text3d score PATH --prompt "..."``: score and rank 3D assets against a description.

PATH is one mesh file or a folder (walked recursively) of them, in any format trimesh
reads (``text3d.reward.assets.loader``: GLB/glTF, OBJ + MTL, PLY, STL, OFF, 3MF, DAE, Draco), with their
textures and material colours; uncoloured meshes are drawn with a neutral default
material. A file that cannot be scored is listed with the reason (invalid assets score 0;
files that are not meshes are listed as not scored), never a crash and never silently.

Streaming: assets are loaded, rendered and scored ``--batch-size`` at a time; results
are written as they come (``--json`` rewritten and ``--html`` views saved after every
batch), so an interrupted run keeps what it finished. Memory is bounded by one batch
(meshes, textures at most 2048 px a side, views) plus about 14 KB per asset for the
ranking. A progress bar runs on stderr when it is a terminal. Everything printed is
escaped (rich markup and terminal control characters). Works without a wallet, a chain
or bittensor.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["add_parser", "run"]

_METRICS = ("cosine", "jaccard", "euclidean", "dot")
_AGGREGATIONS = ("sum", "mean", "median", "none")
_LISTED = 40  # not-scored files printed in the terminal; the JSON and HTML list them all


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score and rank mesh files against a text prompt (CLIP + caption similarity)",
        description="Render each mesh, caption its views (optional) and score it against the prompt in [0, 1].",
    )
    parser.add_argument("path", type=Path, help="a mesh file (.glb .gltf .obj .ply .stl .off .3mf .dae .drc) or a folder")
    parser.add_argument("--prompt", required=True, help="the text the assets should depict")
    parser.add_argument("--references", nargs="+", default=[], metavar="TEXT",
                        help="extra reference descriptions the captions are compared with")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all reports as JSON to FILE (updated as it goes)")
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
    parser.add_argument("--batch-size", type=int, default=8,
                        help="assets loaded, rendered and scored together (default: 8); memory grows with it")
    parser.add_argument("--max-file-mb", type=float, default=64.0,
                        help="largest mesh file (and file it references) that is read, in MiB (default: 64)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from text3d.protocol.errors import EXIT_CONFIG
    from text3d.reward.assets.loader import MESH_SUFFIXES, discover
    from text3d.reward.config import RewardConfig

    if not args.path.exists() and not args.path.is_symlink():
        return _fail(f"{args.path} does not exist.", EXIT_CONFIG)
    if args.batch_size < 1 or not args.max_file_mb > 0:
        return _fail("--batch-size must be at least 1 and --max-file-mb positive.", EXIT_CONFIG)
    try:
        config = RewardConfig(n_views=args.views, resolution_px=args.resolution, metric=args.metric,
                              aggregation=args.aggregation)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid option {first['loc'][-1] if first['loc'] else '?'}: {first['msg']}.", EXIT_CONFIG)
    root, entries = discover(args.path)
    meshes = [e for e in entries if e.kind == "mesh"]
    if not meshes:
        return _fail(f"{args.path} holds no mesh files ({' '.join(MESH_SUFFIXES)}).", EXIT_CONFIG)

    from text3d.protocol.errors import ConfigError
    from text3d.reward.errors import ModelUnavailable, ValidatorFault
    from text3d.reward.factory import build_reward_model

    captioner = None
    outputs = _Outputs(args, [(e.name, str(e.reason)) for e in entries if e.kind != "mesh"])
    interrupted = False
    try:
        if args.captioner.lower() != "none":
            from text3d.reward.caption import CaptionerConfig, OpenAICaptioner

            try:
                captioner = OpenAICaptioner(CaptionerConfig(base_url=args.captioner))
            except ValidationError:
                return _fail(f"--captioner must be an http(s) URL or 'none', got {args.captioner!r}.", EXIT_CONFIG)
        model = build_reward_model(args.models, captioner, device=args.device, config=config)
        try:
            _score_streaming(model, root, meshes, args, outputs)
        except KeyboardInterrupt:
            interrupted = True
    except ConfigError as exc:  # e.g. --device cuda without a working GPU: a setting to change
        print(f"text3d score: {_safe(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelUnavailable as exc:  # weights to fetch: a setting to change, like a ConfigError
        return _fail(str(exc), EXIT_CONFIG)
    except ValidatorFault as exc:  # captioner or renderer failing: our side, say how to fix it
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the report: {exc.strerror or exc}.")
    finally:
        if captioner is not None:
            captioner.close()

    try:
        outputs.flush(final=True, complete=not interrupted)
    except OSError as exc:
        return _fail(f"cannot write the report: {exc.strerror or exc}.")
    _print_table(outputs, args)
    _print_unscored(outputs)
    for label, path in outputs.paths():
        print(f"{label}: {_safe(path)}")
    if args.models == "tiny":
        print("note: --models tiny scores with a random-weight CLIP (an offline test model): the numbers exercise the "
              "pipeline and say nothing about the assets; score with --models real for meaningful ones.")
    if interrupted:
        print(f"text3d score: interrupted after {len(outputs.records)} of {len(meshes)} assets; "
              "the reports hold what finished.", file=sys.stderr)
        return 130
    return 0


def _score_streaming(model, root: Path, meshes, args, outputs: "_Outputs") -> None:
    """Load, render and score ``args.batch_size`` assets at a time, writing each batch out."""
    from tqdm import tqdm

    from text3d.reward.assets.loader import AssetLimits, load_asset
    from text3d.reward.errors import InvalidAssetError
    from text3d.reward.reporting.evidence import RewardReport

    limits = AssetLimits(max_file_bytes=int(args.max_file_mb * (1 << 20)))
    prompt, references = args.prompt, list(args.references)
    progress = tqdm(total=len(meshes), unit="asset", desc="scoring", file=sys.stderr, disable=None,
                    dynamic_ncols=True, leave=False)
    invalid = 0
    try:
        for start in range(0, len(meshes), args.batch_size):
            batch = meshes[start : start + args.batch_size]
            loaded: list = []
            for entry in batch:
                try:
                    loaded.append(load_asset(entry, root, limits))
                except InvalidAssetError as exc:
                    loaded.append(f"cannot load {entry.name}: {exc}")
            assets = [a for a in loaded if not isinstance(a, str)]
            scored = iter(model.score_batch([a.mesh for a in assets], [prompt] * len(assets),
                                            [references] * len(assets)) if assets else [])
            for entry, item in zip(batch, loaded):
                if isinstance(item, str):
                    report = RewardReport.invalid(prompt, item, references=references, metric=model.metric,
                                                  aggregation=model.aggregation, captioner=model.captioner_name,
                                                  models=model.models())
                    colours = None
                else:
                    report = next(scored)
                    report.notes.extend(item.notes)
                    colours = item.colours
                invalid += not report.is_valid
                outputs.add(entry.name, report, colours, mesh=None if isinstance(item, str) else item.mesh,
                            source=entry.path)
            del loaded, assets, scored, report, item  # meshes, textures and views of this batch go now
            outputs.flush(final=False)
            progress.update(len(batch))
            progress.set_postfix(invalid=invalid, refresh=False)
    finally:
        progress.close()


@dataclass(frozen=True)
class _Record:
    """What is kept of one scored asset until the end: the table's fields and its report
    as JSON text (a few KB), never the report object, its views or its mesh."""

    name: str
    score: float
    components: dict
    notes: tuple
    invalid_reason: str | None
    colours: str | None
    report_json: str


class _Outputs:
    """Results as they come: the ranking records, the JSON document and the HTML folder.

    ``flush`` rewrites the JSON document and the HTML index at most every ``every_s``
    seconds (views are saved as each asset arrives), so rewriting the growing files costs
    O(n) per write but not O(n) per batch; ``flush(final)`` always writes.
    """

    def __init__(self, args: argparse.Namespace, unscored: list[tuple[str, str]], every_s: float = 2.0) -> None:
        from text3d.reward.reporting.html import HtmlReport

        self.args = args
        self.unscored = unscored
        self.every_s = every_s
        self.records: list[_Record] = []
        self._flushed_at = float("-inf")
        self.html = None
        if args.html is not None:
            self.html = HtmlReport(args.html, f"text3d score: {args.prompt}", model_set=args.models)
            for name, reason in unscored:
                self.html.add_unscored(name, reason)

    def add(self, name: str, report, colours: str | None, *, mesh=None, source: Path | None = None) -> None:
        if self.html is not None:
            glb = None
            if mesh is not None and report.is_valid and self.html.wants_mesh(float(report.score)):
                from text3d.reward.reporting.html import viewer_glb

                glb = viewer_glb(mesh, self.html.max_mesh_bytes)  # the top assets' meshes go in the 3D viewer
            self.html.add(name, report, colours, glb=glb, source=source)
        self.records.append(_Record(name, float(report.score), dict(report.components), tuple(report.notes),
                                    report.invalid_reason, colours, report.to_json()))

    def ranking(self) -> list[int]:
        """Indices best first; invalid assets after valid ones with the same score."""
        return sorted(range(len(self.records)),
                      key=lambda i: (-self.records[i].score, self.records[i].invalid_reason is not None))

    def flush(self, final: bool, complete: bool = True) -> None:
        import time

        now = time.monotonic()
        if not final and now - self._flushed_at < self.every_s:
            return
        self._flushed_at = now
        if self.args.json is not None:
            self._write_json(complete=final and complete)
        if self.html is not None:
            self.html.write()

    def paths(self) -> list[tuple[str, Path]]:
        out = []
        if self.args.json is not None:
            out.append(("JSON report", self.args.json))
        if self.args.html is not None:
            out.append(("HTML report", Path(self.args.html) / "index.html"))
        return out

    def _write_json(self, complete: bool) -> None:
        """The document, one asset per line; each report's JSON was serialised once, on arrival."""
        from text3d.reward.assets.safe_fs import write_inside

        rank = {i: r for r, i in enumerate(self.ranking(), start=1)}
        head = {"prompt": self.args.prompt, "references": list(self.args.references), "models": self.args.models,
                "complete": complete}
        assets = ",\n".join(
            f'{{"name": {json.dumps(r.name)}, "rank": {rank[i]}, "colours": {json.dumps(r.colours)}, '
            f'"report": {r.report_json}}}' for i, r in enumerate(self.records)
        )
        not_scored = json.dumps([{"name": n, "reason": reason} for n, reason in self.unscored], indent=1)
        text = json.dumps(head)[:-1] + f',\n"assets": [\n{assets}\n],\n"not_scored": {not_scored}\n}}\n'
        path = Path(self.args.json)
        write_inside(path.parent, path.name, text)


def _safe(text: object, max_chars: int | None = None) -> str:
    from text3d.reward.reporting.terminal import terminal_safe

    return terminal_safe(text, max_chars)


def _print_table(outputs: _Outputs, args) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    title = Text(f"text3d score: {_safe(repr(args.prompt), 200)} ({args.models} models)")
    table = Table(title=title, highlight=False)
    for column in ("rank", "asset", "score", "clip", "caption", "reference", "colours", "status"):
        table.add_column(column, justify="right" if column in ("rank", "score", "clip", "caption", "reference") else "left")
    for rank, i in enumerate(outputs.ranking(), start=1):
        r = outputs.records[i]

        def cell(key: str) -> str:
            return f"{r.components[key]:.3f}" if key in r.components else "-"

        status = f"invalid: {r.invalid_reason}" if r.invalid_reason else ("; ".join(r.notes) or "ok")
        table.add_row(*(Text(_safe(value)) for value in (
            str(rank), r.name, f"{r.score:.3f}", cell("clip"), cell("caption"), cell("reference"), r.colours or "-",
            status)))
    console = Console(file=sys.stdout, width=max(120, Console().width), markup=False, highlight=False, emoji=False)
    console.print(table)


def _print_unscored(outputs: _Outputs) -> None:
    if not outputs.unscored:
        return
    print(f"not scored ({len(outputs.unscored)} files):")
    for name, reason in outputs.unscored[:_LISTED]:
        print(f"  {_safe(name, 120)}: {_safe(reason, 200)}")
    if len(outputs.unscored) > _LISTED:
        print(f"  ... and {len(outputs.unscored) - _LISTED} more (all are listed in the JSON and HTML reports)")


def _fail(message: str, status: int = 1) -> int:
    """Print the one sentence; ``status``: 78 (EXIT_CONFIG) for a setting to change, 1 for a failure."""
    print(f"text3d score: {_safe(message)}", file=sys.stderr)
    return status
