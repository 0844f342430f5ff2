"""The one settings tree of the neurons: every option, its one default, its flag, its env var.

    Settings                          --netuid  --models  --device  --config FILE
    ├── wallet      WalletSettings    --wallet.name  --wallet.hotkey  --wallet.path
    ├── subtensor   SubtensorSettings --subtensor.network  --subtensor.chain_endpoint
    ├── devnet      DevnetSettings    --devnet.db
    ├── axon        AxonSettings      --axon.port  --axon.ip  --axon.external_ip  --axon.external_port
    ├── logging     LoggingSettings   --logging.debug  --logging.info  ...
    ├── generation  GenerationSettings  --generation.steps  --generation.backend  --generation.endpoints ...
    ├── server      ServerSettings    --server.ip  --server.port  ...   (text3d generation-server)
    ├── miner       MinerSettings     --miner.*
    ├── validator   ValidatorSettings --validator.*  and its organic work: --gateway.url  --gateway.miners ...
    ├── gateway     GatewaySettings   --gateway.port  --gateway.store  ...   (text3d gateway)
    ├── reward      RewardConfig      --reward.n_views  --reward.resolution_px  --reward.metric ...
    ├── incentive   IncentiveCurve    --incentive.kind power|rank  --incentive.exponent ...
    ├── captioner   CaptionerSettings --captioner URL|none  --captioner.timeout_s ...
    ├── metrics     MetricsSettings   --metrics.port  --metrics.ip   (Prometheus; off by default)
    └── autoupdate  AutoUpdateSettings --autoupdate  --autoupdate.interval_s   (off by default)

Values come from, highest first: command-line flags, environment variables
(``TEXT3D_NETUID``, ``TEXT3D_MINER__MAX_BATCH_SIZE``: prefix ``TEXT3D_``, sections joined
by ``__``), a TOML or JSON file given with ``--config`` (same nesting as the tree), and
the defaults written here. Flags, their help and their defaults are generated from the
fields, so a new option is one field; bittensor's dotted flag names stay.

A value out of range is a ``ConfigError`` whose message names the flag and says what is
allowed, never a traceback. Each component receives its own section (``settings.miner``,
``settings.generation.spec(...)``), not the whole tree. Nothing here reads argv or
the environment at import time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Sequence, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from text3d.common.argparsing import CommandParser
from text3d.generation.config import GenerationConfig
from text3d.generation.interface import DEFAULT_BACKEND, BackendContext, GeneratorSpec
from text3d.ops.metrics import MetricsSettings
from text3d.protocol.errors import ConfigError
from text3d.protocol.wire import MAX_PROMPT_CHARS, MAX_TIMEOUT_S
from text3d.reward.caption_client import CaptionerConfig
from text3d.reward.config import RewardConfig
from text3d.reward.scoring_protocol import PINNED_NETWORKS
from text3d.validator.weights import IncentiveCurve

__all__ = [
    "Role",
    "LOCAL_NETWORKS",
    "WalletSettings",
    "SubtensorSettings",
    "DevnetSettings",
    "AxonSettings",
    "LoggingSettings",
    "GenerationSettings",
    "ServerSettings",
    "MinerSettings",
    "ValidatorSettings",
    "GatewaySettings",
    "CaptionerSettings",
    "AutoUpdateSettings",
    "MetricsSettings",
    "Settings",
    "ROLE_SECTIONS",
    "build_parser",
    "load_settings",
    "check_netuid_given",
    "flag_of",
    "help_of",
    "is_pinned",
]

Role = Literal["miner", "validator", "generation-server", "gateway"]
LOCAL_NETWORKS = ("devnet", "local")
ENV_PREFIX = "TEXT3D_"


def _flag(name: str) -> dict[str, Any]:
    """``json_schema_extra`` that gives a field a flag other than ``--section.field``."""
    return {"flag": name}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WalletSettings(Section):
    name: str = Field("default", min_length=1, description="Wallet (coldkey) name.")
    hotkey: str = Field("default", min_length=1, description="Hotkey name inside the wallet.")
    path: str = Field("~/.bittensor/wallets", min_length=1, description="Folder holding the wallets.")


class SubtensorSettings(Section):
    network: str = Field(
        "finney", min_length=1, description="finney | test | local | devnet, or a ws:// / wss:// endpoint."
    )
    chain_endpoint: str | None = Field(None, description="A ws:// or wss:// endpoint overriding --subtensor.network.")

    @field_validator("chain_endpoint")
    @classmethod
    def _websocket(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value


class DevnetSettings(Section):
    db: Path | None = Field(None, description="SQLite file of the local devnet (with --subtensor.network devnet).")


class AxonSettings(Section):
    ip: str = Field("0.0.0.0", description="Address the miner's HTTP server binds.")
    port: int = Field(8091, ge=1, le=65535, description="Port the miner's HTTP server binds.")
    external_ip: str | None = Field(
        None, description="Address announced on chain (default: 127.0.0.1 on local networks, else detected)."
    )
    external_port: int | None = Field(None, ge=1, le=65535, description="Port announced on chain (default: --axon.port).")


class LoggingSettings(Section):
    debug: bool = Field(False, description="Debug logging.")
    info: bool = Field(False, description="Info logging (the default level).")
    json_lines: bool = Field(
        False, json_schema_extra=_flag("--logging.json"), description="One JSON object per line instead of text."
    )
    dir: Path | None = Field(None, description="Also write <role>.log in this folder, rotated (default: stderr only).")
    max_mb: float = Field(50.0, ge=0.1, le=100_000.0, description="Rotate the log file at this size (MB).")
    backups: int = Field(5, ge=0, le=1000, description="Rotated log files kept.")


_GEN = GenerationConfig.model_fields


class GenerationSettings(Section):
    """The miner's generation flags; defaults are ``GenerationConfig``'s (Shap-E's reference)."""

    steps: int = Field(_GEN["num_inference_steps"].default, ge=1, le=1000, description="Prior denoising steps.")
    guidance: float = Field(_GEN["guidance_scale"].default, ge=0.0, le=100.0, description="Classifier-free guidance.")
    grid_size: int = Field(_GEN["grid_size"].default, ge=8, le=512, description="Marching-cubes grid per axis.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        _GEN["dtype"].default, description="Weights' dtype (auto: float16 on CUDA)."
    )

    backend: str = Field(
        DEFAULT_BACKEND, min_length=3, description="Generator class as package.module:Class (default: Shap-E)."
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="The backend's own settings: a table in --config, checked by its Options."
    )
    endpoints: str = Field(
        "", description="Generation servers, comma-separated http://host:port (default: generate in this process)."
    )
    token: str | None = Field(None, description="Shared token sent to the generation servers (X-Text3d-Token).")
    endpoint_concurrency: int = Field(
        0, ge=0, le=1024,
        description="Requests in flight per generation server or Ray replica (0: --miner.max_batch_size).",
    )
    health_interval_s: float = Field(2.0, gt=0.0, le=60.0, description="Seconds between health checks of the pool.")
    ray_address: str | None = Field(
        None, description="Ray cluster to run the generation replicas on (auto, HOST:6379 or ray://HOST:10001)."
    )
    ray_replicas: int = Field(0, ge=0, le=1024, description="Ray Serve replicas (0: one per GPU of the cluster).")
    ray_num_gpus: float = Field(1.0, ge=0.0, le=8.0, description="GPUs per Ray replica (0: CPU replicas).")
    ray_num_cpus: float = Field(1.0, ge=0.0, le=256.0, description="CPUs reserved per Ray replica.")
    ray_app: str = Field(
        "text3d-generation", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Ray Serve application name."
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoint_urls(cls, value: str) -> str:
        urls = []
        for raw in (part.strip() for part in value.split(",")):
            if not raw:
                continue
            match = re.fullmatch(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})/?", raw)
            if match is None or not 1 <= int(match.group(3)) <= 65535:
                raise ValueError(f"{raw!r} is not http://HOST:PORT (comma-separated, no path)")
            urls.append(raw.rstrip("/"))
        if len(set(urls)) != len(urls):
            raise ValueError("an endpoint is listed twice")
        return ",".join(urls)

    @field_validator("ray_address")
    @classmethod
    def _one_pool(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("endpoints"):
            raise ValueError("cannot be used with --generation.endpoints: pick one pool")
        return value

    @property
    def endpoint_urls(self) -> tuple[str, ...]:
        return tuple(url for url in self.endpoints.split(",") if url)

    def spec(self, *, models: str, device: str, max_batch_size: int) -> GeneratorSpec:
        """The generator these settings name, as data (``GeneratorSpec.build`` loads it anywhere).

        For the default backend (Shap-E) the ``--generation.*`` flags above are its options,
        and ``backend_options`` may add or override any ``GenerationConfig`` field; another
        backend gets ``backend_options`` alone.
        """
        options = dict(self.backend_options)
        if self.backend == DEFAULT_BACKEND:
            options = {
                "num_inference_steps": self.steps, "guidance_scale": self.guidance, "grid_size": self.grid_size,
                "dtype": self.dtype, "show_progress": False, **options,
            }  # fmt: skip
        context = BackendContext(device=device, max_batch_size=max_batch_size, models=models)  # type: ignore[arg-type]
        return GeneratorSpec(self.backend, options, context)


class ServerSettings(Section):
    """``text3d generation-server``: one generator behind HTTP on one device."""

    ip: str = Field("127.0.0.1", description="Address the generation server binds (not loopback: set a token).")
    port: int = Field(8093, ge=1, le=65535, description="Port the generation server binds.")
    token: str | None = Field(None, description="Shared token callers must send (X-Text3d-Token).")
    format: Literal["draco", "ply", "glb"] = Field("draco", description="Wire format of the answers.")
    max_batch_size: int = Field(4, ge=1, le=64, description="Prompts generated together.")
    batch_window_s: float = Field(0.05, ge=0.0, le=5.0, description="How long a batch waits for company.")
    max_queue: int = Field(32, ge=1, le=4096, description="Requests queued in all (more: 503).")
    max_timeout_s: float = Field(
        MAX_TIMEOUT_S, gt=0.0, le=MAX_TIMEOUT_S, description="Cap on the deadline a caller may ask for (seconds)."
    )
    deadline_margin_s: float = Field(0.05, ge=0.0, le=10.0, description="Time kept for the trip back to the miner.")
    warmup: bool = Field(True, description="Generate one mesh before answering ready.")


class MinerSettings(Section):
    format: Literal["draco", "ply", "glb"] = Field("draco", description="Wire format of the answers.")
    max_batch_size: int = Field(4, ge=1, le=64, description="Prompts generated together.")
    batch_window_s: float = Field(0.05, ge=0.0, le=5.0, description="How long a batch waits for company.")
    min_validator_stake: float = Field(0.0, ge=0.0, description="Callers need at least this stake (TAO).")
    require_validator_permit: bool = Field(True, description="Callers need a validator permit.")
    resync_interval_s: float = Field(120.0, gt=0.0, description="Seconds between metagraph refreshes.")
    deadline_margin_s: float = Field(0.25, ge=0.0, le=10.0, description="Time kept for the trip back.")
    max_timeout_s: float = Field(
        30.0, gt=0.0, le=MAX_TIMEOUT_S, description="Cap on the deadline a caller may ask for (seconds)."
    )
    max_in_flight_per_caller: int = Field(
        4, ge=1, le=1024, description="Requests one caller may have queued or running (more: 429)."
    )
    max_queue: int = Field(32, ge=1, le=4096, description="Requests queued in all (more: 503, lowest stake first).")
    nonce_db: Path | None = Field(
        None, description="SQLite replay store shared by the miner's workers (default: in the miner's data folder)."
    )
    # text3d.miner.connections: checked before any authentication (docs/miner-security.md)
    max_connections: int = Field(4096, ge=16, le=65536, description="Open connections in all (at the cap, the "
                                 "connection waiting longest on its client is closed to make room).")
    max_connections_per_ip: int = Field(
        32, ge=1, le=4096, description="Open connections per source: an IPv4 address, an IPv6 /64 (more: closed at once)."
    )
    header_timeout_s: float = Field(10.0, gt=0.0, le=120.0, description="A request's headers must arrive within this.")
    body_timeout_s: float = Field(10.0, gt=0.0, le=120.0, description="A request's body must arrive within this.")

    def connection_limits(self):
        """The ``text3d.miner.connections.ConnectionLimits`` of these settings."""
        from text3d.miner.connections import ConnectionLimits

        return ConnectionLimits(self.max_connections, min(self.max_connections_per_ip, self.max_connections),
                                self.header_timeout_s, self.body_timeout_s)


class ValidatorSettings(Section):
    sample_size: int = Field(16, ge=1, le=1024, description="Miners queried per step.")
    timeout_s: float = Field(12.0, gt=0.0, le=MAX_TIMEOUT_S, description="Deadline for a miner's last byte.")
    connect_timeout_s: float = Field(3.0, gt=0.0, le=60.0, description="TCP connect timeout per miner.")
    max_concurrency: int = Field(
        16, ge=1, le=1024, description="Miners read at once; memory per step <= this x the answer cap."
    )
    step_interval_s: float = Field(30.0, ge=0.0, description="Seconds from one step's start to the next.")
    max_steps: int = Field(0, ge=0, description="Stop after this many steps (0: run forever).")
    alpha: float = Field(0.1, gt=0.0, le=1.0, description="Moving-average factor of the scores.")
    state_path: Path | None = Field(None, description="State file (default: in the validator's data folder).")
    reports_dir: Path | None = Field(
        None, description="Step reports folder, HTML + JSON (default: reports/ in the validator's data folder)."
    )
    reports_max_mb: float = Field(
        500.0, ge=0.0, description="Cap on the reports folder in MB, also kept within the free disk space (0: no reports)."
    )
    prompts: Literal["mixed", "composed", "shipped"] = Field(
        "mixed", description="Prompt source: composed from word lists, mixed with the shipped list, or shipped only."
    )
    prompts_llm_url: str | None = Field(
        None, description="OpenAI-compatible server writing fresh prompts (the composed source is the fallback)."
    )
    canary_every_steps: int = Field(
        1, ge=0, le=1000, description="Score the canary every N steps (0: never); a failed canary voids the step."
    )
    copycat_answers_per_miner: int = Field(
        8, ge=1, le=64,
        description="Answers of each miner remembered (with the state) to catch one object sent for many prompts.",
    )
    # organic work (text3d.validator.organic): jobs from a gateway, beside the synthetic steps
    gateway_url: str | None = Field(
        None, json_schema_extra=_flag("--gateway.url"),
        description="Gateway to take organic jobs from, http(s)://HOST:PORT (default: synthetic steps only).",
    )
    gateway_miners: int = Field(
        4, ge=1, le=64, json_schema_extra=_flag("--gateway.miners"),
        description="Miners queried per organic job; one is always drawn from the top miners.",
    )
    gateway_top_miners: int = Field(
        10, ge=1, le=1024, json_schema_extra=_flag("--gateway.top_miners"),
        description="The top miners by moving average that the always-included one is drawn from.",
    )
    gateway_wait_s: float = Field(
        30.0, ge=0.0, le=MAX_TIMEOUT_S, json_schema_extra=_flag("--gateway.wait_s"),
        description="Seconds an organic job waits for other answers after the first valid one.",
    )
    gateway_jobs: int = Field(
        2, ge=1, le=64, json_schema_extra=_flag("--gateway.jobs"), description="Organic jobs worked on at once."
    )
    gateway_poll_s: float = Field(
        5.0, ge=0.5, le=30.0, json_schema_extra=_flag("--gateway.poll_s"),
        description="Seconds one claim waits at the gateway for a job to arrive (long poll).",
    )
    gateway_count_toward_weights: bool = Field(
        False, json_schema_extra=_flag("--gateway.count_toward_weights"),
        description="Fold organic scores into the miners' averages (off: callers choose organic prompts).",
    )

    @field_validator("gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "none"):
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError("must be http://HOST:PORT or https://HOST[/PATH]")
        return value.strip().rstrip("/")


class GatewaySettings(Section):
    """``text3d gateway``: the organic API with keys and quotas, its store, and its page; validators are its workers."""

    ip: str = Field("127.0.0.1", description="Address the gateway binds (put a TLS reverse proxy in front of it).")
    port: int = Field(8095, ge=1, le=65535, description="Port the gateway binds.")
    store: str = Field(
        "", description="SQLite file, or a postgresql:// URL shared by several gateways (empty: gateway.sqlite3 "
        "in the gateway's data folder).",
    )
    anonymous_per_day: int = Field(0, ge=0, le=10**6, description="Jobs a day per address without a key (0: keys only).")
    anonymous_per_minute: int = Field(2, ge=1, le=10**4, description="Jobs a minute per address without a key.")
    anonymous_concurrency: int = Field(1, ge=1, le=1024, description="Jobs at once per address without a key.")
    key_per_minute: int = Field(10, ge=1, le=10**4, description="A new key's jobs a minute (keys create).")
    key_per_day: int = Field(500, ge=1, le=10**7, description="A new key's jobs a day (keys create).")
    key_concurrency: int = Field(4, ge=1, le=1024, description="A new key's jobs queued or running at once (keys create).")
    max_queued: int = Field(1000, ge=1, le=10**6, description="Jobs waiting in all; more are refused with 503.")
    max_prompt_chars: int = Field(MAX_PROMPT_CHARS, ge=1, le=MAX_PROMPT_CHARS, description="Longest prompt accepted.")
    blocklist: Path | None = Field(None, description="File of refused terms, one a line.")
    lease_s: float = Field(300.0, ge=1.0, le=86400.0, description="Seconds a worker may hold a job before it is handed on.")
    max_attempts: int = Field(3, ge=1, le=100, description="Workers a job is handed to before it fails.")
    worker_max_jobs: int = Field(8, ge=1, le=1024, description="Jobs one worker may hold at once.")
    job_timeout_s: float = Field(1800.0, ge=1.0, le=7 * 86400.0, description="Seconds a job may wait for a worker.")
    results_max_mb: float = Field(2048.0, ge=1.0, description="Cap on stored results; the oldest are pruned beyond it.")
    results_max_age_h: float = Field(168.0, gt=0.0, description="Hours a result is kept.")
    min_free_mb: float = Field(256.0, ge=0.0, description="New jobs are refused while the store's disk has less free.")
    worker_min_stake: float = Field(0.0, ge=0.0, description="Stake a worker's hotkey needs besides its validator permit.")
    metagraph_ttl_s: float = Field(120.0, ge=1.0, le=86400.0, description="Seconds the workers' permits are cached.")
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Proxies trusted for X-Forwarded-For/-Proto, comma-separated (* for any).",
    )
    metrics_allow: str = Field("127.0.0.1,::1", description="Client addresses that may read /metrics (* for any).")


class AutoUpdateSettings(Section):
    """``text3d.ops.autoupdate``: pull, reinstall and restart when the upstream's spec_version changes."""

    enabled: bool = Field(
        False, json_schema_extra=_flag("--autoupdate"),
        description="Pull, reinstall and restart when the checkout's upstream has a new spec_version.",
    )
    interval_s: float = Field(900.0, ge=30.0, le=86400.0, description="Seconds between update checks.")


class CaptionerSettings(CaptionerConfig):
    """``CaptionerConfig`` with ``base_url`` as the validator's ``--captioner URL|none`` flag."""

    base_url: str = Field(
        "none",
        json_schema_extra=_flag("--captioner"),
        description="OpenAI-compatible vision server (e.g. http://127.0.0.1:8080), or none (CLIP only).",
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        if value.strip().lower() == "none":
            return "none"
        return CaptionerConfig._normalise_base_url(value)

    @property
    def enabled(self) -> bool:
        return self.base_url != "none"

    def to_config(self) -> CaptionerConfig | None:
        if not self.enabled:
            return None
        return CaptionerConfig(**self.model_dump())


_config_file: ContextVar[Path | None] = ContextVar("text3d_config_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The ``--config`` file (TOML or JSON), below flags and environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc}).") from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({exc}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {path}: the file must hold a table of settings.")
        return data


class Settings(BaseSettings):
    """Everything a miner or a validator can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    netuid: int = Field(1, ge=0, le=65535, description="Subnet uid (default: 1 on devnet and local; required on "
                                                       "finney, test and any other chain).")
    models: Literal["real", "tiny"] = Field("real", description="real: production weights; tiny: offline test models.")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto | cpu | cuda[:N].")

    wallet: WalletSettings = WalletSettings()
    subtensor: SubtensorSettings = SubtensorSettings()
    devnet: DevnetSettings = DevnetSettings()
    axon: AxonSettings = AxonSettings()
    logging: LoggingSettings = LoggingSettings()
    generation: GenerationSettings = GenerationSettings()
    server: ServerSettings = ServerSettings()
    miner: MinerSettings = MinerSettings()
    validator: ValidatorSettings = ValidatorSettings()
    gateway: GatewaySettings = GatewaySettings()
    reward: RewardConfig = RewardConfig()
    incentive: IncentiveCurve = IncentiveCurve()
    captioner: CaptionerSettings = CaptionerSettings()
    autoupdate: AutoUpdateSettings = AutoUpdateSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)

    @model_validator(mode="after")
    def _devnet_needs_db(self) -> "Settings":
        if self.subtensor.network == "devnet" and self.devnet.db is None:
            raise ValueError("--subtensor.network devnet needs --devnet.db PATH (create one with `text3d devnet init`)")
        return self

    # -- derived values ---------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """True on the devnet or a local subtensor: never look up an external address there."""
        endpoint = self.subtensor.chain_endpoint or self.subtensor.network
        return self.subtensor.network in LOCAL_NETWORKS or "127.0.0.1" in endpoint or "localhost" in endpoint

    def resolved_device(self) -> str:
        """``--device`` resolved and checked; ``ConfigError`` naming the flag when torch cannot use it."""
        from text3d.common.device import resolve_device

        return resolve_device(self.device)

    def data_dir(self) -> Path:
        """Per-hotkey folder for state, replay store and reports (next to bittensor's own)."""
        wallet = self.wallet
        return (
            Path(os.path.expanduser(wallet.path)).parent
            / "text3d"
            / wallet.name
            / wallet.hotkey
            / f"netuid{self.netuid}"
        )

    def gateway_store(self) -> str:
        """``--gateway.store``, else ``gateway.sqlite3`` in the gateway's folder beside the neurons' data."""
        if self.gateway.store:
            return self.gateway.store
        root = Path(os.path.expanduser(self.wallet.path)).parent / "text3d" / "gateway" / f"netuid{self.netuid}"
        return str(root / "gateway.sqlite3")

    def announced_ip(self) -> str | None:
        if self.axon.external_ip:
            return self.axon.external_ip
        return "127.0.0.1" if self.is_local else None


ROLE_SECTIONS: dict[str, tuple[str, ...]] = {
    "miner": ("wallet", "subtensor", "devnet", "axon", "logging", "generation", "miner", "autoupdate", "metrics"),
    "validator": ("wallet", "subtensor", "devnet", "logging", "validator", "reward", "incentive", "captioner", "autoupdate",
                  "metrics"),
    "generation-server": ("logging", "generation", "server"),
    "gateway": ("subtensor", "devnet", "logging", "gateway"),
}
_TOP_LEVEL = ("netuid", "models", "device")
_TOP_LEVEL_OF: dict[str, tuple[str, ...]] = {"gateway": ("netuid",)}  # the gateway runs no model
_HIDDEN = {("captioner", "api_key"), ("captioner", "prompt_template"), ("captioner", "include_prompt"),
           ("generation", "token"), ("server", "token")}  # secrets: from the environment or the --config file
_PINNED_NOTE = "pinned on finney and test"
_GROUP_NOTES = {
    "reward": f'How validators score. A flag "{_PINNED_NOTE}" is part of the scoring protocol: a validator there '
              "refuses any other value.",
    "captioner": f'The vision server that captions the views. A flag "{_PINNED_NOTE}" is part of the scoring protocol.',
}


# -- flags ---------------------------------------------------------------------------------


def flag_of(section: str | None, name: str) -> str:
    """The command-line flag of a field (``--netuid``, ``--miner.max_batch_size``, ``--captioner``)."""
    if section is None:
        return f"--{name}"
    field = Settings.model_fields[section].annotation.model_fields[name]  # type: ignore[union-attr]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("flag") or f"--{section}.{name}")


def _metavar(field: FieldInfo) -> str | None:
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "{" + ",".join(str(a) for a in get_args(annotation)) + "}"
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    kind = args[0]
    return {int: "N", float: "X", Path: "PATH", str: "TEXT"}.get(kind, "VALUE")  # type: ignore[call-overload]


def _is_bool(field: FieldInfo) -> bool:
    return field.annotation is bool


def _is_scalar(field: FieldInfo) -> bool:
    """Fields a flag can carry; lists, tables and nested models are set in --config or the environment."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return True
    args = [a for a in get_args(annotation) if a is not type(None)] if get_args(annotation) else [annotation]
    return all(a in (bool, int, float, str, Path) for a in args)


def is_pinned(field: FieldInfo) -> bool:
    """True for a field whose value the scoring protocol fixes on finney and test."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return bool(extra.get("pinned"))


def help_of(field: FieldInfo) -> str:
    """A flag's help: the field's description, its default unless the description says it, and
    whether the scoring protocol pins it. One sentence, no markup."""
    description = (field.description or "").rstrip(".")
    default = field.default
    if "(default:" not in description and default is not None and default is not PydanticUndefined:
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        description += f" (default: {shown})"
    if is_pinned(field):
        description += f"; {_PINNED_NOTE}"
    return description + "."


def _add_field(parser: argparse.ArgumentParser | Any, flag: str, dest: str, field: FieldInfo) -> None:
    help_text = help_of(field)
    if _is_bool(field):
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
    else:
        parser.add_argument(flag, dest=dest, metavar=_metavar(field), default=argparse.SUPPRESS, help=help_text)


def build_parser(role: Role, prog: str | None = None) -> argparse.ArgumentParser:
    """Every flag of the ``role`` neuron, generated from the tree."""
    parser = CommandParser(
        prog=prog or f"text3d {role}",
        description=f"text3d {role} neuron. Each flag is also TEXT3D_<SECTION>__<NAME> in the environment "
        "or a key of the --config file.",
    )
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help="TOML or JSON settings file.")
    for name in _TOP_LEVEL_OF.get(role, _TOP_LEVEL):
        _add_field(parser, flag_of(None, name), name, Settings.model_fields[name])
    for section in ROLE_SECTIONS[role]:
        model = Settings.model_fields[section].annotation
        group = parser.add_argument_group(section, _GROUP_NOTES.get(section))
        for name, field in model.model_fields.items():  # type: ignore[union-attr]
            if (section, name) in _HIDDEN or not _is_scalar(field):
                continue
            _add_field(group, flag_of(section, name), f"{section}.{name}", field)  # type: ignore[arg-type]
    return parser


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _sentence(exc: ValidationError, given: dict[str, Any]) -> str:
    """One sentence for the first problem, naming the flag that fixes it."""
    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return message.rstrip(".") + "."
    section, name = (None, loc[0]) if len(loc) == 1 else (loc[0], loc[1])
    try:
        flag = flag_of(section, name)
    except (KeyError, AttributeError):
        flag = "--" + ".".join(loc)
    if error.get("type") == "extra_forbidden":
        return f"{flag} is not a setting (check the --config file or TEXT3D_ variables)."
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" {value}"
    return f"{flag}{shown}: {message[0].lower() + message[1:] if message else 'invalid'}."


def check_netuid_given(settings: Settings) -> None:
    """On finney, test or any chain that is not this machine's, the subnet must be named: a
    ``--netuid`` silently defaulting to 1 there registers, serves and sets weights on someone
    else's subnet. Given by flag, ``TEXT3D_NETUID`` or the ``--config`` file all count.

    Raises ``ConfigError`` (exit 78: a setting to change) when it was not given.
    """
    if settings.is_local or "netuid" in settings.model_fields_set:
        return
    network = settings.subtensor.chain_endpoint or settings.subtensor.network
    where = network if network in PINNED_NETWORKS else f"the chain at {network}"
    raise ConfigError(f"--netuid is required on {where}: give the subnet's uid (e.g. --netuid 42); only devnet and "
                      "local networks default to 1")


def load_settings(role: Role, argv: Sequence[str] | None = None, *, prog: str | None = None,
                  require_netuid: bool = False) -> Settings:
    """Parse ``argv`` (default ``sys.argv[1:]``) with the role's flags into the one tree.

    Unknown or malformed flags exit with status 2 (argparse's usage error, the command's short
    usage and a "did you mean"); values that parse but break a rule raise ``ConfigError`` with
    one sentence naming the flag. ``require_netuid``: the caller will reach a chain (the neurons,
    ``text3d doctor --role``), so ``check_netuid_given`` applies.
    """
    namespace = vars(build_parser(role, prog).parse_args(argv))
    config_file = namespace.pop("config", None)
    token = _config_file.set(Path(config_file).expanduser() if config_file else None)
    try:
        settings = Settings(**_nest(namespace))
        if require_netuid:
            check_netuid_given(settings)
        return settings
    except ValidationError as exc:
        raise ConfigError(_sentence(exc, namespace)) from None
    except SettingsError as exc:  # e.g. TEXT3D_MINER=8: a section, list or table in the environment is JSON
        found = re.search(r'field "(\w+)"', str(exc))
        var = f"TEXT3D_{found.group(1).upper()}" if found else "TEXT3D_"
        raise ConfigError(
            f"{var} or a {var}__* variable does not parse: sections, lists and tables set in the environment are "
            "written as JSON."
        ) from None
    finally:
        _config_file.reset(token)
