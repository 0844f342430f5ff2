"""A local chain in one SQLite file: the subnet's rules without a blockchain.

Miners and validators on one machine (the demo, the end-to-end tests, people trying
the subnet by hand) share one database file. Every call opens its own short-lived
connection, so the adapter is safe across threads and processes: the file is in WAL
mode, writes run inside ``BEGIN IMMEDIATE`` and a busy timeout lets writers queue
instead of failing.

Rules it enforces, modelled on subtensor:

- ``register`` hands out uids 0, 1, 2, ...; when the subnet holds ``max_uids`` neurons,
  the lowest-stake, oldest-registered neuron without a validator permit loses its uid
  to the new hotkey (its stake, axon and weights are cleared).
- Validator permits go to the ``max_validators`` largest positive stakes at or above
  ``min_validator_stake_tao`` (ties: lower uid first).
- ``set_weights`` is refused for unregistered hotkeys, hotkeys without a permit, a
  ``version_key`` below the subnet's ``weights_version``, within ``weights_rate_limit``
  blocks of the hotkey's previous weights, and for weights naming unregistered uids.
  Accepted weights go through ``weight_rules.conform_weights`` with the subnet's
  ``max_weight_limit`` and ``min_allowed_weights`` (the rules bittensor 11's
  ``SetWeights`` applies), and the resulting u16 values are stored: both chains hold
  the same weights for the same input. ``weights()`` reads each row normalised to sum 1.
- The block number is ``floor((now - genesis) / block_time_s)``; ``clock`` is injectable.
- Incentive and emission are a model of Yuma's, without its clipping: a miner's incentive is
  the stake-weighted mean of the permitted validators' (normalised) weights on it, normalised
  over the subnet; its emission per tempo is that share of the miners' 41 % of
  ``DEVNET_EMISSION_PER_BLOCK`` over ``tempo`` blocks. Enough for ``text3d miner status`` to
  show what a miner would see on a real chain; never a figure of a real chain.

Every ``sqlite3`` error surfaces as ``ChainUnavailable``. Databases written before a
hyperparameter existed read it at its default.
"""

import math
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterator, Sequence

from text3d.chain.base import Metagraph, NeuronInfo, check_axon_address
from text3d.chain.weight_rules import WeightsRefused, conform_weights
from text3d.protocol.errors import ChainUnavailable, HotkeyNotRegistered
from text3d.protocol.version import SPEC_VERSION

__all__ = ["DevnetParams", "DevnetChain", "DEVNET_EMISSION_PER_BLOCK", "MINER_SHARE"]

DEVNET_EMISSION_PER_BLOCK = 1.0  # the devnet's nominal alpha per block (a model, not a chain's figure)
MINER_SHARE = 0.41  # the miners' share of a subnet's emission on subtensor (validators 41 %, owner 18 %)

Clock = Callable[[], float]

_SCHEMA = """
CREATE TABLE subnet (
    netuid INTEGER NOT NULL, tempo INTEGER NOT NULL, block_time_s REAL NOT NULL,
    weights_rate_limit INTEGER NOT NULL, max_uids INTEGER NOT NULL,
    max_validators INTEGER NOT NULL, min_validator_stake_tao REAL NOT NULL,
    weights_version INTEGER NOT NULL, max_weight_limit REAL NOT NULL DEFAULT 1.0,
    min_allowed_weights INTEGER NOT NULL DEFAULT 1, genesis_unix_s REAL NOT NULL
);
CREATE TABLE neurons (
    uid INTEGER PRIMARY KEY, hotkey TEXT NOT NULL UNIQUE, coldkey TEXT NOT NULL,
    stake_tao REAL NOT NULL DEFAULT 0, registered_block INTEGER NOT NULL,
    registered_seq INTEGER NOT NULL,
    axon_ip TEXT NOT NULL DEFAULT '0.0.0.0', axon_port INTEGER NOT NULL DEFAULT 0,
    axon_ip_type INTEGER NOT NULL DEFAULT 4, axon_protocol INTEGER NOT NULL DEFAULT 4,
    axon_version INTEGER NOT NULL DEFAULT 0, last_update INTEGER
);
CREATE TABLE weights (
    validator_uid INTEGER NOT NULL, miner_uid INTEGER NOT NULL, weight INTEGER NOT NULL,
    PRIMARY KEY (validator_uid, miner_uid)
);
"""


@dataclass(frozen=True)
class DevnetParams:
    """Subnet hyperparameters of a devnet. Blocks are ``block_time_s`` seconds long."""

    netuid: int = 1
    tempo: int = 360
    block_time_s: float = 12.0
    weights_rate_limit: int = 100  # blocks between two weight settings of one hotkey
    max_uids: int = 256
    max_validators: int = 64
    min_validator_stake_tao: float = 0.0
    weights_version: int = 0  # lowest version_key accepted by set_weights
    max_weight_limit: float = 1.0  # largest share of a weights row one uid may get, in (0, 1]
    min_allowed_weights: int = 1  # fewest non-zero weights one setting may carry

    def __post_init__(self) -> None:
        if self.netuid < 0:
            raise ValueError(f"netuid must be >= 0, got {self.netuid}")
        if not self.block_time_s > 0:
            raise ValueError(f"block_time_s must be > 0, got {self.block_time_s}")
        if self.weights_rate_limit < 0 or self.tempo < 1:
            raise ValueError("weights_rate_limit must be >= 0 and tempo >= 1")
        if self.max_uids < 1 or self.max_validators < 0:
            raise ValueError("max_uids must be >= 1 and max_validators >= 0")
        if not 0.0 < self.max_weight_limit <= 1.0:
            raise ValueError(f"max_weight_limit must be a fraction in (0, 1], got {self.max_weight_limit}")
        if self.min_allowed_weights < 0:
            raise ValueError(f"min_allowed_weights must be >= 0, got {self.min_allowed_weights}")


class DevnetChain:
    """The ``ChainAdapter`` over a devnet database. Build with ``create`` or ``open``."""

    def __init__(self, db_path: str | Path, netuid: int, *, clock: Clock = time.time, busy_timeout_s: float = 30.0):
        self.db_path = Path(db_path)
        self.netuid = netuid
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own connection."""

    # -- construction -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        db_path: str | Path,
        netuid: int = 1,
        *,
        clock: Clock = time.time,
        overwrite: bool = False,
        **params: object,
    ) -> "DevnetChain":
        """Create a fresh devnet database; ``params`` are ``DevnetParams`` fields.

        Raises ``FileExistsError`` when the file exists and ``overwrite`` is False.
        """
        hyper = DevnetParams(netuid=netuid, **params)  # type: ignore[arg-type]
        path = Path(db_path)
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"devnet database {path} already exists")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        chain = cls(path, netuid, clock=clock)
        conn = chain._connect(create=True)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: later connections inherit it
            conn.executescript(_SCHEMA)
            columns = [f.name for f in fields(DevnetParams)] + ["genesis_unix_s"]
            values = list(asdict(hyper).values()) + [clock()]
            conn.execute(f"INSERT INTO subnet ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
        except sqlite3.Error as exc:
            raise ChainUnavailable(f"cannot create devnet database {path}: {exc}") from exc
        finally:
            conn.close()
        return chain

    @classmethod
    def open(cls, db_path: str | Path, *, clock: Clock = time.time) -> "DevnetChain":
        """Open an existing devnet database; raises ``ChainUnavailable`` if it is missing or not a devnet."""
        chain = cls(db_path, netuid=-1, clock=clock)
        chain.netuid = chain.params().netuid
        return chain

    # -- reads --------------------------------------------------------------------

    def params(self) -> DevnetParams:
        """The subnet's hyperparameters as stored in the database."""
        with self._read() as conn:
            return self._params(conn)

    def block(self) -> int:
        with self._read() as conn:
            return self._block(conn)

    def weights_rate_limit(self) -> int:
        return self.params().weights_rate_limit

    def min_allowed_weights(self) -> int:
        return self.params().min_allowed_weights

    def max_weight_limit(self) -> float:
        return self.params().max_weight_limit

    def neurons(self) -> list[NeuronInfo]:
        with self._read() as conn:
            return self._neurons(conn)

    def uid_of(self, hotkey: str) -> int | None:
        with self._read() as conn:
            row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
        return None if row is None else int(row["uid"])

    def weights(self) -> dict[int, dict[int, float]]:
        """validator uid -> {miner uid: weight}: the stored u16 values, each row normalised to sum 1."""
        with self._read() as conn:
            rows = conn.execute("SELECT validator_uid, miner_uid, weight FROM weights ORDER BY 1, 2").fetchall()
        stored: dict[int, dict[int, float]] = {}
        for validator_uid, miner_uid, value in rows:
            stored.setdefault(int(validator_uid), {})[int(miner_uid)] = float(value)
        table: dict[int, dict[int, float]] = {}
        for validator_uid, row in stored.items():
            total = sum(row.values())
            if total > 0:
                table[validator_uid] = {uid: value / total for uid, value in row.items()}
        return table

    def metagraph(self) -> Metagraph:
        """The subnet's neurons and the current block, read in one transaction."""
        with self._read() as conn:
            return Metagraph(netuid=self.netuid, block=self._block(conn), neurons=tuple(self._neurons(conn)))

    # -- writes -------------------------------------------------------------------

    def register(self, hotkey_ss58: str, coldkey_ss58: str) -> int:
        """Register a hotkey and return its uid (the existing uid if already registered).

        When the subnet is full, the lowest-stake, oldest-registered neuron without a
        validator permit is replaced. Raises ``ChainUnavailable`` if every uid holds a permit.
        """
        with self._write() as conn:
            row = conn.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey_ss58,)).fetchone()
            if row is not None:
                return int(row["uid"])
            hyper = self._params(conn)
            count = conn.execute("SELECT COUNT(*) FROM neurons").fetchone()[0]
            if count < hyper.max_uids:
                uid = count  # uids are dense: 0 .. count-1 are taken
            else:
                permitted = self._permits(conn, hyper)
                candidates = [
                    r for r in conn.execute("SELECT uid FROM neurons ORDER BY stake_tao, registered_seq, uid")
                    if r["uid"] not in permitted
                ]
                if not candidates:
                    raise ChainUnavailable(f"netuid {self.netuid} is full and every uid holds a validator permit")
                uid = int(candidates[0]["uid"])
            self._put_neuron(conn, uid, hotkey_ss58, coldkey_ss58)
            return uid

    def replace_hotkey(self, uid: int, hotkey_ss58: str, coldkey_ss58: str) -> None:
        """Admin: give ``uid`` to a new hotkey, as deregistration does (stake, axon, weights reset)."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM neurons WHERE uid = ?", (uid,)).fetchone() is None:
                raise ValueError(f"uid {uid} is not registered on netuid {self.netuid}")
            if conn.execute("SELECT 1 FROM neurons WHERE hotkey = ? AND uid != ?", (hotkey_ss58, uid)).fetchone():
                raise ValueError(f"hotkey {hotkey_ss58} already holds another uid")
            self._put_neuron(conn, uid, hotkey_ss58, coldkey_ss58)

    def add_stake(self, hotkey_ss58: str, amount_tao: float) -> float:
        """Add (or with a negative amount, remove) stake; returns the hotkey's new stake in TAO."""
        if not math.isfinite(amount_tao):
            raise ValueError(f"stake amount must be finite, got {amount_tao}")
        with self._write() as conn:
            row = conn.execute("SELECT stake_tao FROM neurons WHERE hotkey = ?", (hotkey_ss58,)).fetchone()
            if row is None:
                raise HotkeyNotRegistered(f"hotkey {hotkey_ss58} is not registered on netuid {self.netuid}")
            stake_tao = max(0.0, float(row["stake_tao"]) + amount_tao)
            conn.execute("UPDATE neurons SET stake_tao = ? WHERE hotkey = ?", (stake_tao, hotkey_ss58))
            return stake_tao

    def serve_axon(self, wallet, ip: str, port: int) -> None:
        """Record the wallet hotkey's axon.

        Raises ``HotkeyNotRegistered`` for unknown hotkeys and ``ConfigError`` for an
        address that is not a numeric IP or a port outside 1..65535.
        """
        check_axon_address(ip, port)
        hotkey = wallet.hotkey.ss58_address
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE neurons SET axon_ip = ?, axon_port = ?, axon_ip_type = ?, axon_protocol = 4, axon_version = ?"
                " WHERE hotkey = ?",
                (ip, port, 6 if ":" in ip else 4, SPEC_VERSION, hotkey),
            ).rowcount
        if not updated:
            raise HotkeyNotRegistered(f"hotkey {hotkey} is not registered on netuid {self.netuid}")

    def set_weights(self, wallet, uids: Sequence[int], weights: Sequence[float], version_key: int) -> tuple[bool, str]:
        """Store the wallet's weights as the chain would; ``(False, reason)`` when it refuses them.

        The checks run in subtensor's order: registration, permit, ``version_key``, rate
        limit, then the weights themselves (``conform_weights``) and their uids. A refusal
        changes nothing, so it does not start the rate limit either.
        """
        hotkey = wallet.hotkey.ss58_address
        with self._write() as conn:
            hyper = self._params(conn)
            row = conn.execute("SELECT uid, last_update FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
            if row is None:
                return False, f"hotkey {hotkey} is not registered on netuid {self.netuid}"
            uid = int(row["uid"])
            if uid not in self._permits(conn, hyper):
                return False, f"uid {uid} has no validator permit"
            if version_key < hyper.weights_version:
                return False, f"version_key {version_key} is below the subnet's weights_version {hyper.weights_version}"
            block = self._block(conn)
            if row["last_update"] is not None and block - row["last_update"] < hyper.weights_rate_limit:
                wait = hyper.weights_rate_limit - (block - row["last_update"])
                return False, f"rate limited: weights set at block {row['last_update']}, retry in {wait} blocks"
            try:
                kept_uids, values = conform_weights(
                    uids,
                    weights,
                    max_weight_limit=hyper.max_weight_limit,
                    min_allowed_weights=hyper.min_allowed_weights,
                    self_uid=uid,
                )
            except WeightsRefused as refusal:
                return False, str(refusal)
            known = {r[0] for r in conn.execute("SELECT uid FROM neurons")}
            unknown = sorted(set(kept_uids) - known)
            if unknown:
                return False, f"uids {unknown} are not registered"
            conn.execute("DELETE FROM weights WHERE validator_uid = ?", (uid,))
            conn.executemany(
                "INSERT INTO weights (validator_uid, miner_uid, weight) VALUES (?, ?, ?)",
                [(uid, miner_uid, value) for miner_uid, value in zip(kept_uids, values)],
            )
            conn.execute("UPDATE neurons SET last_update = ? WHERE uid = ?", (block, uid))
            return True, f"weights set at block {block}"

    # -- internals ----------------------------------------------------------------

    def _put_neuron(self, conn: sqlite3.Connection, uid: int, hotkey: str, coldkey: str) -> None:
        seq = conn.execute("SELECT COALESCE(MAX(registered_seq), -1) + 1 FROM neurons").fetchone()[0]
        conn.execute("DELETE FROM neurons WHERE uid = ?", (uid,))
        conn.execute("DELETE FROM weights WHERE validator_uid = ?", (uid,))
        conn.execute(
            "INSERT INTO neurons (uid, hotkey, coldkey, registered_block, registered_seq) VALUES (?, ?, ?, ?, ?)",
            (uid, hotkey, coldkey, self._block(conn), seq),
        )

    def _params(self, conn: sqlite3.Connection) -> DevnetParams:
        row = conn.execute("SELECT * FROM subnet").fetchone()
        if row is None:
            raise ChainUnavailable(f"devnet database {self.db_path} has no subnet")
        stored = set(row.keys())  # older databases lack the newer hyperparameters
        return DevnetParams(**{f.name: row[f.name] for f in fields(DevnetParams) if f.name in stored})

    def _block(self, conn: sqlite3.Connection) -> int:
        genesis_unix_s, block_time_s = conn.execute("SELECT genesis_unix_s, block_time_s FROM subnet").fetchone()
        return max(0, int((self._clock() - genesis_unix_s) // block_time_s))

    def _permits(self, conn: sqlite3.Connection, hyper: DevnetParams) -> set[int]:
        rows = conn.execute(
            "SELECT uid FROM neurons WHERE stake_tao >= ? AND stake_tao > 0 ORDER BY stake_tao DESC, uid LIMIT ?",
            (hyper.min_validator_stake_tao, hyper.max_validators),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def _neurons(self, conn: sqlite3.Connection) -> list[NeuronInfo]:
        params = self._params(conn)
        permits = self._permits(conn, params)
        rows = conn.execute("SELECT * FROM neurons ORDER BY uid").fetchall()
        incentive = self._incentive(conn, permits, {int(r["uid"]): float(r["stake_tao"]) for r in rows})
        per_tempo = MINER_SHARE * DEVNET_EMISSION_PER_BLOCK * params.tempo
        return [
            NeuronInfo(
                uid=int(r["uid"]),
                hotkey=r["hotkey"],
                coldkey=r["coldkey"],
                stake=float(r["stake_tao"]),
                validator_permit=int(r["uid"]) in permits,
                axon_ip=r["axon_ip"],
                axon_port=int(r["axon_port"]),
                last_update=int(r["last_update"] or 0),
                incentive=incentive.get(int(r["uid"]), 0.0),
                emission=incentive.get(int(r["uid"]), 0.0) * per_tempo,
            )
            for r in rows
        ]

    @staticmethod
    def _incentive(conn: sqlite3.Connection, permits: set[int], stakes: dict[int, float]) -> dict[int, float]:
        """uid -> incentive: the stake-weighted mean of the permitted validators' weight rows, normalised."""
        rows: dict[int, dict[int, float]] = {}
        for validator_uid, miner_uid, value in conn.execute("SELECT validator_uid, miner_uid, weight FROM weights"):
            if int(validator_uid) in permits:
                rows.setdefault(int(validator_uid), {})[int(miner_uid)] = float(value)
        consensus: dict[int, float] = {}
        for validator_uid, row in rows.items():
            total = sum(row.values())
            stake = stakes.get(validator_uid, 0.0)
            if total <= 0 or stake <= 0:
                continue
            for miner_uid, value in row.items():
                consensus[miner_uid] = consensus.get(miner_uid, 0.0) + stake * value / total
        norm = sum(consensus.values())
        return {uid: value / norm for uid, value in consensus.items()} if norm > 0 else {}

    def _connect(self, create: bool = False) -> sqlite3.Connection:
        if not create and not self.db_path.is_file():
            raise ChainUnavailable(
                f"devnet database {self.db_path} does not exist; create it with `text3d devnet init --devnet.db {self.db_path}`"
            )
        try:
            conn = sqlite3.connect(self.db_path, timeout=self._busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise ChainUnavailable(f"cannot open devnet database {self.db_path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN")  # one consistent snapshot for multi-query reads
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ChainUnavailable(f"devnet database {self.db_path} failed: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ChainUnavailable(f"devnet database {self.db_path} failed: {exc}") from exc
        finally:
            conn.close()
