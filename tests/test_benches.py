"""Benchmarks cannot rot: every bench's smoke run passes here, a fault under a bench fails it with the
reason on its last line, the stubs benches use have the production interfaces, and the figures in
docs/performance.md and the README are exactly those in bench/results.jsonl.

Before this file a bench could measure a broken pipeline and exit 0: bench/validator.py's stub
scorer lacked what the step calls, every step it timed was a validator fault, and its figures were
printed (and copied into the README) all the same.
"""

import ast
import asyncio
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench._harness import FAILED_PREFIX, Table, run
from bench._report import (BLOCK_END, BLOCK_START, TABLE_END, render_headlines, render_performance,
                           render_table_blocks, table_block_pages)
from bench._suite import (BENCH_DIR, DOCS_PATH, README_PATH, RESULTS_PATH, discover, load_results, run_id, run_one,
                          run_suite)
from tests.counting import until
from tests.test_architecture import scorer_stub_drift

REPO = Path(__file__).resolve().parents[1]
BENCHES = discover()
SMOKE_RUNS = [pytest.param(script, args, id=run_id(script.name, args))
              for script in BENCHES if script.smoke_test is None for args in (script.runs or ((),))]
TIMING_HELPERS = {"time_runs", "timed", "median_ms", "median_time", "_median_s", "percentile", "p95", "median"}


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- every bench is smoke-tested, and runs under the one harness -------------------------------


def test_every_bench_has_a_smoke_test():
    """A bench without a smoke test fails here: either the generic ``--smoke`` run below (it uses the
    harness and declares SMOKE) or a SMOKE_TEST node id that exists and runs the bench. Every bench
    that ``make bench`` runs uses the harness: its JSON line is what the docs are rendered from."""
    assert len(BENCHES) >= 14, [s.name for s in BENCHES]
    missing = []
    for script in BENCHES:
        source = script.path.read_text()
        harness = "bench._harness" in source
        if script.runs and not harness:
            missing.append(f"{script.name}: make bench runs it, but it does not report through bench/_harness.py")
        if script.smoke_test is not None:
            file_part, _, test_name = script.smoke_test.partition("::")
            test_name = test_name.split("[")[0]
            path = REPO / file_part
            if not path.is_file():
                missing.append(f"{script.name}: SMOKE_TEST file {file_part} does not exist")
                continue
            text = path.read_text()
            found = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == test_name]
            if not found:
                missing.append(f"{script.name}: no test {test_name} in {file_part}")
            elif f"{script.name}.py" not in ast.get_source_segment(text, found[0]):
                missing.append(f"{script.name}: {script.smoke_test} does not run bench/{script.name}.py")
            continue
        if not harness or not re.search(r"^SMOKE\s*=", source, re.M):
            missing.append(f"{script.name}: no SMOKE sizes run through bench/_harness.py, and no SMOKE_TEST "
                           f"(see bench/README.md)")
    assert not missing, "benches without a smoke test:\n" + "\n".join(missing)


def test_the_listing_sees_a_new_bench_without_a_smoke_mode(tmp_path):
    """The listing is the glob: a new script in bench/ is a bench at once, with or without a smoke mode."""
    (tmp_path / "newbench.py").write_text("print('{}')\n")
    (tmp_path / "_helper.py").write_text("")
    (tmp_path / "builder.py").write_text("SUITE_RUNS: list[list[str]] = []\nSMOKE_TEST = ('tests/test_x.py::'\n 'test_y')\n")
    scripts = {s.name: s for s in discover(tmp_path)}
    assert sorted(scripts) == ["builder", "newbench"] and scripts["newbench"].runs == ((),)
    assert "bench._harness" not in scripts["newbench"].path.read_text()  # what test_every_bench_has_a_smoke_test refuses
    assert scripts["builder"].runs == () and scripts["builder"].smoke_test == "tests/test_x.py::test_y"


def test_no_bench_keeps_its_own_timing_helper():
    """Timing, medians and percentiles have one home (text3d.common.timing, through the harness)."""
    found = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.name == "_harness.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in TIMING_HELPERS:
                found.append(f"{path.name}: def {node.name}")
            if isinstance(node, ast.Attribute) and node.attr in ("percentile", "median", "quantiles") and \
                    isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy", "statistics"):
                found.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not found, found


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("script,args", SMOKE_RUNS)
def test_smoke(script, args):
    """``python bench/<name>.py --smoke <args>``: exit 0 and one good JSON line with tables, machine, date, versions."""
    done = subprocess.run([sys.executable, str(script.path), "--smoke", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    output = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, output
    result = json.loads(last_line(done.stdout))
    assert result["bench"] == script.name and result["ok"] is True and result["smoke"] is True, output
    assert result["args"] == ["--smoke", *args]
    assert result["tables"] and all(Table(**t).markdown() for t in result["tables"])
    env = result["environment"]
    assert env["machine"]["cpu"] and env["machine"]["cores"] and env["finished_utc"] and env["versions"]["python"]
    assert result["figures"]


# -- a fault under a bench fails it, with the reason last ----------------------------------------


def fake_bench(measure, argv=(), smoke=None):
    def add(parser):
        parser.add_argument("--size", type=int, default=1000)

    return run("fake", "Fake: a bench for the harness's own tests.", add, measure, smoke=smoke or {"size": 2},
               argv=list(argv))


def table(bench, *rows):
    bench.table("t", ["what", "value"], [list(r) for r in rows] or [["x", 1]])


def test_a_good_bench_ends_with_one_json_line(capsys):
    def measure(bench, args):
        t = bench.time(lambda: sum(range(args.size)), 3)
        table(bench, ["median", f"{t.median_s:.6f} s"])
        bench.headline("Fake: fast.")
        return {"size": args.size, "median_s": t.median_s}

    assert fake_bench(measure, ["--smoke"]) == 0
    result = json.loads(last_line(capsys.readouterr().out))
    assert result["ok"] and result["smoke"] and result["figures"]["size"] == 2
    assert result["headlines"] == ["Fake: fast."] and result["about"].startswith("Fake:")
    assert result["environment"]["load_avg_1m"]["max"] >= 0


@pytest.mark.parametrize("fault,reason", [
    (lambda bench: 1 / 0, "ZeroDivisionError: division by zero"),
    (lambda bench: bench.check(False, "status 'late' for uid 3, expected ok"), "status 'late' for uid 3, expected ok"),
    (lambda bench: table(bench, ["a figure", None]), "missing figure"),
    (lambda bench: table(bench, ["a figure", float("nan")]), "missing figure"),
    (lambda bench: {"figure": float("nan")}, "NaN or infinite"),
    (lambda bench: None, "produced no table"),
    (lambda bench: sys.exit(0), "exited before reporting"),
    (lambda bench: sys.exit("the bomb was decoded"), "the bomb was decoded"),
])
def test_a_fault_fails_the_bench_with_the_reason_last(capsys, fault, reason):
    def measure(bench, args):
        out = fault(bench)
        if not bench.tables and "no table" not in reason:
            table(bench)
        return out if isinstance(out, dict) else {}

    assert fake_bench(measure) == 1
    out = capsys.readouterr().out
    assert last_line(out).startswith(f"{FAILED_PREFIX}fake: ") and reason in last_line(out)
    assert '"ok": true' not in out  # no JSON line, no tables that look fine


def test_smoke_sizes_replace_the_defaults_but_explicit_flags_win(capsys):
    seen = []

    def measure(bench, args):
        seen.append((bench.smoke, args.size))
        table(bench)
        return {}

    fake_bench(measure, [])
    fake_bench(measure, ["--smoke"])
    fake_bench(measure, ["--smoke", "--size", "7"])
    assert seen == [(False, 1000), (True, 2), (True, 7)]
    with pytest.raises(ValueError, match="nosuch"):
        fake_bench(measure, ["--smoke"], smoke={"nosuch": 1})


def test_a_bench_script_that_raises_exits_non_zero(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from bench._harness import run

        def measure(bench, args):
            raise RuntimeError("the stub raised")

        sys.exit(run("boom", "Boom.", lambda parser: None, measure, smoke={{}}))
    """))
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert last_line(done.stdout) == "FAILED boom: RuntimeError: the stub raised"
    assert "Traceback" in done.stderr


@pytest.mark.integration
def test_the_validator_bench_fails_when_its_stub_scorer_raises(monkeypatch, capsys):
    """The step turns a scorer crash into a validator fault (no miner pays): the bench must not time
    such steps as if they scored. Before: 'validator fault ... TypeError' on every step, exit 0."""
    import bench.validator as validator_bench

    def explode(self, meshes, prompts, references=None, **options):
        raise RuntimeError("the stub scorer exploded")

    monkeypatch.setattr(validator_bench.InstantScorer, "score_batch", explode)
    assert validator_bench.main(["--smoke"]) == 1
    line = last_line(capsys.readouterr().out)
    assert line.startswith("FAILED validator: ") and "validator fault" in line and "the stub scorer exploded" in line


@pytest.mark.integration
def test_the_validator_bench_fails_when_a_miner_is_not_scored_ok(monkeypatch, capsys):
    """A status other than ok (here: the scorer judges every mesh invalid) fails the bench."""
    import bench.validator as validator_bench
    from text3d.reward.reporting.evidence import RewardReport

    def invalid(self, meshes, prompts, references=None, **options):
        return [RewardReport(score=0.0, prompt=p, metric="cosine", aggregation="mean", invalid_reason="blank views")
                for p in prompts]

    monkeypatch.setattr(validator_bench.InstantScorer, "score_batch", invalid)
    assert validator_bench.main(["--smoke"]) == 1
    line = last_line(capsys.readouterr().out)
    assert line.startswith("FAILED validator: ") and "not scored ok" in line and "invalid: blank views" in line


# -- stubs implement the production interfaces ---------------------------------------------------


def assert_accepts_like(stub, production, names):
    """Every parameter of the production method is accepted by the stub's, by the same name and kind."""
    for name in names:
        want = inspect.signature(getattr(production, name)).parameters
        got = inspect.signature(getattr(stub, name)).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in got.values())
        for pname, param in want.items():
            if pname == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            assert pname in got or (takes_kwargs and param.kind is param.KEYWORD_ONLY), \
                f"{stub.__name__}.{name} lacks {pname!r} of {production.__name__}.{name}"
            if pname in got:
                assert got[pname].kind == param.kind, f"{stub.__name__}.{name}({pname}) is {got[pname].kind}"
                assert (got[pname].default is param.empty) == (param.default is param.empty), \
                    f"{stub.__name__}.{name}({pname}): required in one, optional in the other"
        extra = [p for p in got.values() if p.name != "self" and p.name not in want and p.default is p.empty
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        assert not extra, f"{stub.__name__}.{name} requires {extra} that {production.__name__}.{name} does not"


def test_the_validator_bench_scorer_is_a_step_scorer():
    """InstantScorer is what Validator.step calls: the StepScorer protocol, RewardModel's signatures, the
    production rig, and reports that score_answers (the call that faulted before) turns into ok scores."""
    import bench.validator as validator_bench
    from text3d.reward.model import RewardModel
    from text3d.validator.outcomes import MinerOutcome
    from text3d.validator.step import StepScorer, score_answers
    from tests.meshes import red_cube

    scorer = validator_bench.InstantScorer()
    assert isinstance(scorer, StepScorer)
    assert_accepts_like(validator_bench.InstantScorer, RewardModel, ["rig_for", "score_batch"])
    assert scorer_stub_drift(BENCH_DIR, REPO / "text3d" / "reward" / "model.py") == []  # issue 16's check, on bench/
    assert scorer.rig_for(7).to_dict() == RewardModel(None, None).rig_for(7).to_dict()
    assert scorer.rig_for(7).to_dict() != scorer.rig_for(8).to_dict()
    outcomes = [(MinerOutcome(uid=u, hotkey=f"h{u}", status="ok", seed=u), red_cube()) for u in (1, 2)]
    fault = score_answers(scorer, outcomes, "a red cube", rig=scorer.rig_for(7), step_seed=7)
    assert fault is None
    assert [(o.status, o.score) for o, _ in outcomes] == [("ok", validator_bench.INSTANT_SCORE)] * 2


def test_the_validator_bench_chain_is_a_chain_adapter(tmp_path):
    import bench.validator as validator_bench
    from text3d.chain.base import ChainAdapter, HotkeyNotRegistered, Metagraph, NeuronInfo
    from text3d.chain.devnet import DevnetChain

    methods = [name for name, value in vars(ChainAdapter).items() if callable(value) and not name.startswith("_")]
    assert {"metagraph", "set_weights", "serve_axon", "weights", "close"} <= set(methods)
    assert_accepts_like(validator_bench.HandChain, DevnetChain, methods)
    neurons = tuple(NeuronInfo(uid=i, hotkey=f"hk{i}", coldkey="c", stake=1.0, validator_permit=i == 0,
                               axon_ip="127.0.0.1", axon_port=9000 + i, last_update=0) for i in range(3))
    chain = validator_bench.HandChain(Metagraph(netuid=1, block=1, neurons=neurons))
    assert isinstance(chain, ChainAdapter)

    class Wallet:
        class hotkey:
            ss58_address = "hk0"

    assert chain.set_weights(Wallet, [1, 2], [3.0, 1.0], 1) == (True, "ok")
    assert chain.weights() == {0: {1: 0.75, 2: 0.25}} and chain.block() > 1000
    Wallet.hotkey.ss58_address = "stranger"
    assert chain.set_weights(Wallet, [1], [1.0], 1)[0] is False
    with pytest.raises(HotkeyNotRegistered):
        chain.serve_axon(Wallet, "127.0.0.1", 9000)


# -- make bench: one results file, the docs rendered from it --------------------------------------


GOOD = '''
import sys
sys.path.insert(0, {repo!r})
from bench._harness import run

SMOKE = {{"size": 1}}
SUITE_RUNS = [[], ["--size", "3"]]

def add(parser):
    parser.add_argument("--size", type=int, default=2)

def measure(bench, args):
    bench.table(f"Good, size {{args.size}}", ["size", "value"], [[args.size, "1.5 ms"]], note="A note.")
    bench.headline(f"Good: size {{args.size}} in 1.5 ms.")
    return {{"size": args.size}}

sys.exit(run("good", "Good: it measures.", add, measure, smoke=SMOKE))
'''
BAD = GOOD.replace('bench.table(', 'bench.check(args.size < 3, "status refused for 2 of 3 requests")\n    bench.table(')
BAD = BAD.replace('run("good", "Good: it measures."', 'run("bad", "Bad: it faults."').replace("SUITE_RUNS = [[], [\"--size\", \"3\"]]", "SUITE_RUNS = [[\"--size\", \"3\"]]")
HEAVY = GOOD.replace('run("good"', 'run("heavy"').replace("SUITE_RUNS", "SUITE_HEAVY = True\nSUITE_RUNS")


def test_make_bench_keeps_every_run_in_one_file_and_renders_the_docs(tmp_path):
    benches = tmp_path / "bench"
    benches.mkdir()
    for name, text in {"good": GOOD, "bad": BAD, "heavy": HEAVY}.items():
        (benches / f"{name}.py").write_text(text.format(repo=str(REPO)))
    (benches / "_helper.py").write_text("raise SystemExit('helpers are not benches')\n")
    results, docs, readme = tmp_path / "results.jsonl", tmp_path / "performance.md", tmp_path / "README.md"
    readme.write_text(f"# Title\n\n## Performance\n\n{BLOCK_START}\nold figures\n{BLOCK_END}\n\n## Next\n")
    good_block = '<!-- bench-table good --size 3 "Good, size" (generated by `make bench`) -->'
    bad_block = '<!-- bench-table bad --size 3 "Good" (generated by `make bench`) -->'
    page_text = f"# Topic\n\nText.\n\n{good_block}\n| 9 | typed by hand |\n{TABLE_END}\n\n{bad_block}\n{TABLE_END}\nEnd.\n"
    other = tmp_path / "topic.md"
    other.write_text(page_text)

    status = run_suite(bench_dir=benches, results_path=results, docs_path=docs, readme_path=readme, timeout_s=120)
    assert status == 1  # bad failed; everything else still ran
    saved = load_results(results)
    assert sorted(saved) == ["bad --size 3", "good", "good --size 3"]  # heavy only when asked
    assert saved["good"]["ok"] and saved["good --size 3"]["figures"] == {"size": 3}
    assert saved["bad --size 3"]["ok"] is False and saved["bad --size 3"]["reason"] == \
        "bad: status refused for 2 of 3 requests"
    page = docs.read_text()
    assert "| 3 | 1.5 ms |" in page and "**Good, size 2**" in page
    assert "**FAILED**" in page and "status refused for 2 of 3 requests" in page
    assert "heavy: not run" in page
    text = readme.read_text()
    assert "old figures" not in text and "- Good: size 2 in 1.5 ms. ([`good`](docs/performance.md#good); load " in text
    assert "- Good: size 3 in 1.5 ms. ([`good --size 3`](docs/performance.md#good---size-3); load " in text
    assert text.startswith("# Title") and text.endswith("## Next\n")
    # a page's table block holds the bench's table, not a copy; a failed run's block says why instead
    topic = other.read_text()
    assert "typed by hand" not in topic and topic.startswith("# Topic\n\nText.\n\n" + good_block)
    assert "| size | value |\n|---:|---|\n| 3 | 1.5 ms |\n\nA note.\n\n_`good --size 3` on " in topic
    assert "([all its tables](performance.md#good---size-3))._" in topic
    assert "_`bad --size 3` failed on its last run: bad: status refused for 2 of 3 requests" in topic
    assert topic.endswith(f"{TABLE_END}\nEnd.\n") and topic.count(TABLE_END) == 2
    assert render_table_blocks(topic, saved, "performance.md") == topic  # rendering again changes nothing

    # a later run of one bench keeps the others' results, and the heavy one runs when named
    assert run_suite(["heavy"], bench_dir=benches, results_path=results, docs_path=docs, readme_path=readme) == 0
    assert sorted(load_results(results)) == ["bad --size 3", "good", "good --size 3", "heavy", "heavy --size 3"]


def test_a_bench_that_hangs_is_stopped_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent(f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """))
    (bench,) = discover(tmp_path)
    result = run_one(bench, [], timeout_s=3)
    assert result["ok"] is False and result["reason"] == "timed out after 3 s"
    child = int(pid_file.read_text())

    def gone() -> bool:  # reaped, or a zombie waiting for its parent's init
        stat = Path(f"/proc/{child}/stat")
        return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"

    try:
        asyncio.run(until(gone, what="the hung bench's child process ending", timeout_s=10))
    finally:
        if not gone():
            os.kill(child, 9)


def test_malformed_suite_constants_are_refused(tmp_path):
    (tmp_path / "x.py").write_text("SUITE_RUNS = ['--oops']\n")
    with pytest.raises(ValueError, match="SUITE_RUNS"):
        discover(tmp_path)


# -- the committed figures are the results file's ------------------------------------------------


def test_the_results_file_holds_good_full_runs_of_todays_benches():
    results = load_results(RESULTS_PATH)
    assert results, "bench/results.jsonl is empty: run `make bench`"
    current = {key for script in BENCHES for key in script.run_ids()}
    for key, result in results.items():
        assert key in current, f"{key}: no such bench run any more (make bench-docs drops it)"
        assert result["smoke"] is False and result["ok"] is True, f"{key}: {result.get('reason', 'a smoke run')}"
        assert result["tables"] and result["environment"]["finished_utc"]
    validator = results.get("validator")
    assert validator is not None, "the validator bench has no results"
    for count, row in validator["figures"]["results"].items():
        assert row["answers_ok_min"] == int(count) and row["steps_scored"] == validator["figures"]["repeats"]


def test_docs_performance_is_rendered_from_the_results_file():
    expected = render_performance(load_results(RESULTS_PATH), BENCHES)
    assert DOCS_PATH.read_text() == expected, "docs/performance.md differs from bench/results.jsonl: run `make bench-docs`"


def test_every_table_block_in_the_docs_is_the_results_files():
    """The README's and docs' copies of bench tables (the library's search table, ...) are table
    blocks rendered from the results file, so they cannot drift from what the benches printed."""
    pages = table_block_pages()
    assert README_PATH in [page for page, _ in pages], "the README shows its tables through table blocks"
    results = load_results(RESULTS_PATH)
    for page, link in pages:
        text = page.read_text()
        assert text == render_table_blocks(text, results, link), \
            f"{page.name}: a table block differs from bench/results.jsonl: run `make bench-docs`"
        assert "has not been measured yet" not in text and "failed on its last run" not in text, page.name


def test_a_table_block_naming_a_table_its_bench_does_not_print_is_refused():
    results = {"good": {"ok": True, "tables": [{"title": "Good, size 2", "columns": ["a"], "rows": [[1]], "note": ""}],
                        "environment": {}}}
    block = '<!-- bench-table good "Bad title" (generated) -->\n<!-- /bench-table -->'
    with pytest.raises(ValueError, match="Bad title"):
        render_table_blocks(block, results)
    with pytest.raises(ValueError, match="has no"):
        render_table_blocks('<!-- bench-table good "Good" (generated) -->\n', results)


def test_the_readme_headlines_are_the_results_files():
    text = README_PATH.read_text()
    assert text.count(BLOCK_START) == 1 and text.count(BLOCK_END) == 1, "the README's headline block markers"
    block = text[text.index(BLOCK_START):text.index(BLOCK_END) + len(BLOCK_END)]
    assert block == render_headlines(load_results(RESULTS_PATH), BENCHES), \
        "the README's performance headlines differ from bench/results.jsonl: run `make bench-docs`"
    bullets = [line for line in block.splitlines() if line.startswith("- ")]
    assert 1 <= len(bullets) <= 8, "the README keeps a few headline figures; the tables live in docs/performance.md"
    assert "docs/performance.md" in block
