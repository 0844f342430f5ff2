"""A local subnet in a folder: devnet database, password-less wallets, neuron command lines.

``LocalSubnet.create(workdir, ...)`` lays out::

    workdir/
        chain.db          the devnet (SQLite)
        wallets/          one coldkey + "default" hotkey per neuron name
        logs/             one log per child process
        validator/        state.json and reports/ of the validator
        gateway/          the organic gateway's store (gateway.sqlite3)

and registers every wallet; ``miner_argv`` / ``validator_argv`` / ``gateway_argv`` build the command lines
``text3d demo`` and the end-to-end test run (``python -m neurons.miner ...``), with the
fast settings for ``--models tiny``.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from text3d.chain.devnet import DevnetChain

__all__ = ["TinySettings", "LocalSubnet"]


@dataclass(frozen=True)
class TinySettings:
    """Neuron flags that keep a tiny-model run fast on 2 CPU cores."""

    generation_steps: int = 2
    generation_guidance: float = 3.0
    grid_size: int = 16
    views: int = 2
    resolution: int = 64
    timeout_s: float = 60.0


@dataclass
class LocalSubnet:
    """A devnet plus wallets in ``workdir``; ``uids`` maps neuron name -> uid."""

    workdir: Path
    chain: DevnetChain
    uids: dict[str, int] = field(default_factory=dict)
    netuid: int = 1

    @property
    def wallets_dir(self) -> Path:
        return self.workdir / "wallets"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def validator_dir(self) -> Path:
        return self.workdir / "validator"

    @property
    def state_path(self) -> Path:
        return self.validator_dir / "state.json"

    @property
    def reports_dir(self) -> Path:
        return self.validator_dir / "reports"

    @property
    def gateway_store(self) -> Path:
        return self.workdir / "gateway" / "gateway.sqlite3"

    @classmethod
    def create(
        cls,
        workdir: str | Path,
        *,
        validators: Sequence[str] = ("validator",),
        miners: Sequence[str] = ("miner1", "miner2"),
        netuid: int = 1,
        validator_stake_tao: float = 1000.0,
        block_time_s: float = 1.0,
        weights_rate_limit: int = 2,
    ) -> "LocalSubnet":
        """Create the devnet (replacing any old one in ``workdir``), wallets, registrations, stake."""
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        chain = DevnetChain.create(
            workdir / "chain.db",
            netuid,
            overwrite=True,
            block_time_s=block_time_s,
            weights_rate_limit=weights_rate_limit,
            min_validator_stake_tao=validator_stake_tao / 2,
        )
        subnet = cls(workdir, chain, netuid=netuid)
        for name in list(validators) + list(miners):
            wallet = subnet.wallet(name, create=True)
            subnet.uids[name] = chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
        for name in validators:
            chain.add_stake(subnet.wallet(name).hotkey.ss58_address, validator_stake_tao)
        return subnet

    def wallet(self, name: str, *, create: bool = False):
        """The ``bittensor.Wallet`` named ``name`` (hotkey "default"), created without passwords if asked."""
        import bittensor as bt

        from text3d.ops.registration import ensure_wallet

        if create:
            return ensure_wallet(name, "default", self.wallets_dir)
        return bt.Wallet(name=name, hotkey="default", path=str(self.wallets_dir))

    def hotkey_of(self, name: str) -> str:
        return self.wallet(name).hotkey.ss58_address

    # -- command lines ------------------------------------------------------------

    def _common(self, name: str, models: str, device: str, debug: bool) -> list[str]:
        argv = [
            "--netuid", str(self.netuid),
            "--subtensor.network", "devnet",
            "--devnet.db", str(self.chain.db_path),
            "--wallet.name", name,
            "--wallet.hotkey", "default",
            "--wallet.path", str(self.wallets_dir),
            "--models", models,
            "--device", device,
        ]
        return argv + (["--logging.debug"] if debug else [])

    def miner_argv(
        self,
        name: str,
        port: int,
        *,
        models: str = "tiny",
        device: str = "cpu",
        tiny: TinySettings = TinySettings(),
        debug: bool = False,
        extra: Sequence[str] = (),
    ) -> list[str]:
        argv = [sys.executable, "-m", "neurons.miner", *self._common(name, models, device, debug)]
        argv += ["--axon.ip", "127.0.0.1", "--axon.port", str(port), "--axon.external_ip", "127.0.0.1"]
        if models == "tiny":
            argv += [
                "--generation.steps", str(tiny.generation_steps),
                "--generation.guidance", str(tiny.generation_guidance),
                "--generation.grid_size", str(tiny.grid_size),
            ]
        return argv + list(extra)

    def validator_argv(
        self,
        name: str = "validator",
        *,
        captioner: str = "none",
        max_steps: int = 3,
        step_interval_s: float = 1.0,
        sample_size: int | None = None,
        models: str = "tiny",
        device: str = "cpu",
        tiny: TinySettings = TinySettings(),
        debug: bool = False,
        extra: Sequence[str] = (),
    ) -> list[str]:
        others = len(self.uids) - 1
        argv = [sys.executable, "-m", "neurons.validator", *self._common(name, models, device, debug)]
        argv += [
            "--captioner", captioner,
            "--validator.max_steps", str(max_steps),
            "--validator.step_interval_s", str(step_interval_s),
            "--validator.sample_size", str(sample_size or max(1, others)),
            "--validator.state_path", str(self.state_path),
            "--validator.reports_dir", str(self.reports_dir),
        ]
        if models == "tiny":
            argv += [
                "--validator.timeout_s", str(tiny.timeout_s),
                "--reward.n_views", str(tiny.views),
                "--reward.resolution_px", str(tiny.resolution),
            ]
        return argv + list(extra)

    def gateway_argv(self, port: int, *, store: Path | None = None, debug: bool = False,
                     extra: Sequence[str] = ()) -> list[str]:
        """``text3d gateway`` on 127.0.0.1:``port`` reading this devnet's permits (``store``: the demo's by default)."""
        argv = [sys.executable, "-m", "text3d.cli.main", "gateway", "--netuid", str(self.netuid),
                "--subtensor.network", "devnet", "--devnet.db", str(self.chain.db_path),
                "--gateway.ip", "127.0.0.1", "--gateway.port", str(port), "--gateway.store", str(store or self.gateway_store)]
        return argv + (["--logging.debug"] if debug else []) + list(extra)

    # -- observations ---------------------------------------------------------------

    def serving(self, names: Sequence[str]) -> bool:
        """True when every named neuron has announced an axon on the chain."""
        ports = {n.uid: n.axon_port for n in self.chain.neurons()}
        return all(ports.get(self.uids[name], 0) > 0 for name in names)

    def saved_state(self) -> dict:
        """The validator's saved state (``text3d.validator.state`` JSON); a fresh one before the first save."""
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):  # not written yet (saves are atomic: never half-written)
            return {"step": 0, "averages": {}, "last_weight_block": None}

    def last_weights_block(self, name: str = "validator") -> int:
        """Block of the named validator's last weights on chain (0 if never)."""
        uid = self.uids[name]
        return next((n.last_update for n in self.chain.neurons() if n.uid == uid), 0)

    def weights_after_evidence(self, name: str = "validator") -> Callable[[], bool]:
        """A condition that turns true once the validator has set weights on chain.

        The validator sets no weights until some miner scored above 0, so any weights
        on chain rest on evidence.
        """

        def condition() -> bool:
            return self.last_weights_block(name) > 0

        return condition

    def weights_of(self, name: str = "validator") -> dict[int, float]:
        """The weights the named validator last set on chain (empty if none yet)."""
        return self.chain.weights().get(self.uids[name], {})
