"""The validator's composition root: settings -> chain, wallet, state, scorer, client -> a running ``Validator``.

Everything here runs once at start-up; the step itself is ``text3d.validator.engine`` and its
phases ``text3d.validator.step``. Exit statuses: 78 for what a restart cannot fix (a bad flag,
missing weights, a changed scoring protocol on finney/test), 1 for a chain that is down.

Run as ``text3d validator ...`` or ``python -m neurons.validator ...``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any, Sequence

from text3d.common.stopping import stop_on_signals
from text3d.ops.autoupdate import start_autoupdate
from text3d.ops.logs import setup_logging
from text3d.ops.metrics import ObservedCaptioner, ValidatorMetrics, start_metrics_server
from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, ModelUnavailable, ValidatorFault
from text3d.reward.defences.canary import CanaryExpectations
from text3d.settings import Settings, ValidatorSettings, load_settings
from text3d.validator.client import MinerClient
from text3d.validator.engine import Validator
from text3d.validator.prompts import PromptSampler
from text3d.validator.reports import StepReports
from text3d.validator.state import ValidatorState

__all__ = ["build_reward_model", "check_scoring_protocol", "build_prompt_sampler", "open_state", "main"]


def build_reward_model(settings: Settings, metrics: ValidatorMetrics | None = None) -> Any:
    """The production scorer; with ``metrics``, each captioner call's time and failure are counted."""
    from text3d.reward.caption import OpenAICaptioner
    from text3d.reward.factory import build_reward_model as build

    from text3d.reward.defences.ocr import RapidOcrEngine

    captioner_config = settings.captioner.to_config()
    captioner: Any = OpenAICaptioner(captioner_config) if captioner_config is not None else None
    if captioner is not None and metrics is not None:
        captioner = ObservedCaptioner(captioner, metrics.observe_caption)
    return build(settings.models, captioner, device=settings.resolved_device(), config=settings.reward,
                 ocr=RapidOcrEngine())


def check_scoring_protocol(settings: Settings) -> None:
    """On finney and test, refuse to start unless scoring is exactly the pinned protocol, with a captioner.

    Raises ``ConfigError`` naming what differs; devnet and local networks may change anything.
    """
    from text3d.reward.scoring_protocol import check_protocol

    captioner = settings.captioner
    check_protocol(settings.reward.to_protocol(captioner.caption_spec()), settings.subtensor.network,
                   has_captioner=captioner.enabled)


def open_state(settings: Settings, config: ValidatorSettings) -> ValidatorState:
    """The saved state at ``config.state_path``, its repeat memory judging copies by the copycat
    rule of ``settings.reward``: the pinned protocol's on finney and test (``check_scoring_protocol``),
    whatever the fingerprint_* flags say on a devnet, so the thresholds that enter the protocol
    digest are the ones the step applies."""
    from text3d.reward.defences.fingerprint import CopyRule

    return ValidatorState.load(config.state_path, config.copycat_answers_per_miner,
                               rule=CopyRule.from_defences(settings.reward))


def build_prompt_sampler(settings: ValidatorSettings, rng: random.Random) -> PromptSampler:
    """The step's prompt source: composed (>= 10^6 prompts), mixed with the shipped list, or an LLM's."""
    from text3d.validator.prompts import ComposedPrompts, LLMPrompts, MixedPrompts, ShippedPrompts

    source = {"mixed": MixedPrompts, "composed": ComposedPrompts, "shipped": ShippedPrompts}[settings.prompts]()
    if settings.prompts_llm_url:
        source = LLMPrompts(settings.prompts_llm_url, fallback=source)
    return PromptSampler(source, rng)


def main(argv: Sequence[str] | None = None) -> int:
    from text3d.chain.factory import open_chain
    from text3d.ops.registration import open_registered

    try:
        settings = load_settings("validator", argv, require_netuid=True)
        check_scoring_protocol(settings)
        setup_logging(settings.logging, role="validator", name=settings.wallet.name)
        start_autoupdate(settings.autoupdate)  # off unless --autoupdate
        config = settings.validator
        if config.state_path is None:
            config = config.model_copy(update={"state_path": settings.data_dir() / "validator_state.json"})
        if config.reports_dir is None:  # reports on by default, capped by --validator.reports_max_mb and free space
            config = config.model_copy(update={"reports_dir": settings.data_dir() / "reports"})
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
        wallet = open_registered(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path, chain)
        state = open_state(settings, config)
        metrics = ValidatorMetrics()
        reward_model = build_reward_model(settings, metrics)
        metrics_server = start_metrics_server(settings.metrics, metrics.registry)
    except (ConfigError, ModelUnavailable) as exc:  # missing weights too: a restart cannot fetch them (pm2 stops on 78)
        print(f"text3d validator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:  # the chain unavailable: a restart later may help
        print(f"text3d validator: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    rng = random.Random()  # OS-seeded: miners must not predict tasks or seeds

    async def serve() -> None:
        from text3d.validator.gateway_link import GatewayLink
        from text3d.validator.organic import OrganicConfig, OrganicWorker

        client = MinerClient(wallet, connect_timeout_s=config.connect_timeout_s, max_concurrency=config.max_concurrency)
        organic_config = OrganicConfig.from_settings(config)  # --gateway.url: organic jobs beside the steps
        organic = (OrganicWorker(organic_config, GatewayLink(organic_config.url, wallet), rng)
                   if organic_config is not None else None)
        validator = Validator(
            config,
            wallet=wallet,
            chain=chain,
            client=client,
            reward_model=reward_model,
            state=state,
            sampler=build_prompt_sampler(config, rng),
            rng=rng,
            incentive=settings.incentive,
            canary=CanaryExpectations.for_models(settings.models),
            metrics=metrics,
            reports=StepReports(config.reports_dir, config.reports_max_mb) if config.reports_max_mb > 0 else None,
            organic=organic,
        )
        stop = stop_on_signals()  # finish the step in flight, keep the saved state
        try:
            await validator.run(stop)
        finally:
            await client.aclose()
            if organic is not None:
                await organic.aclose()

    try:
        asyncio.run(serve())
    finally:
        chain.close()
        if metrics_server is not None:
            metrics_server.close()
    return EXIT_OK
