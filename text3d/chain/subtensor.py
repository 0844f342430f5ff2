"""The ``ChainAdapter`` over a real subtensor, through bittensor 11's async ``Client``.

bittensor 11's client is async and wants one long-lived connection; the neurons call the
adapter synchronously (from worker threads, through ``asyncio.to_thread``). So the
adapter owns one background thread running an event loop, and on it one ``Client``,
connected on first use and replaced after a failure; every call is a coroutine sent to
that loop with ``run_coroutine_threadsafe`` and waited for with a deadline.

Translation at this boundary (nothing above it sees a bittensor exception):

- a transport failure, a timeout, a decoding surprise or a ``ChainError`` on a read:
  ``ChainUnavailable`` (the connection is dropped; the next call reconnects);
- ``serve_axon`` for an unregistered hotkey: ``HotkeyNotRegistered``; any other refusal
  to serve: ``ChainUnavailable`` naming the chain's reason;
- ``set_weights``: the SDK's own refusals (its preflight of registration and rate limit,
  its conforming of the weights, a failed extrinsic) are ``(False, reason)``; only the
  transport failing raises ``ChainUnavailable``.

``SetWeights`` conforms the weights itself (max-weight clip, u16, minimum count) and picks
plain or timelocked commit-reveal from the subnet's settings; ``weight_rules`` states the
same rules for the devnet.
"""

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from text3d.chain.base import Metagraph, NeuronInfo, check_axon_address
from text3d.protocol.errors import ChainUnavailable, ConfigError, HotkeyNotRegistered
from text3d.protocol.version import SPEC_VERSION

__all__ = ["SubtensorChain", "parse_axon"]

T = TypeVar("T")
AXON_PROTOCOL = 4  # the protocol tag subtensor stores with an axon (the SDK's default)
U16_MAX = 65535

ClientFactory = Callable[[str], Any]
"""``network -> client``: a ``bittensor.Client`` or a stand-in with the same methods (not yet connected)."""


class SubtensorChain:
    """One subnet on a subtensor, over one lazily connected ``bittensor.Client``.

    ``network`` is what ``bittensor.Client`` accepts: ``finney``, ``test``, ``local`` or a
    ``ws://``/``wss://`` endpoint (``ConfigError`` otherwise). Constructing connects to
    nothing and starts no thread. ``client_factory`` replaces ``bittensor.Client`` (unit
    tests inject a fake at this edge). Reads wait at most ``read_timeout_s``; writes
    (which wait for the extrinsic's inclusion in a block) at most ``write_timeout_s``.
    Call ``close()`` to end the connection and the thread; a later call starts both again.
    """

    def __init__(
        self,
        network: str,
        netuid: int,
        *,
        client_factory: ClientFactory | None = None,
        read_timeout_s: float = 30.0,
        write_timeout_s: float = 120.0,
    ) -> None:
        if client_factory is None:
            _check_network(network)
        self.network = network
        self.netuid = int(netuid)
        self._factory = client_factory
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s
        self._lock = threading.Lock()  # guards the loop and thread handles
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None  # touched only on the loop's thread
        self._connecting: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        """True while a connected client is held."""
        return self._client is not None

    def close(self) -> None:
        """Close the connection and stop the loop thread (idempotent, never raises)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10.0)
        except Exception:  # closing a dead socket must not mask anything
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5.0)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> "SubtensorChain":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads ----------------------------------------------------------------------

    def block(self) -> int:
        return self._decoded("a block number", int, self._read("read the block number", lambda c: c.block()))

    def metagraph(self) -> Metagraph:
        """The subnet's metagraph (no commitments), mapped to the project's ``Metagraph``."""
        graph = self._read("read the metagraph", lambda c: c.subnets.metagraph(self.netuid, commitments=False))
        if graph is None:
            raise ChainUnavailable(f"subtensor {self.network} has no subnet {self.netuid}")
        return self._decoded(
            "a metagraph",
            lambda g: Metagraph(netuid=self.netuid, block=int(g.block), neurons=tuple(_neuron_info(n) for n in g.neurons)),
            graph,
        )

    def neurons(self) -> list[NeuronInfo]:
        return list(self.metagraph().neurons)

    def uid_of(self, hotkey: str) -> int | None:
        uid = self._read("look up a uid", lambda c: c.neurons.uid(hotkey, self.netuid))
        return None if uid is None else self._decoded("a uid", int, uid)

    def weights_rate_limit(self) -> int:
        value = self._read("read weights_rate_limit", lambda c: c.hyperparameters.weights_rate_limit(self.netuid))
        return self._decoded("weights_rate_limit", int, value)

    def min_allowed_weights(self) -> int:
        value = self._read("read min_allowed_weights", lambda c: c.hyperparameters.min_allowed_weights(self.netuid))
        return self._decoded("min_allowed_weights", int, value)

    def max_weight_limit(self) -> float:
        """The subnet's ``MaxWeightsLimit`` (a u16) as a fraction in (0, 1]."""
        value = self._read("read max_weight_limit", lambda c: c.hyperparameters.max_weight_limit(self.netuid))
        return min(max(self._decoded("max_weight_limit", int, value), 1), U16_MAX) / U16_MAX

    def weights(self) -> dict[int, dict[int, float]]:
        """Rows as the chain stores them, normalised; validators without weights are left out."""
        rows = self._read("read weights", lambda c: c.weights.weights(self.netuid))
        return self._decoded(
            "weights", lambda r: {int(v): {int(u): float(w) for u, w in row.items()} for v, row in r.items() if row}, rows
        )

    # -- writes ---------------------------------------------------------------------

    def serve_axon(self, wallet: Any, ip: str, port: int) -> None:
        """Publish the hotkey's address with ``ServeAxon`` (``version`` = ``SPEC_VERSION``)."""
        import bittensor
        from bittensor.result import ErrorCode

        check_axon_address(ip, port)
        hotkey = wallet.hotkey.ss58_address
        if self.uid_of(hotkey) is None:
            raise HotkeyNotRegistered(self._unregistered(hotkey))
        intent = bittensor.ServeAxon(self.netuid, ip, int(port), protocol=AXON_PROTOCOL, version=SPEC_VERSION)
        try:
            result = self._write("serve the axon", lambda client: client.execute(intent, wallet, wait_for_finalization=False))
        except bittensor.ChainError as refusal:
            result = bittensor.ExtrinsicResult(False, refusal.message, error=refusal)
        except _Refused as refusal:
            result = bittensor.ExtrinsicResult(False, str(refusal))
        if result.success:
            return
        if result.error is not None and result.error.code == ErrorCode.NOT_REGISTERED:
            raise HotkeyNotRegistered(self._unregistered(hotkey))
        raise ChainUnavailable(f"subtensor {self.network} refused to serve the axon at {ip}:{port}: {_reason(result)}")

    def set_weights(self, wallet: Any, uids: Sequence[int], weights: Sequence[float], version_key: int) -> tuple[bool, str]:
        """Submit ``SetWeights``; the SDK conforms the weights and chooses commit-reveal itself.

        Waits for inclusion in a block, not finalisation: inclusion is what the rate limit
        counts, and finalisation would hold the caller's thread for several more blocks.
        """
        import bittensor

        try:
            intent = bittensor.SetWeights(
                self.netuid, [int(u) for u in uids], [float(w) for w in weights], version_key=int(version_key)
            )
        except bittensor.BittensorError as refusal:  # duplicate uids, mismatched lengths
            return False, str(refusal)
        try:
            result = self._write("set weights", lambda client: client.execute(intent, wallet, wait_for_finalization=False))
        except bittensor.ChainError as refusal:  # the preflight: unregistered, rate limited, too few weights
            return False, _reason(bittensor.ExtrinsicResult(False, refusal.message, error=refusal))
        except _Refused as refusal:
            return False, str(refusal)
        if result.success:
            return True, result.message or "weights set"
        return False, _reason(result)

    # -- the loop -------------------------------------------------------------------

    def _read(self, what: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        return self._call(what, operation, self._read_timeout_s, reads=True)

    def _write(self, what: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        return self._call(what, operation, self._write_timeout_s, reads=False)

    def _call(self, what: str, operation: Callable[[Any], Awaitable[T]], timeout_s: float, *, reads: bool) -> T:
        """Run ``operation(client)`` on the loop; translate every failure (module doc).

        On writes a ``bittensor.ChainError`` is the chain's answer and passes through for
        the caller to turn into a refusal, and any other SDK error that is not about the
        transport becomes ``_Refused``.
        """
        import bittensor

        future = asyncio.run_coroutine_threadsafe(self._with_client(operation), self._ensure_loop())
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the cancelled coroutine drops its connection (see _with_client)
            raise ChainUnavailable(
                f"subtensor {self.network} did not answer within {timeout_s:g} s (could not {what})"
            ) from None
        except (ChainUnavailable, ConfigError):
            raise
        except bittensor.ChainError as exc:
            if not reads:
                raise
            raise ChainUnavailable(f"subtensor {self.network} refused to {what}: {exc}") from exc
        except bittensor.BittensorError as exc:
            if not reads and not _connection_suspect(exc):
                raise _Refused(str(exc)) from exc
            raise self._unavailable(what, exc) from exc
        except Exception as exc:  # websockets, OSError, decoding surprises
            raise self._unavailable(what, exc) from exc

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_run_forever, args=(loop,), name=f"subtensor-netuid{self.netuid}", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._connecting = loop, thread, None
            return self._loop

    async def _with_client(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """``operation`` on the connected client; a failure that taints the connection drops it."""
        client = await self._connected_client()
        try:
            return await operation(client)
        except BaseException as exc:  # CancelledError too: a timed-out call leaves the socket mid-answer
            if _connection_suspect(exc):
                await self._disconnect(client)
            raise

    async def _connected_client(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one connect at a time; later callers reuse it
            if self._client is None:
                client = self._new_client()
                try:
                    await asyncio.wait_for(client.connect(), timeout=self._read_timeout_s)
                except BaseException:
                    await _close_quietly(client)
                    raise
                self._client = client
            return self._client

    def _new_client(self) -> Any:
        if self._factory is not None:
            return self._factory(self.network)
        import bittensor

        return bittensor.Client(self.network)

    async def _shutdown(self) -> None:
        """Close the connection, then cancel and await whatever still runs on the loop."""
        await self._disconnect()
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    async def _disconnect(self, client: Any = None) -> None:
        """Close ``client`` (default: the current one) and forget it if it is still current."""
        client = self._client if client is None else client
        if client is self._client:
            self._client = None
        if client is not None:
            await _close_quietly(client)

    def _decoded(self, what: str, convert: Callable[[Any], T], value: Any) -> T:
        """``convert(value)``; an answer of an unexpected shape is ``ChainUnavailable``."""
        try:
            return convert(value)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise ChainUnavailable(f"subtensor {self.network} sent {what} that does not decode: {exc}") from exc

    def _unavailable(self, what: str, exc: BaseException) -> ChainUnavailable:
        return ChainUnavailable(f"subtensor {self.network} is unavailable (could not {what}): {type(exc).__name__}: {exc}")

    def _unregistered(self, hotkey: str) -> str:
        return (
            f"hotkey {hotkey} is not registered on netuid {self.netuid} of {self.network}; "
            f"register it first (`btcli tx burned-register --netuid {self.netuid}`)"
        )


class _Refused(Exception):
    """An SDK error raised while building a write (not a transport failure): a refusal."""


def parse_axon(endpoint: str | None) -> tuple[str, int]:
    """``"1.2.3.4:8091"`` / ``"[::1]:8091"`` -> ``(ip, port)``; None -> ``("0.0.0.0", 0)``.

    The form ``bittensor.metagraph.MetagraphNeuron.axon`` takes. Raises ``ValueError``
    for anything else.
    """
    if not endpoint:
        return "0.0.0.0", 0
    if endpoint.startswith("["):
        host, separator, port = endpoint[1:].partition("]:")
    else:
        host, separator, port = endpoint.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"axon endpoint {endpoint!r} is not ip:port")
    return host, int(port)


def _neuron_info(neuron: Any) -> NeuronInfo:
    """A ``bittensor.metagraph.MetagraphNeuron`` as the project's ``NeuronInfo``."""
    ip, port = parse_axon(neuron.axon)
    return NeuronInfo(
        uid=int(neuron.uid),
        hotkey=str(neuron.hotkey),
        coldkey=str(neuron.coldkey),
        stake=float(neuron.total_stake.amount),  # alpha units: `.tao` raises for alpha balances
        validator_permit=bool(neuron.validator_permit),
        axon_ip=ip,
        axon_port=port,
        last_update=int(neuron.last_update or 0),
        incentive=float(neuron.incentive or 0.0),
        emission=float(neuron.emission.amount) if neuron.emission is not None else 0.0,  # alpha, like the stake
    )


def _reason(result: Any) -> str:
    """One line from a failed ``ExtrinsicResult``: the message and the chain's error code."""
    error = result.error
    message = result.message or (error.message if error is not None else "") or "the extrinsic failed"
    if error is not None and getattr(error, "code", None) is not None:
        return f"{message} ({error.code.value})"
    return message


def _connection_suspect(exc: BaseException) -> bool:
    """True when the connection can no longer be trusted after ``exc``.

    The chain's own answers (``ChainError``) and the SDK refusing to build a call leave
    the connection fine; transport errors, timeouts and anything foreign do not.
    """
    import bittensor

    if isinstance(exc, (bittensor.RpcConnectionError, bittensor.ConnectionNotReady)):
        return True
    return not isinstance(exc, bittensor.BittensorError)


def _check_network(network: str) -> None:
    from bittensor.settings import resolve_endpoint

    try:
        resolve_endpoint(network)
    except ValueError:
        raise ConfigError(
            f"unknown subtensor network {network!r}; pass finney, test, local, devnet (the SQLite devnet) "
            "or a ws:// / wss:// endpoint with --subtensor.network or --subtensor.chain_endpoint"
        ) from None


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


async def _close_quietly(client: Any) -> None:
    try:
        await asyncio.wait_for(client.close(), timeout=5.0)
    except BaseException:  # a dead socket may fail to close; the failure that got us here matters
        pass
