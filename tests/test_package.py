"""The package's public surface: every exported name resolves, the CLI lists every
subcommand, and the scoring core, generation, the wire protocol (every ``protocol/``
module: only the neurons sign and verify) and the neurons' pure parts stay free of
bittensor (DESIGN.md: they must be usable without a wallet or a chain)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from neurons.cli import COMMANDS, build_parser, main
from protocol.version import SPEC_VERSION, __version__, spec_version_of


@pytest.mark.parametrize("package", ["protocol", "reward", "generation", "neurons"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} exports nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_spec_version_follows_the_subnet_convention():
    assert spec_version_of("2.3.4") == 2034
    assert SPEC_VERSION == spec_version_of(__version__)


def test_cli_lists_every_subcommand(capsys):
    help_text = build_parser().format_help()
    for name in COMMANDS:
        assert name in help_text
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert str(SPEC_VERSION) in capsys.readouterr().out


def test_cli_without_a_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


PROTOCOL = sorted(f"protocol.{path.stem}" for path in (Path(__file__).resolve().parent.parent / "protocol").glob("*.py")
                  if path.stem != "__init__")  # fmt: skip
PURE = ["reward.model", "reward.factory", "generation.shap_e", "protocol", *PROTOCOL,
        "neurons.settings", "neurons.caller_policy", "neurons.generation_queue", "neurons.weights", "neurons.chain"]  # fmt: skip


def test_the_check_covers_the_wire_protocol():
    assert {"protocol.wire", "protocol.errors", "protocol.mesh_codec", "protocol.limits"} <= set(PROTOCOL)


@pytest.mark.parametrize("module", PURE)
def test_core_modules_do_not_import_bittensor(module):
    code = f"import sys, {module}; print('bittensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
