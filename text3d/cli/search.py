"""``text3d search PATH "a red wooden chair"``: rank an indexed library against a description.

From the stored observations only (no rendering): the score of each asset is the one
``text3d score`` gives for the same prompt, rig and models. ``--like FILE`` ranks by how
much assets look like a file; ``--filter TEXT`` adds a free-text style or quality criterion
(the ranking key is the product of the parts given). Output as ``text3d score``'s: a
compact table (or ``--format csv``), ``--json`` in rank order, ``--html`` a page with each
result in the 3D viewer. See ``text3d.library.search`` and docs/library.md.
"""

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "search",
        help="rank an indexed library against a description, a file it should look like, or a style filter",
        description="Rank the assets of a text3d index (text3d index) with the scoring formula of text3d score, "
                    "from stored embeddings: no rendering.",
    )
    parser.add_argument("index", type=Path, metavar="PATH", help="the index folder (text3d index ... --index PATH)")
    parser.add_argument("description", nargs="?", default=None, help='what to find, e.g. "a red wooden chair"')
    parser.add_argument("--like", type=Path, metavar="FILE", help="rank by how much assets look like this mesh file")
    parser.add_argument("--filter", default=None, metavar="TEXT",
                        help='a free-text style or quality criterion, e.g. "a low-poly 3D model"')
    parser.add_argument("--top", type=int, default=10, help="results shown (default: 10)")
    parser.add_argument("--references", nargs="+", default=[], metavar="TEXT",
                        help="reference descriptions the captions are compared with (indexes with captions)")
    parser.add_argument("--contrast", nargs="+", default=None, metavar="TEXT",
                        help="your own contrast prompts for the description (off-protocol)")
    parser.add_argument("--no-flatness", action="store_true", help="do not lower flat shapes' scores (off-protocol)")
    parser.add_argument("--candidates", type=int, default=256,
                        help="assets judged with the exact formula after a first pass by mean embedding "
                             "(default: 256)")
    parser.add_argument("--exhaustive", action="store_true", help="judge every asset with the exact formula")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON, best first")
    parser.add_argument("--html", type=Path, metavar="DIR", help="write a page with each result in the 3D viewer")
    parser.add_argument("--format", choices=("table", "csv", "none"), default="table",
                        help="what is printed (default: table)")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from text3d.common.hub import prefer_offline_when_unreachable
    from text3d.protocol.errors import EXIT_CONFIG, ConfigError

    if not (args.description or args.like or args.filter):
        return _fail("give a description, --like FILE or --filter TEXT.", EXIT_CONFIG)
    if args.top < 1 or args.candidates < 1:
        return _fail("--top and --candidates must be at least 1.", EXIT_CONFIG)
    if args.like is not None and not args.like.is_file():
        return _fail(f"--like {args.like}: no such file.", EXIT_CONFIG)
    if args.contrast is not None and not [c for c in args.contrast if c.strip()]:
        return _fail("--contrast needs at least one non-empty prompt.", EXIT_CONFIG)
    prefer_offline_when_unreachable()

    from text3d.common.device import resolve_device
    from text3d.library.search import Library, Query
    from text3d.library.store import LibraryError
    from text3d.reward.errors import ModelUnavailable, ValidatorFault

    try:
        library = Library.open(args.index, device=resolve_device(args.device))
        library.model  # load the models now: the time printed is the query's
        query = Query(description=args.description, references=tuple(args.references), like=args.like,
                      filter=args.filter, top=args.top, candidates=args.candidates, exhaustive=args.exhaustive,
                      contrast=None if args.contrast is None else tuple(args.contrast), no_flatness=args.no_flatness)
        results = library.search(query)
        _write(args, library, results)
    except (ConfigError, ModelUnavailable, LibraryError) as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except ValidatorFault as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the results: {exc.strerror or exc}.")
    return 0


def _write(args, library, results) -> None:
    from text3d.reward.reporting.ranking import Ranking, Record

    query = results.query
    asked = " ".join(filter(None, [repr(query.description) if query.description else None,
                                   f"like {query.like}" if query.like else None,
                                   f"filter {query.filter!r}" if query.filter else None]))
    title = f"text3d search: {asked} ({library.meta.models} models, {len(library)} assets)"
    head = {"query": {"description": query.description, "references": list(query.references),
                      "like": None if query.like is None else str(query.like), "filter": query.filter,
                      "top": query.top, "contrast": None if query.contrast is None else list(query.contrast),
                      "no_flatness": query.no_flatness},
            "index": str(args.index), "models": library.meta.models, "library": results.counts,
            "judged": results.judged, "seconds": round(results.seconds, 4)}
    parts = sum(x is not None and x != "" for x in (query.description, query.like, query.filter))
    ranking = Ranking(title=title, head=head, unscored=[], json_path=args.json, off_protocol=tuple(results.off_protocol),
                      key_label="score" if parts == 1 and query.description else "rank key", show_counts=False)
    for result in results.results:
        extra = {}
        if parts > 1 and result.report is not None:
            extra["description"] = result.report.score
        if result.likeness is not None:
            extra["likeness"] = result.likeness
        if result.filter_score is not None:
            extra["filter"] = result.filter_score
        colours = result.row.get("colours")
        if result.report is not None:
            ranking.add(result.name, result.report, colours, extra=extra, key=result.key, html=False)
        else:
            report = result.filter_report
            ranking.add_record(Record(result.name, result.key, dict(report.components) if report else {}, (), None,
                                      colours, report.to_json() if report else "null", extra, result.key))
    ranking.flush(final=True)
    if args.html is not None:
        from text3d.library.pages import write_results_page

        page = write_results_page(results, args.html, library.meta.root, title=title, model_set=library.meta.models,
                                  thumbnails=library.thumbnails([r.name for r in results.results]))
    if args.format != "none":
        ranking.print_table(args.format)
        if args.format == "table":
            c = results.counts
            print(f"library: {c['indexed']} indexed, {c['invalid']} invalid, {c['not_scored']} not scored; "
                  f"{results.judged} judged with the exact formula in {results.seconds * 1000:.0f} ms")
            for label, path in ranking.paths():
                print(f"{label}: {path}")
            if args.html is not None:
                print(f"HTML page: {page}")


def _fail(message: str, status: int = 1) -> int:
    from text3d.reward.reporting.terminal import terminal_safe

    print(f"text3d search: {terminal_safe(message)}", file=sys.stderr)
    return status
