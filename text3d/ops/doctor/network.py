"""``text3d doctor``'s checks of what a neuron talks to: captioner, chain and wallet, port, address, clock.

Nothing here contacts anything but the chain and the peers the settings name (the tests
use the devnet and loopback servers only).
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from text3d.ops.doctor.machine import Check

__all__ = ["caption_is_sensible", "check_captioner", "check_wallet", "check_port", "check_external_ip", "peer_urls",
           "check_clock", "CANARY_PROMPT", "SIGNED_REQUEST_FRESHNESS_S"]

SIGNED_REQUEST_FRESHNESS_S = 10.0  # bittensor 11's btauth: a request older than this is refused
CANARY_PROMPT = "a red ball"
_CANARY_WORDS = {"red", "ball", "sphere", "spherical", "round", "circle", "circular", "orb", "globe", "apple",
                 "tomato", "bead", "dot", "marble"}


# -- captioner ----------------------------------------------------------------------------------


def caption_is_sensible(caption: str) -> bool:
    """True for an English-looking caption that mentions the canary (a red ball)."""
    tokens = caption.split()
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", caption)]
    if len(words) < 2 or not tokens:
        return False
    wordlike = sum(1 for t in tokens if re.fullmatch(r"[A-Za-z][a-z]*[.,;:!?']?s?", t)) / len(tokens)
    return wordlike >= 0.7 and any(w in _CANARY_WORDS for w in words)


def check_captioner(settings: Any, canary: Path | None, timing: dict[str, float] | None = None) -> Check:
    """The captioner describes a rendered canary sensibly; ``timing["caption_s"]`` gets the caption's time.

    ``--captioner none`` fails on the networks that require a captioner (finney, test: the
    validator refuses to start there) and warns elsewhere.
    """
    import httpx

    from text3d.reward.scoring_protocol import PINNED_NETWORKS

    captioner = settings.captioner
    if not captioner.enabled:
        network = settings.subtensor.network
        fix = "start a server (`text3d llava --models 7b --port 8080`) and pass --captioner http://127.0.0.1:8080"
        if network in PINNED_NETWORKS:
            return Check("captioner", "fail", f"--captioner none: a validator on {network} must caption its views "
                                              f"(it refuses to start without); {fix}")
        return Check("captioner", "warn", f"--captioner none: scores use CLIP only; {fix}")
    url = captioner.base_url
    try:
        response = httpx.get(f"{url}/health", timeout=captioner.connect_timeout_s)
    except httpx.HTTPError as exc:
        return Check("captioner", "fail", f"{url} is unreachable ({type(exc).__name__}): start it with `text3d llava "
                                          "--models 7b` or fix --captioner")
    if response.status_code == 503:
        return Check("captioner", "warn", f"{url} is still loading its model (GET /health: 503); run doctor again")
    if response.status_code != 200:
        return Check("captioner", "fail", f"{url}/health answered HTTP {response.status_code}: is --captioner an "
                                          "OpenAI-compatible vision server?")
    if canary is None or not canary.is_file():
        return Check("captioner", "warn", f"{url} is up, but no canary could be rendered to test a caption")
    from PIL import Image

    from text3d.reward.caption import OpenAICaptioner

    config = captioner.to_config().model_copy(update={"retries": 0, "timeout_s": min(captioner.timeout_s, 120.0)})
    with OpenAICaptioner(config) as client:
        try:
            started = time.perf_counter()
            caption = client.caption([Image.open(canary).convert("RGB")], CANARY_PROMPT)[0]
            if timing is not None:
                timing["caption_s"] = time.perf_counter() - started
        except Exception as exc:
            return Check("captioner", "fail", f"{url} is up but captioning failed ({type(exc).__name__}: "
                                              f"{str(exc)[:160]}); check its --mmproj (a vision model is needed)")
    shown = caption if len(caption) <= 80 else caption[:77] + "..."
    if caption_is_sensible(caption):
        return Check("captioner", "pass", f"{url} describes the canary (a red ball) as {shown!r}")
    return Check("captioner", "warn", f"{url} answered {shown!r} for a red ball: junk (a test model? the wrong "
                                      "--mmproj?); scores would be noise")


# -- chain, wallet, network ------------------------------------------------------------------------


def _with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` on a daemon thread; ``TimeoutError`` when it takes longer (the thread is left behind)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="text3d-doctor")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_wallet(settings: Any, role: str, timeout_s: float = 30.0) -> tuple[list[Check], Any]:
    """Wallet, hotkey and registration; returns the checks and the metagraph (None when unknown)."""
    import bittensor

    from text3d.chain.factory import open_chain
    from text3d.protocol.errors import ConfigError, ValidatorFault

    wallet_settings = settings.wallet
    label = f"{wallet_settings.name}/{wallet_settings.hotkey} under {wallet_settings.path}"
    wallet = bittensor.Wallet(name=wallet_settings.name, hotkey=wallet_settings.hotkey, path=str(wallet_settings.path))
    try:
        hotkey = wallet.hotkey.ss58_address
    except Exception as exc:
        return [Check("wallet", "fail", f"no readable hotkey {label} ({type(exc).__name__}): create it with "
                                        f"`text3d register --netuid {settings.netuid} --wallet.name "
                                        f"{wallet_settings.name} --create` (or `text3d devnet register` on the devnet)")], None
    checks = [Check("wallet", "pass", f"hotkey {label}: {hotkey}")]
    network = settings.subtensor.chain_endpoint or settings.subtensor.network
    try:
        chain = open_chain(network, settings.netuid, devnet_db=settings.devnet.db)
        metagraph = _with_timeout(chain.metagraph, timeout_s)
    except ConfigError as exc:
        return checks + [Check("chain", "fail", str(exc))], None
    except (ValidatorFault, TimeoutError, OSError) as exc:
        return checks + [Check("chain", "fail", f"cannot read netuid {settings.netuid} on {network} ({exc}); check "
                                                "--subtensor.network and the connection")], None
    uid = metagraph.uid_of(hotkey)
    if uid is None:
        fix = ("`text3d devnet register`" if network == "devnet" else
               f"`text3d register --netuid {settings.netuid} --subtensor.network {network} --wallet.name {wallet_settings.name}`")
        return checks + [Check("registered", "fail", f"hotkey {hotkey} holds no uid on netuid {settings.netuid} "
                                                     f"({network}, {metagraph.n} neurons): register it with {fix}")], metagraph
    neuron = metagraph.neuron(uid)
    text = f"uid {uid} on netuid {settings.netuid} ({network}), stake {neuron.stake:g}"
    if role == "validator" and not neuron.validator_permit:
        return checks + [Check("registered", "warn", f"{text}, no validator permit yet: miners refuse it until its "
                                                     "stake earns one (`text3d register ... --stake TAO`)")], metagraph
    return checks + [Check("registered", "pass", text + (", validator permit" if neuron.validator_permit else ""))], metagraph


def check_port(settings: Any) -> Check:
    from text3d.ops.net import check_port_free
    from text3d.protocol.errors import ConfigError

    axon = settings.axon
    try:
        check_port_free(axon.ip, axon.port).close()
    except ConfigError as exc:
        return Check("port", "fail", str(exc))
    return Check("port", "pass", f"--axon.port {axon.port} is free on {axon.ip}")


def check_external_ip(settings: Any) -> Check:
    from text3d.ops.net import external_ip
    from text3d.protocol.errors import ConfigError

    announced = settings.announced_ip()
    if announced is not None:
        how = "--axon.external_ip" if settings.axon.external_ip else "local network"
        return Check("external ip", "pass", f"{announced} ({how})")
    try:
        address = external_ip()
    except ConfigError as exc:
        return Check("external ip", "fail", str(exc))
    if ipaddress.ip_address(address).is_private:
        return Check("external ip", "warn", f"{address} is a private address: validators outside this network cannot "
                                            "reach it; announce the public one with --axon.external_ip (and forward "
                                            "the port)")
    return Check("external ip", "pass", f"{address} (from this machine's route; set --axon.external_ip if it differs)")


def peer_urls(settings: Any, metagraph: Any, extra: Iterable[str], role: str | None) -> list[str]:
    urls = list(extra)
    if metagraph is not None and role == "validator":
        urls += [f"http://{n.axon_ip}:{n.axon_port}/" for n in metagraph.neurons if n.is_serving][:3]
    if settings is not None and role == "validator" and settings.captioner.enabled:
        urls.append(f"{settings.captioner.base_url}/health")
    return urls


def check_clock(urls: Iterable[str]) -> Check:
    import httpx

    for url in urls:
        try:
            sent = time.time()
            response = httpx.get(url, timeout=3.0)
            received = time.time()
        except httpx.HTTPError:
            continue
        date = response.headers.get("date")
        if not date:
            continue
        try:
            peer = email.utils.parsedate_to_datetime(date).timestamp() + 0.5  # Date has whole seconds
        except (TypeError, ValueError):
            continue
        skew = (sent + received) / 2 - peer
        text = f"{skew:+.1f} s against {url} (signed requests expire after {SIGNED_REQUEST_FRESHNESS_S:g} s)"
        if abs(skew) > 3.0:
            return Check("clock", "fail", f"{text}: turn on NTP (`timedatectl set-ntp true` or chrony)")
        if abs(skew) > 1.5:
            return Check("clock", "warn", f"{text}: keep NTP running")
        return Check("clock", "pass", text)
    return Check("clock", "warn", "could not compare the clock with a peer (none reachable with a Date header); "
                                  f"signed requests expire after {SIGNED_REQUEST_FRESHNESS_S:g} s: keep NTP running")


