"""Command-line flags of the neurons, and their conversion into typed config sections.

Flags follow bittensor's dotted conventions (``--wallet.name``, ``--axon.port``,
``--subtensor.network``) and are parsed into a ``bt.Config`` tree (what ``bt.Wallet``,
``bt.Axon`` and ``bt.logging`` read). That tree is converted ONCE, in the entry point,
into the frozen sections below; every component receives its own section only.

Parsing uses ``argparse`` directly: bittensor 10.5's ``bt.Config(parser)`` skips CLI
parsing unless ``BT_NO_PARSE_CLI_ARGS=false`` and swallows argparse errors, so we parse
ourselves (clear usage errors, exit code 2) and build the same nested tree.
Nothing here reads argv or the environment at import time.
"""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import bittensor as bt

__all__ = [
    "ConfigError",
    "WalletConfig",
    "NeuronConfig",
    "AxonConfig",
    "GenerationSettings",
    "MinerConfig",
    "ValidatorConfig",
    "build_parser",
    "parse_bt_config",
    "neuron_config",
    "axon_config",
    "generation_settings",
    "miner_config",
    "validator_config",
]

Role = Literal["miner", "validator"]
LOCAL_NETWORKS = ("devnet", "local")
MESH_FORMATS = ("draco", "ply", "glb")


class ConfigError(ValueError):
    """A fatal configuration problem; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class WalletConfig:
    name: str = "default"
    hotkey: str = "default"
    path: str = "~/.bittensor/wallets/"


@dataclass(frozen=True)
class NeuronConfig:
    """What both neurons share: which subnet, which wallet, which models, which device."""

    netuid: int
    network: str
    chain_endpoint: str | None
    devnet_db: str | None
    wallet: WalletConfig
    models: Literal["real", "tiny"] = "real"
    device: str = "auto"
    debug: bool = False

    def __post_init__(self) -> None:
        if self.netuid < 0:
            raise ConfigError(f"--netuid must be >= 0, got {self.netuid}.")
        if self.models not in ("real", "tiny"):
            raise ConfigError(f"--models must be 'real' or 'tiny', got {self.models!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}.")
        if self.network == "devnet" and not self.devnet_db:
            raise ConfigError("--subtensor.network devnet needs --devnet.db PATH (the devnet's SQLite file).")

    @property
    def is_local(self) -> bool:
        """True on the devnet or a local subtensor: never look up an external ip there."""
        endpoint = self.chain_endpoint or ""
        return self.network in LOCAL_NETWORKS or "127.0.0.1" in endpoint or "localhost" in endpoint

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class AxonConfig:
    """Where the miner listens (``ip``/``port``) and what it announces (``external_*``)."""

    ip: str = "0.0.0.0"
    port: int = 8091
    external_ip: str | None = None
    external_port: int | None = None

    def __post_init__(self) -> None:
        if not 1024 < self.port < 65535:  # bt.Axon's own rule
            raise ConfigError(f"--axon.port must be in 1025..65534, got {self.port}.")


@dataclass(frozen=True)
class GenerationSettings:
    """Shap-E sampling settings from the miner's flags (Shap-E's reference: 64 steps, guidance 15)."""

    steps: int = 64
    guidance: float = 15.0
    grid_size: int = 128

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grid_size < 8 or not self.guidance >= 0:
            raise ConfigError("--generation.steps must be >= 1, --generation.grid_size >= 8, --generation.guidance >= 0.")


@dataclass(frozen=True)
class MinerConfig:
    """Serving policy of the miner."""

    max_batch_size: int = 4
    min_validator_stake: float = 0.0
    format: str = "draco"
    resync_interval_s: float = 120.0
    batch_window_s: float = 0.05  # how long the first request of a batch waits for company
    deadline_margin_s: float = 0.25  # answer only if at least this much of the caller's timeout is left

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"--miner.max_batch_size must be >= 1, got {self.max_batch_size}.")
        if self.format not in MESH_FORMATS:
            raise ConfigError(f"--miner.format must be one of {', '.join(MESH_FORMATS)}, got {self.format!r}.")
        if self.min_validator_stake < 0 or self.resync_interval_s <= 0 or self.batch_window_s < 0:
            raise ConfigError("--miner.min_validator_stake must be >= 0 and --miner.resync_interval_s > 0.")


@dataclass(frozen=True)
class ValidatorConfig:
    """Scoring loop policy of the validator."""

    captioner: str | None = None  # OpenAI-compatible base URL, or None for no captioner
    sample_size: int = 16
    timeout_s: float = 30.0
    step_interval_s: float = 30.0
    max_steps: int = 0  # 0 = run forever
    alpha: float = 0.1
    state_path: Path = Path("validator_state.json")
    reports_dir: Path | None = None
    reports_max_mb: float = 500.0
    views: int = 4
    resolution: int = 512

    def __post_init__(self) -> None:
        if self.sample_size < 1:
            raise ConfigError(f"--validator.sample_size must be >= 1, got {self.sample_size}.")
        if not self.timeout_s > 0 or self.step_interval_s < 0 or self.max_steps < 0:
            raise ConfigError("--validator.timeout_s must be > 0, step_interval_s and max_steps >= 0.")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"--validator.alpha must be in (0, 1], got {self.alpha}.")
        if self.views < 1 or self.resolution < 16 or self.reports_max_mb < 0:
            raise ConfigError("--validator.views must be >= 1, --validator.resolution >= 16, reports_max_mb >= 0.")


# -- flags ------------------------------------------------------------------------------


def _has_flag(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions


def _add_chain_args(parser: argparse.ArgumentParser) -> None:
    """The chain engineer's flags when available; the same flags otherwise (never twice)."""
    try:
        from neurons.chain.factory import add_chain_args
    except ImportError:
        add_chain_args = None
    if add_chain_args is not None:
        add_chain_args(parser)
    if not _has_flag(parser, "--subtensor.network"):
        bt.Subtensor.add_args(parser)
    if not _has_flag(parser, "--devnet.db"):
        parser.add_argument("--devnet.db", type=str, default=None, help="SQLite file of the local devnet chain.")
    if not _has_flag(parser, "--netuid"):
        parser.add_argument("--netuid", type=int, default=1, help="Subnet uid.")


def build_parser(role: Role) -> argparse.ArgumentParser:
    """All flags of the ``role`` neuron (see the module docstring for conventions)."""
    parser = argparse.ArgumentParser(prog=f"text3d-{role}", description=f"text3d {role} neuron.")
    bt.Wallet.add_args(parser)
    _add_chain_args(parser)
    bt.logging.add_args(parser)
    parser.add_argument("--models", choices=("real", "tiny"), default="real", help="tiny = tiny offline pipelines.")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    if role == "miner":
        bt.Axon.add_args(parser)
        parser.set_defaults(**{"axon.ip": "0.0.0.0"})
        parser.add_argument("--generation.steps", type=int, default=64)
        parser.add_argument("--generation.guidance", type=float, default=15.0)
        parser.add_argument("--generation.grid_size", type=int, default=128)
        parser.add_argument("--miner.max_batch_size", type=int, default=4)
        parser.add_argument("--miner.min_validator_stake", type=float, default=0.0)
        parser.add_argument("--miner.format", choices=MESH_FORMATS, default="draco")
        parser.add_argument("--miner.resync_interval_s", type=float, default=120.0)
    else:
        parser.add_argument("--captioner", default="none", help="OpenAI-compatible captioning server URL, or 'none'.")
        parser.add_argument("--validator.sample_size", type=int, default=16, help="Miners queried per step.")
        parser.add_argument("--validator.timeout_s", type=float, default=30.0, help="Dendrite timeout.")
        parser.add_argument("--validator.step_interval_s", type=float, default=30.0)
        parser.add_argument("--validator.max_steps", type=int, default=0, help="0 = run forever.")
        parser.add_argument("--validator.alpha", type=float, default=0.1, help="Moving-average factor.")
        parser.add_argument("--validator.state_path", type=str, default=None)
        parser.add_argument("--validator.reports_dir", type=str, default=None)
        parser.add_argument("--validator.reports_max_mb", type=float, default=500.0)
        parser.add_argument("--validator.views", type=int, default=4)
        parser.add_argument("--validator.resolution", type=int, default=512)
    return parser


def parse_bt_config(role: Role, argv: Sequence[str] | None = None) -> "bt.Config":
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a nested ``bt.Config``.

    Exits with code 2 and argparse's usage message on unknown or malformed flags.
    """
    namespace = build_parser(role).parse_args(argv)
    tree = bt.Config().toDict()  # bittensor's defaults, as plain nested dicts
    for key, value in vars(namespace).items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return bt.Config(default=tree)


# -- conversion into sections -------------------------------------------------------------


def _get(config: "bt.Config", dotted: str, default=None):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def neuron_config(config: "bt.Config") -> NeuronConfig:
    return NeuronConfig(
        netuid=int(_get(config, "netuid", 1)),
        network=str(_get(config, "subtensor.network", "finney")),
        chain_endpoint=_get(config, "subtensor.chain_endpoint"),
        devnet_db=_get(config, "devnet.db"),
        wallet=WalletConfig(
            name=str(_get(config, "wallet.name", "default")),
            hotkey=str(_get(config, "wallet.hotkey", "default")),
            path=str(_get(config, "wallet.path", "~/.bittensor/wallets/")),
        ),
        models=_get(config, "models", "real"),
        device=str(_get(config, "device", "auto")),
        debug=bool(_get(config, "logging.debug", False)),
    )


def axon_config(config: "bt.Config", neuron: NeuronConfig) -> AxonConfig:
    """In local mode the announced ip defaults to 127.0.0.1 (no external lookup ever)."""
    external_ip = _get(config, "axon.external_ip")
    if external_ip is None and neuron.is_local:
        external_ip = "127.0.0.1"
    ip = str(_get(config, "axon.ip", "0.0.0.0"))
    return AxonConfig(
        ip="0.0.0.0" if ip == "[::]" else ip,
        port=int(_get(config, "axon.port", 8091)),
        external_ip=external_ip,
        external_port=_get(config, "axon.external_port"),
    )


def generation_settings(config: "bt.Config") -> GenerationSettings:
    return GenerationSettings(
        steps=int(_get(config, "generation.steps", 64)),
        guidance=float(_get(config, "generation.guidance", 15.0)),
        grid_size=int(_get(config, "generation.grid_size", 128)),
    )


def miner_config(config: "bt.Config") -> MinerConfig:
    return MinerConfig(
        max_batch_size=int(_get(config, "miner.max_batch_size", 4)),
        min_validator_stake=float(_get(config, "miner.min_validator_stake", 0.0)),
        format=str(_get(config, "miner.format", "draco")),
        resync_interval_s=float(_get(config, "miner.resync_interval_s", 120.0)),
    )


def _default_data_dir(neuron: NeuronConfig) -> Path:
    """Per-hotkey folder next to bittensor's own neuron logs."""
    wallet = neuron.wallet
    return Path(os.path.expanduser("~/.bittensor/miners")) / wallet.name / wallet.hotkey / f"netuid{neuron.netuid}" / "text3d"


def validator_config(config: "bt.Config", neuron: NeuronConfig) -> ValidatorConfig:
    captioner = str(_get(config, "captioner", "none"))
    state_path = _get(config, "validator.state_path")
    reports_dir = _get(config, "validator.reports_dir")
    return ValidatorConfig(
        captioner=None if captioner.lower() == "none" else captioner,
        sample_size=int(_get(config, "validator.sample_size", 16)),
        timeout_s=float(_get(config, "validator.timeout_s", 30.0)),
        step_interval_s=float(_get(config, "validator.step_interval_s", 30.0)),
        max_steps=int(_get(config, "validator.max_steps", 0)),
        alpha=float(_get(config, "validator.alpha", 0.1)),
        state_path=Path(state_path).expanduser() if state_path else _default_data_dir(neuron) / "state.json",
        reports_dir=Path(reports_dir).expanduser() if reports_dir else None,
        reports_max_mb=float(_get(config, "validator.reports_max_mb", 500.0)),
        views=int(_get(config, "validator.views", 4)),
        resolution=int(_get(config, "validator.resolution", 512)),
    )
