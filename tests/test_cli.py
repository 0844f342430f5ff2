"""The command line as a new user meets it.

Rules pinned here (each failed before this change):
- a misspelt flag gets the subcommand's own one-line usage (never the top-level one, never
  the 37-line usage of a neuron), the error, and the flag that was probably meant; exit 2;
- ``--netuid`` is required wherever the network is finney, test or a remote chain, for the
  neurons and ``text3d doctor --role``: one sentence, exit 78 (a setting to change); given by
  flag, environment or ``--config`` file it counts, and devnet and local keep their default;
- help has no doubled defaults, no reStructuredText markup and no internal names, and every
  flag shown has a description;
- every flag the pinned scoring protocol fixes says so in its help, and exactly those: the
  mark is checked against what each value does to the protocol's digest; a validator on a
  pinned network refuses a changed value, the hidden ``include_prompt`` included.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from text3d.cli.main import build_parser as build_cli
from text3d.cli.main import main
from text3d.common.argparsing import suggest
from text3d.protocol.errors import EXIT_CONFIG, EXIT_USAGE, ConfigError
from text3d.reward.caption_client import CaptionerConfig
from text3d.reward.config import RewardConfig
from text3d.settings import ROLE_SECTIONS, CaptionerSettings, Settings, build_parser, is_pinned, load_settings

REPO = Path(__file__).resolve().parent.parent


def usage_error(argv: list[str], capsys) -> list[str]:
    """stderr lines of ``text3d ARGV``, which must be a usage error (exit 2, raised or returned)."""
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code
    assert code == EXIT_USAGE
    return capsys.readouterr().err.strip().splitlines()


# -- misspelt flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, prog, meant", [
    (["miner", "--network", "test"], "text3d miner", "--subtensor.network"),
    (["validator", "--wallet.nmae", "v"], "text3d validator", "--wallet.name"),
    (["score", "assets", "--promt", "a chair"], "text3d score", "--prompt"),
    (["miner", "--port", "8091"], "text3d miner", "--axon.port"),
    (["generation-server", "--server.prot", "1"], "text3d generation-server", "--server.port"),
    (["render", "m.ply", "--view", "4"], "text3d render", "--views"),
    (["register", "--netuid", "1", "--wallet.nmae", "m"], "text3d register", "--wallet.name"),
    (["devnet", "init", "--devnet.dbb", "c.db"], "text3d devnet init", "--devnet.db"),
    (["doctor", "--role", "validator", "--captioner.timout_s", "1"], "text3d doctor --role validator",
     "--captioner.timeout_s"),
])  # fmt: skip
def test_a_misspelt_flag_gets_its_commands_short_usage_and_a_suggestion(argv, prog, meant, capsys):
    lines = usage_error(argv, capsys)
    assert lines[0].startswith(f"usage: {prog} ") and len(lines) == 3, lines  # one line of usage, not 37
    assert lines[1].startswith(f"{prog}: error: unrecognized argument ") and f"did you mean {meant}" in lines[1], lines
    assert lines[2] == f"`{prog} --help` lists every option."


def test_a_flag_meaning_nothing_is_named_without_a_guess(capsys):
    lines = usage_error(["llava", "--zzzz"], capsys)
    assert lines[0].startswith("usage: text3d llava [options]")  # the subcommand's, not text3d's
    assert lines[1] == "text3d llava: error: unrecognized argument --zzzz"


def test_a_misspelt_subcommand_is_suggested(capsys):
    lines = usage_error(["minr"], capsys)
    assert lines[0] == "usage: text3d [options] COMMAND" and "did you mean 'miner'?" in lines[1]


def test_the_entry_point_module_says_the_same(capsys):
    from neurons.miner import main as neuron_main

    with pytest.raises(SystemExit) as exited:
        neuron_main(["--network", "test"])
    assert exited.value.code == EXIT_USAGE
    assert "did you mean --subtensor.network?" in capsys.readouterr().err


def test_suggestions_compare_whole_flags_and_their_last_part():
    options = ["--subtensor.network", "--subtensor.chain_endpoint", "--wallet.name", "--wallet.path", "--netuid",
               "--no-logging.debug", "--logging.debug"]
    assert suggest("--network", options) == ["--subtensor.network"]
    assert suggest("--wallet.nmae", options) == ["--wallet.name"]
    assert suggest("--debug", options) == ["--logging.debug"]  # never the --no- twin
    assert suggest("--xyzzy", options) == []


# -- --netuid on public networks --------------------------------------------------------------------


@pytest.mark.parametrize("command", [["miner"], ["validator"], ["doctor", "--role", "miner"],
                                     ["doctor", "--role", "validator"]])
@pytest.mark.parametrize("network", [[], ["--subtensor.network", "finney"], ["--subtensor.network", "test"]])
def test_netuid_is_required_on_finney_and_test(command, network, capsys):
    assert main([*command, *network]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    where = network[1] if network else "finney"
    assert err == (f"text3d {command[0]}: --netuid is required on {where}: give the subnet's uid (e.g. --netuid 42); "
                   "only devnet and local networks default to 1"), err


def test_netuid_counts_from_a_flag_the_environment_or_the_config_file(tmp_path, monkeypatch):
    test = ["--subtensor.network", "test"]
    with pytest.raises(ConfigError, match="--netuid is required on test"):
        load_settings("miner", test, require_netuid=True)
    assert load_settings("miner", [*test, "--netuid", "42"], require_netuid=True).netuid == 42
    assert load_settings("miner", [*test, "--netuid", "1"], require_netuid=True).netuid == 1  # 1 said aloud is fine
    config = tmp_path / "miner.toml"
    config.write_text("netuid = 7\n")
    assert load_settings("miner", [*test, "--config", str(config)], require_netuid=True).netuid == 7
    monkeypatch.setenv("TEXT3D_NETUID", "9")
    assert load_settings("miner", test, require_netuid=True).netuid == 9


def test_local_chains_keep_the_default_and_remote_endpoints_need_it(tmp_path):
    devnet = ["--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "c.db")]
    assert load_settings("validator", devnet, require_netuid=True).netuid == 1
    assert load_settings("miner", ["--subtensor.network", "local"], require_netuid=True).netuid == 1
    assert load_settings("miner", ["--subtensor.chain_endpoint", "ws://127.0.0.1:9944"], require_netuid=True).netuid == 1
    with pytest.raises(ConfigError, match="required on the chain at wss://chain.example:443"):
        load_settings("miner", ["--subtensor.chain_endpoint", "wss://chain.example:443"], require_netuid=True)


def test_doctor_without_a_role_checks_the_machine_and_needs_no_netuid():
    assert load_settings("validator", [], require_netuid=False).netuid == 1  # what `text3d doctor` reads


# -- help hygiene -----------------------------------------------------------------------------------


def every_parser() -> list[argparse.ArgumentParser]:
    """The ``text3d`` parser, every subcommand's (nested ones too) and every neuron role's."""
    found, todo = [], [build_cli()] + [build_parser(role) for role in ROLE_SECTIONS]  # type: ignore[arg-type]
    while todo:
        parser = todo.pop()
        found.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return found


def internal_names() -> set[str]:
    """CamelCase class names defined in the package (``RewardConfig``, ``OpenAICaptioner``, ...)."""
    names = set()
    for path in (REPO / "text3d").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and re.fullmatch(r"_?[A-Z][a-z0-9]+[A-Z]\w*", node.name):
                names.add(node.name)
    return names


def help_problems(parser: argparse.ArgumentParser, internal: set[str]) -> list[str]:
    problems = []
    text = parser.format_help()
    if "``" in text:
        problems.append("reStructuredText markup")
    problems += [f"internal name {name}" for name in sorted(set(re.findall(r"\w+", text)) & internal)]
    problems += [f"module path {path}" for path in re.findall(r"\btext3d\.[a-z_]+\.[\w.:]+", text)]
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
            continue
        flag, shown = action.option_strings[-1], action.help or ""
        if not shown.strip():
            problems.append(f"{flag} has no help")
        if shown.count("(default:") + shown.count("Default:") > 1 or shown.startswith("Default:"):
            problems.append(f"{flag}: {shown!r}")
        if "(default: None)" in shown:
            problems.append(f"{flag} shows a default of None")
    return problems


def test_help_has_no_doubled_defaults_markup_or_internal_names():
    internal = internal_names()
    assert {"RewardConfig", "OpenAICaptioner", "GenerationConfig"} <= internal
    parsers = every_parser()
    assert {p.prog for p in parsers} >= {"text3d", "text3d miner", "text3d validator", "text3d generation-server",
                                         "text3d score", "text3d devnet init", "text3d llava", "text3d register"}
    problems = {p.prog: help_problems(p, internal) for p in parsers}
    assert {prog: found for prog, found in problems.items() if found} == {}


def test_a_planted_help_problem_is_caught():
    parser = argparse.ArgumentParser(prog="x", description="Uses ``RewardConfig`` from text3d.reward.config.")
    parser.add_argument("--a", help="Folder (default: stderr only) (default: None).")
    parser.add_argument("--b", help="Default: 3.")
    parser.add_argument("--c")
    assert help_problems(parser, {"RewardConfig"}) == [
        "reStructuredText markup", "internal name RewardConfig", "module path text3d.reward.config.",
        "--a: 'Folder (default: stderr only) (default: None).'", "--a shows a default of None", "--b: 'Default: 3.'",
        "--c has no help",
    ]


# -- flags the scoring protocol pins ------------------------------------------------------------------


def another_value(field: Any) -> Any:
    """A valid value other than ``field``'s default."""
    default, annotation = field.default, field.annotation
    if get_origin(annotation) is Literal:
        return next(choice for choice in get_args(annotation) if choice != default)
    if isinstance(default, bool):
        return not default
    bounds = {type(m).__name__: m for m in field.metadata}
    if isinstance(default, int) or (default is None and int in get_args(annotation)):
        value = (default or 0) + 1
        return value if "Le" not in bounds or value <= bounds["Le"].le else (default or 0) - 1
    if isinstance(default, float):
        return default * 0.9 if default else 0.1
    if isinstance(default, str):
        return default + " again"
    raise AssertionError(f"no other value for {field}")


def protocol_digest(reward: RewardConfig, captioner: CaptionerConfig) -> str:
    return reward.to_protocol(captioner.caption_spec()).digest()


def flag_fields(section: str):
    model = Settings.model_fields[section].annotation
    return [(name, field) for name, field in model.model_fields.items()
            if field.annotation in (str, int, float, bool) or get_origin(field.annotation) is Literal
            or (name == "seed" and section == "captioner")]  # fmt: skip


@pytest.mark.parametrize("section", ["reward", "captioner"])
def test_the_pinned_mark_is_exactly_what_changes_the_protocol(section):
    reward, captioner = RewardConfig(), CaptionerSettings()
    base = protocol_digest(reward, captioner)
    marked, changing = set(), set()
    for name, field in flag_fields(section):
        if name == "base_url":
            continue  # where the server is: not a number of the score
        value = another_value(field)
        changed = (RewardConfig(**{name: value}), captioner) if section == "reward" else \
            (reward, captioner.model_copy(update={name: value}))
        if protocol_digest(*changed) != base:
            changing.add(name)
        if is_pinned(field):
            marked.add(name)
    assert marked == changing
    assert {"n_views", "resolution_px", "clip_model", "max_overdraw"} <= marked if section == "reward" else \
        {"instruction", "max_tokens", "include_prompt"} <= marked


def test_every_pinned_flag_says_so_and_no_other():
    parser = build_parser("validator")
    helps = {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings}
    for section in ("reward", "captioner"):
        model = Settings.model_fields[section].annotation
        for name, field in model.model_fields.items():
            flag = "--captioner" if (section, name) == ("captioner", "base_url") else f"--{section}.{name}"
            if flag in helps:
                assert ("pinned on finney and test" in helps[flag]) is is_pinned(field), flag
    assert "pinned on finney and test" in helps["--reward.n_views"]
    assert "pinned" not in helps["--reward.clip_batch_size"] and "pinned" not in helps["--captioner.timeout_s"]


@pytest.mark.parametrize("network", ["finney", "test"])
def test_a_validator_on_a_pinned_network_refuses_a_changed_value(network, tmp_path):
    from text3d.validator.main import check_scoring_protocol

    def settings(*argv: str) -> Settings:
        return load_settings("validator", ["--netuid", "3", "--subtensor.network", network,
                                           "--captioner", "http://127.0.0.1:8080", *argv])

    check_scoring_protocol(settings())  # the defaults pass
    check_scoring_protocol(settings("--reward.clip_batch_size", "8", "--captioner.timeout_s", "5"))  # operational
    with pytest.raises(ConfigError, match=r"rig\.n_views"):
        check_scoring_protocol(settings("--reward.n_views", "4"))
    config = tmp_path / "validator.toml"
    config.write_text("[captioner]\ninclude_prompt = true\n")  # hidden from the flags, not from the protocol
    with pytest.raises(ConfigError, match=r"caption\.include_prompt"):
        check_scoring_protocol(settings("--config", str(config)))
