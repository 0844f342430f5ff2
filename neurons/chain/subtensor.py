"""The ``ChainAdapter`` over a real subtensor (finney, test, a local node, any ws:// endpoint).

``bt.Subtensor(...)`` opens a websocket when constructed, so the adapter builds it on
first use and drops it after a failure (the next call reconnects). Every exception the
SDK or the transport raises is translated here, at the boundary, into
``reward.errors.ChainUnavailable``; refusals the chain answers politely (rate limit, no
permit) stay ``(False, message)`` results of ``set_weights``.
"""

from typing import Any, Callable, Sequence, TypeVar

from neurons.chain.base import HotkeyNotRegistered, NeuronInfo
from reward.errors import ChainUnavailable

__all__ = ["SubtensorChain"]

T = TypeVar("T")
AXON_PROTOCOL = 4  # the protocol number subtensor's serve_axon announces


class SubtensorChain:
    """A lazily connected ``bt.Subtensor`` for one subnet.

    ``network`` is what ``bt.Subtensor(network)`` accepts: a name (``finney``, ``test``,
    ``local``) or a ``ws://``/``wss://`` endpoint. ``subtensor_factory`` replaces the
    constructor (unit tests inject a fake at this edge).
    """

    def __init__(
        self,
        network: str,
        netuid: int,
        *,
        subtensor_factory: Callable[[str], Any] | None = None,
    ):
        self.network = network
        self.netuid = netuid
        self._factory = subtensor_factory
        self._subtensor: Any = None

    @property
    def connected(self) -> bool:
        return self._subtensor is not None

    def close(self) -> None:
        if self._subtensor is not None:
            try:
                self._subtensor.close()
            except Exception:  # closing a dead socket must not mask the real error
                pass
            self._subtensor = None

    # -- the protocol -------------------------------------------------------------

    def block(self) -> int:
        return int(self._call("read the block number", lambda st: st.get_current_block()))

    def metagraph(self):
        return self._call("sync the metagraph", lambda st: st.metagraph(self.netuid))

    def neurons(self) -> list[NeuronInfo]:
        graph = self.metagraph()
        return [
            NeuronInfo(
                uid=int(graph.uids[i]),
                hotkey=axon.hotkey,
                coldkey=axon.coldkey,
                stake=float(graph.S[i]),
                validator_permit=bool(graph.validator_permit[i]),
                axon_ip=axon.ip,
                axon_port=int(axon.port),
                last_update=int(graph.last_update[i]) if len(graph.last_update) > i else 0,
            )
            for i, axon in enumerate(graph.axons)
        ]

    def uid_of(self, hotkey: str) -> int | None:
        uid = self._call("look up a uid", lambda st: st.get_uid_for_hotkey_on_subnet(hotkey, self.netuid))
        return None if uid is None else int(uid)

    def serve_axon(self, wallet, ip: str, port: int) -> None:
        from bittensor.core.extrinsics.serving import serve_extrinsic

        if self.uid_of(wallet.hotkey.ss58_address) is None:
            raise HotkeyNotRegistered(f"hotkey {wallet.hotkey.ss58_address} is not registered on netuid {self.netuid}")
        success, message = self._call(
            "serve the axon",
            lambda st: serve_extrinsic(
                subtensor=st, wallet=wallet, ip=ip, port=port, protocol=AXON_PROTOCOL, netuid=self.netuid
            ),
        )
        if not success:
            raise ChainUnavailable(f"subtensor {self.network} refused to serve the axon at {ip}:{port}: {message}")

    def set_weights(self, wallet, uids: Sequence[int], weights: Sequence[float], version_key: int) -> tuple[bool, str]:
        # The SDK converts to u16, and switches to commit-reveal where the subnet has it on.
        success, message = self._call(
            "set weights",
            lambda st: st.set_weights(
                wallet=wallet,
                netuid=self.netuid,
                uids=list(uids),
                weights=list(weights),
                version_key=version_key,
            ),
        )
        return bool(success), str(message or "")

    def weights_rate_limit(self) -> int:
        limit = self._call("read weights_rate_limit", lambda st: st.weights_rate_limit(self.netuid))
        if limit is None:
            raise ChainUnavailable(f"subtensor {self.network} has no subnet {self.netuid}")
        return int(limit)

    def min_allowed_weights(self) -> int:
        """Subnet hyperparameter ``process_weights_for_netuid`` enforces (1 when unset)."""
        value = self._call("read min_allowed_weights", lambda st: st.min_allowed_weights(self.netuid))
        return 1 if value is None else int(value)

    def max_weight_limit(self) -> float:
        """Largest share one uid may get, as a fraction in (0, 1] (1.0 when unset)."""
        value = self._call("read max_weight_limit", lambda st: st.max_weight_limit(self.netuid))
        return 1.0 if value is None else float(value)

    def weights(self) -> dict[int, dict[int, float]]:
        rows = self._call("read weights", lambda st: st.weights(self.netuid))
        table: dict[int, dict[int, float]] = {}
        for validator_uid, pairs in rows:
            total = float(sum(w for _, w in pairs))
            if total > 0:
                table[int(validator_uid)] = {int(u): float(w) / total for u, w in pairs if w > 0}
        return table

    # -- internals ----------------------------------------------------------------

    def _client(self) -> Any:
        if self._subtensor is None:
            if self._factory is not None:
                self._subtensor = self._factory(self.network)
            else:
                import bittensor as bt

                self._subtensor = bt.Subtensor(network=self.network)
        return self._subtensor

    def _call(self, what: str, operation: Callable[[Any], T]) -> T:
        try:
            return operation(self._client())
        except (ChainUnavailable, HotkeyNotRegistered):
            raise
        except Exception as exc:  # websocket, substrate and SDK errors alike
            self.close()
            raise ChainUnavailable(
                f"subtensor {self.network} is unavailable (could not {what}): {type(exc).__name__}: {exc}"
            ) from exc
