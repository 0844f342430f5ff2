"""One pinned scoring protocol: every number that decides a score lives in
``text3d.reward.scoring_protocol.PROTOCOL``, is versioned with spec_version, has a stable digest,
and validators on finney/test must score with exactly it and with a captioner.

Attack pinned (fails before this change: validators defaulted to 4 views and no
captioner, views and resolution were per-validator flags, nothing compared them):
a validator that changes the rig or drops the captioner on finney is refused at start.
"""

import json

import pytest

from text3d.protocol.errors import ConfigError
from text3d.protocol.version import SPEC_VERSION
from text3d.reward.caption_client import CaptionerConfig
from text3d.reward.config import RewardConfig
from text3d.reward.scoring_protocol import PROTOCOL, CaptionSpec, RigSpec, ScoringProtocol, check_protocol

# Changing any scoring number changes this digest: update it deliberately, with a new spec_version.
PINNED_DIGEST = "ed3b305f1c1cebc1294dbe3fcc865bc188337c6e578d682c8a2aa6bf0ce2019e"


def test_protocol_pins_the_production_rig_models_and_caption():
    assert PROTOCOL.version == SPEC_VERSION
    rig = PROTOCOL.rig
    assert (rig.n_views, rig.resolution_px, rig.n_secret_views) == (8, 512, 2)
    assert PROTOCOL.models.clip_model == "ViT-L-14" and PROTOCOL.models.clip_pretrained == "datacomp_xl_s13b_b90k"
    assert PROTOCOL.models.text_model == "sentence-transformers/all-mpnet-base-v2"
    assert PROTOCOL.models.text_revision == "0494cc34261c7abf27fcadc74050cbc4fd9b74a0"
    assert PROTOCOL.caption.max_tokens == 64 and PROTOCOL.defences.ocr_max_chars == 5


def test_digest_is_sha256_of_canonical_json_and_stable():
    text = PROTOCOL.canonical_json()
    assert json.loads(text) == PROTOCOL.model_dump(mode="json")
    assert ScoringProtocol().digest() == PROTOCOL.digest() == PINNED_DIGEST
    assert len(PINNED_DIGEST) == 64
    again = ScoringProtocol.model_validate_json(text)
    assert again.digest() == PROTOCOL.digest()


def test_any_change_changes_the_digest_and_names_the_field():
    changed = PROTOCOL.model_copy(update={"rig": RigSpec(n_views=4)})
    assert changed.digest() != PROTOCOL.digest()
    assert changed.differences(PROTOCOL) == ["rig.n_views"]


def test_reward_config_defaults_are_the_protocol():
    """One place: RewardConfig's defaults are read from PROTOCOL and give it back."""
    config = RewardConfig()
    assert config.to_protocol().digest() == PROTOCOL.digest()
    assert RewardConfig.from_protocol(PROTOCOL) == config
    assert (config.n_views, config.resolution_px) == (8, 512)
    assert CaptionerConfig().instruction == PROTOCOL.caption.instruction
    assert CaptionerConfig().max_tokens == PROTOCOL.caption.max_tokens


def test_rig_sizes_are_flat_fields_and_tiny_rigs_keep_a_ring_view():
    config = RewardConfig(n_views=4, resolution_px=64)
    assert (config.n_views, config.resolution_px) == (4, 64) and config.rig.n_secret_views == 2
    assert RewardConfig(n_views=1).rig.n_secret_views == 0 and RewardConfig(n_views=2).n_secret_views == 1
    with pytest.raises(ValueError, match="n_secret_views"):
        RewardConfig(n_views=2, n_secret_views=2)


def test_every_scalar_of_the_rig_has_a_validator_flag():
    from text3d.settings import build_parser

    help_text = build_parser("validator").format_help()
    for flag in ("--reward.n_views", "--reward.resolution_px", "--reward.n_secret_views", "--reward.max_overdraw"):
        assert flag in help_text


@pytest.mark.parametrize("network", ["finney", "test"])
def test_pinned_networks_refuse_a_changed_protocol(network):
    check_protocol(RewardConfig().to_protocol(), network, has_captioner=True)  # the defaults pass
    with pytest.raises(ConfigError, match=r"rig\.n_views.*rig\.resolution_px"):
        check_protocol(RewardConfig(n_views=4, resolution_px=256).to_protocol(), network, has_captioner=True)
    with pytest.raises(ConfigError, match=r"caption\.max_tokens"):
        check_protocol(RewardConfig().to_protocol(CaptionSpec(max_tokens=16)), network, has_captioner=True)
    with pytest.raises(ConfigError, match="must caption its views"):
        check_protocol(PROTOCOL, network, has_captioner=False)


@pytest.mark.parametrize("network", ["devnet", "local", "ws://127.0.0.1:9944"])
def test_devnet_and_local_may_change_anything(network):
    assert check_protocol(RewardConfig(n_views=2, resolution_px=64, clip_model="x").to_protocol(), network,
                          has_captioner=False) is None  # no ConfigError
