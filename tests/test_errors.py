"""The one error tree: whose fault is it? The answer is a type, so the tree's shape is a contract.

Pinned rules: "the miner failed" (``MinerFault``) and "we failed" (``ValidatorFault``)
never share a type, so a ``except ValidatorFault`` can never swallow a miner's failure
or the reverse; ``MeshDecodeError`` is both a ``ValueError`` and a ``MinerFault``;
``HotkeyNotRegistered`` is a ``ConfigError`` (exit 78, not a retry); a
``MinerTransportError`` carries one of a fixed set of statuses; ``text3d.reward.errors`` and
``text3d.generation.errors`` re-export the very classes of ``text3d.protocol.errors``, not copies.
"""

import inspect

import pytest

import text3d.generation.errors
import text3d.protocol.errors as errors
import text3d.reward.errors

ALL_CLASSES = [
    obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, errors.Text3dError)
]


def test_every_class_of_the_tree_is_exported_and_descends_from_text3d_error():
    assert set(errors.__all__) >= {cls.__name__ for cls in ALL_CLASSES}
    assert len(ALL_CLASSES) >= 16
    for cls in ALL_CLASSES:
        assert issubclass(cls, errors.Text3dError)


def test_miner_faults_and_validator_faults_never_share_a_type():
    miner_side = [cls for cls in ALL_CLASSES if issubclass(cls, errors.MinerFault)]
    ours = [cls for cls in ALL_CLASSES if issubclass(cls, errors.ValidatorFault)]
    assert {c.__name__ for c in miner_side} == {"MinerFault", "MeshDecodeError", "InvalidAssetError", "MinerTransportError"}
    assert {c.__name__ for c in ours} == {
        "ValidatorFault", "CaptionerUnavailable", "ModelUnavailable", "RendererUnavailable",
        "ChainUnavailable", "NetworkUnavailable", "ResourceExhausted",
    }  # fmt: skip
    assert not set(miner_side) & set(ours)
    for cls in ALL_CLASSES:  # configuration and generation errors are neither
        if issubclass(cls, (errors.ConfigError, errors.GenerationError)):
            assert not issubclass(cls, (errors.MinerFault, errors.ValidatorFault)), cls


def test_a_memory_error_on_the_validator_is_ours():
    assert issubclass(errors.ResourceExhausted, errors.ValidatorFault)
    assert not issubclass(errors.ResourceExhausted, errors.MinerFault)


def test_mesh_decode_error_is_a_value_error_and_a_miner_fault():
    assert issubclass(errors.MeshDecodeError, ValueError)
    assert issubclass(errors.MeshDecodeError, errors.MinerFault)
    with pytest.raises(ValueError, match="vertices"):
        raise errors.MeshDecodeError("PLY declares 2147483648 vertices, the limit is 1000000")


def test_configuration_errors_are_their_own_branch():
    assert issubclass(errors.HotkeyNotRegistered, errors.ConfigError)
    assert issubclass(errors.HotkeyNotRegistered, LookupError)
    assert issubclass(errors.ModelNotAvailableError, errors.ConfigError)
    assert issubclass(errors.ModelNotAvailableError, errors.GenerationError)
    assert errors.EXIT_CONFIG == 78 and errors.EXIT_USAGE == 2
    assert len({errors.EXIT_OK, errors.EXIT_FAILURE, errors.EXIT_USAGE, errors.EXIT_CONFIG}) == 4


def test_model_not_available_says_what_to_do():
    message = str(errors.ModelNotAvailableError("openai/shap-e", "no internet", is_local=False))
    assert "hf download openai/shap-e" in message and "--models tiny" in message
    assert message.count("\n") == 0


@pytest.mark.parametrize("status", errors.MinerTransportError.STATUSES)
def test_transport_error_keeps_its_status_and_sentence(status):
    error = errors.MinerTransportError(status, "the miner did something")
    assert error.status == status and str(error) == "the miner did something"
    assert isinstance(error, errors.MinerFault)


def test_transport_error_refuses_an_unknown_status():
    assert set(errors.MinerTransportError.STATUSES) == {"no_response", "late", "oversize", "encoded", "refused", "malformed"}
    with pytest.raises(ValueError, match="unknown transport status 'timeout'"):
        errors.MinerTransportError("timeout", "nope")


def test_reward_and_generation_reexport_the_same_classes():
    for name in text3d.reward.errors.__all__:
        if name == "RewardError":
            assert text3d.reward.errors.RewardError is errors.Text3dError
            continue
        assert getattr(text3d.reward.errors, name) is getattr(errors, name), name
    for name in text3d.generation.errors.__all__:
        assert getattr(text3d.generation.errors, name) is getattr(errors, name), name
    assert text3d.reward.errors.ValidatorFault is errors.ValidatorFault
    assert text3d.generation.errors.EmptyMeshError is errors.EmptyMeshError


def test_the_tree_module_imports_nothing():
    source = inspect.getsource(errors)
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations"]
