"""The one settings tree: every option is one field, and its flag, help, env var and file key follow.

Pinned rules: each role gets exactly its sections' flags (the miner has ``--axon.port``
and ``--generation.grid_size``, the validator ``--captioner`` and
``--validator.timeout_s``, neither the other's) and every flag reaches its field; help
shows each default; values come from flags > ``TEXT3D_`` environment > a TOML or JSON
``--config`` file > defaults, merged key by key; a value out of range, wherever it came
from, is a ``ConfigError`` whose one sentence starts with the flag and the value (today
``--generation.grid_size 1000``), never a traceback; unknown flags are argparse's exit 2,
unknown file keys a ``ConfigError``; ``python -m neurons.miner|validator`` turn a
``ConfigError`` into exit 78 and one line on stderr.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

import annotated_types
import pytest

from text3d.generation.config import GenerationConfig
from text3d.settings import (
    ROLE_SECTIONS,
    CaptionerSettings,
    GenerationSettings,
    Settings,
    _HIDDEN,
    build_parser,
    flag_of,
    help_of,
    load_settings,
)
from text3d.protocol.errors import EXIT_CONFIG, EXIT_USAGE, ConfigError

REPO = Path(__file__).resolve().parent.parent
ROLES = ("miner", "validator")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """A TEXT3D_ variable of the machine running the tests must not leak into them."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("TEXT3D_"):
            monkeypatch.delenv(name)


def is_scalar(field):
    """A value one flag can carry; lists and tables are set in the --config file or the environment."""
    if get_origin(field.annotation) is Literal:
        return True
    args = [a for a in get_args(field.annotation) if a is not type(None)] or [field.annotation]
    return all(a in (bool, int, float, str, Path) for a in args)


def role_fields(role):
    """(section or None, name, field) of every flag the role shows."""
    for name in ("netuid", "models", "device"):
        yield None, name, Settings.model_fields[name]
    for section in ROLE_SECTIONS[role]:
        for name, field in Settings.model_fields[section].annotation.model_fields.items():
            if (section, name) not in _HIDDEN and is_scalar(field):
                yield section, name, field


def flags_of(role):
    return {option for action in build_parser(role)._actions for option in action.option_strings}


def one_line(text):
    return " ".join(text.split())


# -- flags ---------------------------------------------------------------------------------


def test_each_role_has_its_own_flags_and_not_the_others():
    miner, validator = flags_of("miner"), flags_of("validator")
    assert {"--axon.port", "--axon.external_ip", "--generation.grid_size", "--miner.max_batch_size"} <= miner
    assert {"--captioner", "--captioner.timeout_s", "--validator.timeout_s", "--validator.sample_size"} <= validator
    assert not {"--captioner", "--validator.timeout_s", "--validator.sample_size"} & miner
    assert not {"--axon.port", "--generation.grid_size", "--miner.max_batch_size"} & validator
    assert any(flag.startswith("--reward.") for flag in validator) and not any(f.startswith("--reward.") for f in miner)
    shared = {"--netuid", "--models", "--device", "--config", "--wallet.name", "--wallet.hotkey", "--wallet.path",
              "--subtensor.network", "--subtensor.chain_endpoint", "--devnet.db", "--logging.debug", "--logging.info"}  # fmt: skip
    assert shared <= miner & validator
    assert "--captioner.api_key" not in validator  # secrets come from the environment or the file only


@pytest.mark.parametrize("role", ROLES)
def test_every_field_of_the_role_has_exactly_its_flag(role):
    expected = {flag_of(section, name) for section, name, field in role_fields(role) if field.annotation is not bool}
    booleans = {flag_of(section, name) for section, name, field in role_fields(role) if field.annotation is bool}
    negated = {f"--no-{flag[2:]}" for flag in booleans}
    assert flags_of(role) == expected | booleans | negated | {"-h", "--help", "--config"}


def _other_values(field):
    """Valid values different from the default, as the command line would spell them."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return [str(choice) for choice in get_args(annotation) if choice != field.default]
    if annotation not in (int, float):
        return []
    low, high = -float("inf"), float("inf")
    for bound in field.metadata:
        low = max(low, getattr(bound, "ge", getattr(bound, "gt", low)))
        high = min(high, getattr(bound, "le", getattr(bound, "lt", high)))
    step = 1 if annotation is int else 0.5
    candidates = [field.default + step, field.default - step, high, low]
    inside = [v for v in candidates if low <= v <= high and v != field.default and abs(v) != float("inf")]
    return [str(annotation(v)) for v in inside if not any(getattr(b, "gt", None) == v or getattr(b, "lt", None) == v
                                                          for b in field.metadata)]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_every_numeric_and_choice_flag_reaches_its_field(role):
    reached = 0
    for section, name, field in role_fields(role):
        for value in _other_values(field):
            try:
                settings = load_settings(role, [flag_of(section, name), value])
            except ConfigError as exc:  # a rule across fields (say, a bound set by another field): try the next
                assert not str(exc).startswith(f"{flag_of(section, name)} {value}:"), str(exc)
                continue
            got = getattr(settings if section is None else getattr(settings, section), name)
            assert got == type(got)(value) and got != field.default, (section, name, value, got)
            reached += 1
            break
        else:
            assert not _other_values(field), f"no value reached {flag_of(section, name)}"
    assert reached >= 10


def test_boolean_flags_switch_both_ways_and_strings_and_paths_arrive(tmp_path):
    assert load_settings("miner", ["--logging.debug"]).logging.debug is True
    assert load_settings("miner", ["--no-miner.require_validator_permit"]).miner.require_validator_permit is False
    assert load_settings("miner", []).miner.require_validator_permit is True
    settings = load_settings("validator", ["--wallet.name", "v1", "--wallet.hotkey", "h2", "--wallet.path", str(tmp_path),
                                           "--validator.state_path", str(tmp_path / "s.json"),
                                           "--captioner", "http://127.0.0.1:8080/"])  # fmt: skip
    assert (settings.wallet.name, settings.wallet.hotkey, settings.wallet.path) == ("v1", "h2", str(tmp_path))
    assert settings.validator.state_path == tmp_path / "s.json"
    assert settings.captioner.enabled and settings.captioner.to_config().base_url == "http://127.0.0.1:8080"
    assert load_settings("validator", []).captioner.to_config() is None  # default: CLIP only


@pytest.mark.parametrize("role", ROLES)
def test_unknown_flags_are_a_usage_error(role, capsys):
    other = "--axon.port" if role == "validator" else "--validator.timeout_s"
    for argv in (["--bogus", "1"], [other, "1"], ["--netuid"]):
        with pytest.raises(SystemExit) as exited:
            load_settings(role, argv)
        assert exited.value.code == EXIT_USAGE
    assert "unrecognized argument --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("role", ROLES)
def test_help_lists_every_default(role):
    help_text = one_line(build_parser(role).format_help())
    for section, name, field in role_fields(role):
        assert field.description, f"--{section}.{name} has no description"
        shown = help_of(field)
        assert "".join(shown.split()) in "".join(help_text.split()), (section, name)  # argparse wraps at hyphens too
        if field.default is not None and "(default:" not in field.description:
            assert "(default: " in shown, (section, name)
    if role == "miner":
        assert "--axon.port N Port the miner's HTTP server binds (default: 8091)." in help_text
        assert "--generation.grid_size N Marching-cubes grid per axis (default: 128)." in help_text
        assert "--miner.format {draco,ply,glb}" in help_text
    else:
        assert "--validator.timeout_s X Deadline for a miner's last byte (default: 12.0)." in help_text
        assert "(CLIP only) (default: none)." in help_text
    assert "TEXT3D_" in help_text


def test_generation_defaults_are_the_generators_own():
    """One default per option: the flags' defaults are GenerationConfig's, not a second copy."""
    _, built = GenerationSettings().spec(models="tiny", device="cpu", max_batch_size=4).check()
    reference = GenerationConfig(show_progress=False)
    assert built == reference
    tuned = load_settings("miner", ["--generation.grid_size", "64", "--generation.steps", "8"]).generation
    spec = tuned.spec(models="tiny", device="cpu", max_batch_size=2)
    _, config = spec.check()
    assert (config.grid_size, config.num_inference_steps, spec.context.max_batch_size) == (64, 8, 2)


# -- sources and precedence ----------------------------------------------------------------


def test_values_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TEXT3D_MINER__MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("TEXT3D_NETUID", "7")
    monkeypatch.setenv("TEXT3D_LOGGING__DEBUG", "true")
    settings = load_settings("miner", [])
    assert (settings.miner.max_batch_size, settings.netuid, settings.logging.debug) == (8, 7, True)
    assert settings.miner.max_queue == 32  # the rest of the section keeps its defaults


def test_nothing_is_read_at_import_time(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["text3d", "--netuid", "9"])
    assert load_settings("miner", []).netuid == 1  # an explicit argv is all there is
    monkeypatch.setenv("TEXT3D_NETUID", "11")  # set after import: still seen
    assert load_settings("miner", []).netuid == 11
    assert load_settings("miner", None).netuid == 9  # argv=None means sys.argv[1:]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_values_come_from_a_config_file(tmp_path, suffix):
    path = tmp_path / f"miner{suffix}"
    data = {"netuid": 5, "models": "tiny", "miner": {"max_batch_size": 3, "format": "ply"}, "axon": {"port": 9100}}
    if suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text('netuid = 5\nmodels = "tiny"\n[miner]\nmax_batch_size = 3\nformat = "ply"\n[axon]\nport = 9100\n')
    settings = load_settings("miner", ["--config", str(path)])
    assert (settings.netuid, settings.models, settings.axon.port) == (5, "tiny", 9100)
    assert (settings.miner.max_batch_size, settings.miner.format, settings.miner.max_queue) == (3, "ply", 32)


def test_flags_beat_environment_beats_file_beats_defaults(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_text("[miner]\nmax_batch_size = 2\nmax_queue = 9\nmax_in_flight_per_caller = 3\nbatch_window_s = 0.5\n")
    monkeypatch.setenv("TEXT3D_MINER__MAX_QUEUE", "11")
    monkeypatch.setenv("TEXT3D_MINER__MAX_IN_FLIGHT_PER_CALLER", "5")
    section = load_settings("miner", ["--config", str(path), "--miner.max_in_flight_per_caller", "6"]).miner
    assert section.max_in_flight_per_caller == 6  # flag over environment over file
    assert section.max_queue == 11  # environment over file
    assert section.max_batch_size == 2 and section.batch_window_s == 0.5  # file over defaults
    assert section.resync_interval_s == 120.0  # defaults for the rest
    monkeypatch.setenv("TEXT3D_MINER__MAX_BATCH_SIZE", "7")
    assert load_settings("miner", ["--miner.max_batch_size", "5"]).miner.max_batch_size == 5


def test_one_config_file_serves_both_neurons(tmp_path):
    path = tmp_path / "subnet.toml"
    path.write_text("netuid = 4\n[miner]\nmax_queue = 8\n[validator]\nsample_size = 3\n")
    assert load_settings("miner", ["--config", str(path)]).miner.max_queue == 8
    assert load_settings("validator", ["--config", str(path)]).validator.sample_size == 3


# -- errors ----------------------------------------------------------------------------------


def _kind(field):
    """``int`` for ``int`` and ``int | None``, and so on."""
    args = [a for a in get_args(field.annotation) if a is not type(None)]
    return args[0] if get_origin(field.annotation) is not Literal and len(args) == 1 else field.annotation


def _out_of_range(field):
    """Values just outside each bound of a numeric field, as strings."""
    kind = _kind(field)
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            yield str(kind(bound.ge - 1))
        elif isinstance(bound, annotated_types.Gt):
            yield str(kind(bound.gt))
        elif isinstance(bound, annotated_types.Le):
            yield str(kind(bound.le + 1))
        elif isinstance(bound, annotated_types.Lt):
            yield str(kind(bound.lt))


def _cases():
    seen = set()
    for role in ROLES:
        for section, name, field in role_fields(role):
            flag = flag_of(section, name)
            if flag in seen:
                continue
            seen.add(flag)
            for value in _out_of_range(field):
                yield pytest.param(role, flag, value, id=f"{flag}={value}")
            if get_origin(field.annotation) is Literal:
                yield pytest.param(role, flag, "bogus", id=f"{flag}=bogus")
            if _kind(field) in (int, float):
                yield pytest.param(role, flag, "many", id=f"{flag}=many")


CASES = list(_cases())


def test_the_cases_cover_the_tree():
    flags = {case.values[1] for case in CASES}
    assert {"--generation.grid_size", "--axon.port", "--validator.timeout_s", "--miner.max_timeout_s",
            "--captioner.timeout_s", "--netuid", "--miner.format", "--generation.dtype"} <= flags  # fmt: skip
    assert any(flag.startswith("--reward.") for flag in flags)
    assert len(CASES) > 60


@pytest.mark.parametrize("role, flag, value", CASES)
def test_every_out_of_range_value_is_one_sentence_naming_the_flag(role, flag, value):
    with pytest.raises(ConfigError) as caught:
        load_settings(role, [flag, value])
    message = str(caught.value)
    assert message.startswith(f"{flag} {value}: "), message
    assert message.endswith(".") and "\n" not in message and "pydantic" not in message


def test_the_grid_size_that_crashed_the_miner():
    with pytest.raises(ConfigError) as caught:
        load_settings("miner", ["--generation.grid_size", "1000"])
    assert str(caught.value) == "--generation.grid_size 1000: input should be less than or equal to 512."


@pytest.mark.parametrize(
    "argv, starts",
    [
        (["--device", "tpu"], "--device tpu: "),
        (["--wallet.name", ""], "--wallet.name"),
        (["--subtensor.chain_endpoint", "http://node:9944"], "--subtensor.chain_endpoint http://node:9944: must start with ws://"),
        (["--captioner", "ftp://x"], "--captioner ftp://x: "),
    ],
)
def test_malformed_strings_name_their_flag(argv, starts):
    role = "validator" if argv[0] == "--captioner" else "miner"
    with pytest.raises(ConfigError, match="^" + starts.replace(".", r"\.").replace("?", r"\?")):
        load_settings(role, argv)


def test_devnet_needs_its_database(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings("validator", ["--subtensor.network", "devnet"])
    assert str(caught.value).startswith("--subtensor.network devnet needs --devnet.db PATH")
    settings = load_settings("miner", ["--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "d.db")])
    assert settings.devnet.db == tmp_path / "d.db" and settings.is_local
    assert settings.announced_ip() == "127.0.0.1"  # never look an address up on a local chain


def test_public_networks_announce_only_what_they_are_told():
    assert not load_settings("miner", []).is_local and load_settings("miner", []).announced_ip() is None
    told = load_settings("miner", ["--axon.external_ip", "203.0.113.7"])
    assert told.announced_ip() == "203.0.113.7"
    assert load_settings("miner", ["--subtensor.chain_endpoint", "ws://127.0.0.1:9944"]).is_local


def test_environment_values_are_checked_like_flags(monkeypatch):
    monkeypatch.setenv("TEXT3D_GENERATION__GRID_SIZE", "1000")
    with pytest.raises(ConfigError, match=r"^--generation\.grid_size 1000: "):
        load_settings("miner", [])


@pytest.mark.parametrize("name, value", [("TEXT3D_MINER", "max_batch_size=8"), ("TEXT3D_MINER", "{max_batch_size: 8}")])
def test_a_section_in_the_environment_that_is_not_json_is_one_sentence(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings("miner", [])
    assert str(caught.value).startswith("TEXT3D_MINER or a TEXT3D_MINER__* variable does not parse")
    assert "JSON" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.setenv(name, '{"max_batch_size": 8}')  # as JSON it is a section like any other
    assert load_settings("miner", []).miner.max_batch_size == 8


@pytest.mark.parametrize(
    "name, text, starts",
    [
        ("bad.toml", "[miner]\nbogus = 1\n", "--miner.bogus is not a setting"),
        ("bad.json", '{"bogus": 1}', "--bogus is not a setting"),
        ("bad.toml", "[generation]\ngrid_size = 1000\n", "--generation.grid_size 1000: "),
        ("bad.toml", "[miner\n", "--config {path}: not valid TOML"),
        ("bad.json", "{nope", "--config {path}: not valid JSON"),
        ("bad.json", "[1, 2]", "--config {path}: the file must hold a table"),
        ("missing.toml", None, "--config {path}: cannot read it"),
    ],
)
def test_a_bad_config_file_is_one_sentence(tmp_path, name, text, starts):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings("miner", ["--config", str(path)])
    message = str(caught.value)
    assert message.startswith(starts.format(path=path)), message
    assert "\n" not in message


def test_sections_are_frozen_and_refuse_unknown_keys():
    settings = load_settings("miner", [])
    with pytest.raises(Exception):
        settings.miner.max_batch_size = 9  # type: ignore[misc]
    with pytest.raises(Exception):
        CaptionerSettings(bogus=1)


# -- the entry points ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, first_words",
    [
        (["-m", "neurons.miner", "--generation.grid_size", "1000"], "text3d miner: --generation.grid_size 1000: "),
        (["-m", "neurons.validator", "--validator.timeout_s", "100"], "text3d validator: --validator.timeout_s 100: "),
        (["-m", "text3d.cli.main", "miner", "--axon.port", "70000"], "text3d miner: --axon.port 70000: "),
    ],
)
def test_a_bad_value_exits_78_with_one_line_and_no_traceback(tmp_path, argv, first_words):
    argv = [*argv, "--wallet.path", str(tmp_path / "wallets"), "--models", "tiny"]
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == EXIT_CONFIG, done.stderr
    err = done.stderr.strip()
    assert err.startswith(first_words) and len(err.splitlines()) == 1, err
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "wallets").exists()  # refused before anything was touched
