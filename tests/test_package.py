"""The package's public surface: every exported name resolves, the CLI lists every
subcommand, and the scoring core, generation, the wire protocol (every ``protocol/``
module: only the neurons sign and verify) and the neurons' pure parts stay free of
bittensor (docs/architecture.md: they must be usable without a wallet or a chain)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

from text3d.cli.main import COMMANDS, build_parser, main
from text3d.protocol.version import SPEC_VERSION, __version__, spec_version_of


PACKAGES = sorted("text3d" + "".join("." + part for part in init.parent.relative_to(ROOT / "text3d").parts)
                  for init in (ROOT / "text3d").rglob("__init__.py"))  # fmt: skip


@pytest.mark.parametrize("package", PACKAGES)
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


PROTOCOL = sorted(f"text3d.protocol.{path.stem}"
                  for path in (Path(__file__).resolve().parent.parent / "text3d" / "protocol").glob("*.py")
                  if path.stem != "__init__")  # fmt: skip
PURE = ["text3d.reward.model", "text3d.reward.factory", "text3d.generation.shap_e", "text3d.protocol", *PROTOCOL,
        "text3d.settings", "text3d.miner.caller_policy", "text3d.miner.queue", "text3d.validator.weights", "text3d.chain"]  # fmt: skip


def test_the_check_covers_the_wire_protocol():
    assert {"text3d.protocol.wire", "text3d.protocol.errors", "text3d.protocol.mesh_codec", "text3d.protocol.limits"} <= set(PROTOCOL)


@pytest.mark.parametrize("module", PURE)
def test_core_modules_do_not_import_bittensor(module):
    code = f"import sys, {module}; print('bittensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
