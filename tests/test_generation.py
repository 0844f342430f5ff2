"""Shap-E generation through the tiny offline pipeline (real diffusers code, random weights).

Rules pinned here: a prompt and seed always give the same mesh; prompts batched
through the prior give what they give one by one; every mesh is closed, coloured,
+Y-up in the unit sphere and survives the wire codec under default limits; the tiny
pipeline loads through the production ``from_pretrained``; a missing model is one
clear ``ModelNotAvailableError`` (and one line from the CLI), never a traceback.
"""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from pydantic import ValidationError

from text3d.generation import EmptyMeshError, GenerationConfig, ModelNotAvailableError, ShapEGenerator, ensure_tiny_pipeline
from text3d.generation.marching_cubes import marching_cubes_tables
from text3d.generation.tiny import RECIPE_VERSION, build_tiny_pipeline, tiny_pipeline_path
from text3d.cli.main import main as cli_main
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh

FAST = dict(model="tiny", num_inference_steps=2, grid_size=16, device="cpu", show_progress=False)
PROMPTS = ["a red chair", "a shark", "a small wooden boat"]
SEEDS = [1, 2, 3]


@pytest.fixture(scope="module")
def generator() -> ShapEGenerator:
    return ShapEGenerator.from_pretrained(config=GenerationConfig(**FAST))


@pytest.fixture(scope="module")
def meshes(generator: ShapEGenerator) -> list[trimesh.Trimesh]:
    return generator.generate(PROMPTS, SEEDS)


def _same_mesh(a: trimesh.Trimesh, b: trimesh.Trimesh) -> bool:
    return (
        np.array_equal(a.vertices, b.vertices)
        and np.array_equal(a.faces, b.faces)
        and np.array_equal(a.visual.vertex_colors, b.visual.vertex_colors)
    )


def test_config_defaults_are_shap_e_reference_settings() -> None:
    config = GenerationConfig()
    assert (config.model, config.guidance_scale, config.num_inference_steps, config.grid_size) == (
        "openai/shap-e",
        15.0,
        64,
        128,
    )
    assert config.device == "auto" and config.dtype == "auto" and config.show_progress is None
    for bad in ({"device": "gpu"}, {"grid_size": 4}, {"num_inference_steps": 0}, {"max_batch_size": 0}, {"colour": 1}):
        with pytest.raises(ValidationError):
            GenerationConfig(**bad)


def test_latents_have_the_prior_shape(generator: ShapEGenerator) -> None:
    latents = generator.sample_latents(PROMPTS[:2], SEEDS[:2])
    prior = generator.pipeline.prior.config
    assert latents.shape == (2, prior.num_embeddings, prior.embedding_dim)
    assert latents.dtype == torch.float32 and generator.device.type == "cpu"
    assert torch.isfinite(latents).all()
    with pytest.raises(ValueError):
        generator.sample_latents(PROMPTS, SEEDS[:2])
    with pytest.raises(ValueError):
        generator.sample_latents(["x"], [-1])


def test_same_prompt_and_seed_give_the_same_mesh(generator: ShapEGenerator, meshes: list[trimesh.Trimesh]) -> None:
    again = generator.generate(PROMPTS[:1], SEEDS[:1])[0]
    alone = generator.generate(PROMPTS[:1], SEEDS[:1])[0]
    assert _same_mesh(again, alone)
    other_seed = generator.generate(PROMPTS[:1], [99])[0]
    assert not _same_mesh(alone, other_seed)


def test_a_batch_equals_one_by_one(generator: ShapEGenerator) -> None:
    """One generator per prompt: row i of the batch starts from seed i's noise, so only
    float rounding of batched matrix products separates the two."""
    batch = generator.sample_latents(PROMPTS, SEEDS)
    single = torch.cat([generator.sample_latents([p], [s]) for p, s in zip(PROMPTS, SEEDS)])
    torch.testing.assert_close(batch, single, atol=2e-3, rtol=0)
    chunked = ShapEGenerator(generator.pipeline, GenerationConfig(**FAST, max_batch_size=2), generator.device)
    torch.testing.assert_close(chunked.sample_latents(PROMPTS, SEEDS), batch, atol=2e-3, rtol=0)
    for from_batch, from_single in zip(batch, single):
        a, b = generator.decode_mesh(from_batch), generator.decode_mesh(from_single)
        assert abs(len(a.faces) - len(b.faces)) <= 0.01 * len(a.faces)
        np.testing.assert_allclose(a.bounds, b.bounds, atol=0.02)


def test_meshes_are_closed_coloured_and_in_the_unit_sphere(meshes: list[trimesh.Trimesh]) -> None:
    assert len(meshes) == len(PROMPTS)
    for mesh in meshes:
        assert len(mesh.faces) > 0 and mesh.is_watertight and mesh.volume > 0
        colours = mesh.visual.vertex_colors
        assert colours.dtype == np.uint8 and colours.shape == (len(mesh.vertices), 4)
        assert (colours[:, 3] == 255).all()
        assert mesh.bounds.mean(axis=0) == pytest.approx(np.zeros(3), abs=1e-9)
        assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_meshes_survive_the_wire_codec(meshes: list[trimesh.Trimesh], fmt: MeshFormat) -> None:
    for mesh in meshes:
        decoded = decode_mesh(encode_mesh(mesh, fmt))
        assert len(decoded.faces) == len(mesh.faces)
        assert decoded.visual.vertex_colors.dtype == np.uint8
        assert np.linalg.norm(decoded.vertices, axis=1).max() <= 1.0 + 1e-3
        if fmt is not MeshFormat.DRACO:  # Draco reorders vertices
            np.testing.assert_array_equal(decoded.visual.vertex_colors, mesh.visual.vertex_colors)


def test_tiny_pipeline_round_trips_through_from_pretrained(tmp_path: Path) -> None:
    built = build_tiny_pipeline()
    built.save_pretrained(tmp_path / "tiny")
    config = GenerationConfig(**FAST)
    loaded = ShapEGenerator.from_pretrained(tmp_path / "tiny", config)
    in_memory = ShapEGenerator(built, config, torch.device("cpu"))
    for name in ("prior", "text_encoder", "shap_e_renderer"):
        saved, restored = getattr(built, name).state_dict(), getattr(loaded.pipeline, name).state_dict()
        assert saved.keys() == restored.keys()
        assert all(torch.equal(saved[k], restored[k]) for k in saved), name
    cases, masks = marching_cubes_tables()
    assert torch.equal(loaded.pipeline.shap_e_renderer.mesh_decoder.cases, torch.from_numpy(cases.copy()))
    assert torch.equal(loaded.pipeline.shap_e_renderer.mesh_decoder.masks, torch.from_numpy(masks.copy()))
    assert loaded.pipeline.tokenizer("a red chair").input_ids == built.tokenizer("a red chair").input_ids
    # Bit-identical weights; the meshes agree to float rounding (CPU kernels may pick different
    # reduction orders for the loaded and the built modules' memory layouts: seen 2.4e-4 in a latent).
    from_disk, from_memory = loaded.generate(["a chair"], [5])[0], in_memory.generate(["a chair"], [5])[0]
    assert from_disk.faces.shape == from_memory.faces.shape
    np.testing.assert_allclose(from_disk.vertices, from_memory.vertices, atol=5e-3)
    assert np.abs(from_disk.visual.vertex_colors.astype(int) - from_memory.visual.vertex_colors.astype(int)).max() <= 2
    # The same recipe gives the same weights: every machine's tiny model is identical.
    again = build_tiny_pipeline().prior.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in built.prior.state_dict().items())


def test_ensure_tiny_pipeline_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT3D_CACHE", str(tmp_path / "cache"))
    assert tiny_pipeline_path() == tmp_path / "cache" / "models" / "tiny-shap-e"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_tiny_pipeline())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = tiny_pipeline_path()
    assert results == [path, path]
    assert os.listdir(path.parent) == ["tiny-shap-e"]  # no staging folder left behind
    stamp = (path / "model_index.json").stat().st_mtime_ns
    assert ensure_tiny_pipeline() == path
    assert (path / "model_index.json").stat().st_mtime_ns == stamp
    # A copy from an older recipe is replaced, again without leftovers.
    (path / "text3d_tiny.json").write_text('{"recipe": 1}')
    assert ensure_tiny_pipeline() == path
    assert json.loads((path / "text3d_tiny.json").read_text())["recipe"] == RECIPE_VERSION
    assert os.listdir(path.parent) == ["tiny-shap-e"]


def test_missing_local_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError) as missing:
        ShapEGenerator.from_pretrained(tmp_path / "nowhere", GenerationConfig(**FAST))
    message = str(missing.value)
    assert str(tmp_path / "nowhere") in message and "--models tiny" in message and "hf download" in message
    assert "\n" not in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="model_index.json"):
        ShapEGenerator.from_pretrained(tmp_path / "empty", GenerationConfig(**FAST))


def test_uncached_hub_model_offline_is_one_clear_error() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    with pytest.raises(ModelNotAvailableError) as missing:
        ShapEGenerator.from_pretrained("text3d-tests/no-such-model", GenerationConfig(**FAST))
    message = str(missing.value)
    assert "'text3d-tests/no-such-model'" in message and "hf download text3d-tests/no-such-model" in message
    assert "\n" not in message


def test_a_field_without_surface_is_an_empty_mesh_error(tmp_path: Path) -> None:
    pipeline = build_tiny_pipeline()
    with torch.no_grad():
        pipeline.shap_e_renderer.mlp.mlp[-1].bias[0] = -100.0  # signed distance < 0 everywhere
    generator = ShapEGenerator(pipeline, GenerationConfig(**FAST), torch.device("cpu"))
    latent = generator.sample_latents(["a chair"], [0])[0]
    with pytest.raises(EmptyMeshError):
        generator.decode_mesh(latent)


def test_progress_is_off_when_not_a_terminal(generator: ShapEGenerator) -> None:
    auto = ShapEGenerator(generator.pipeline, GenerationConfig(**{**FAST, "show_progress": None}), generator.device)
    assert auto.show_progress is False  # pytest captures stderr: not a TTY


@pytest.mark.parametrize(("name", "magic"), [("chair.glb", b"glTF"), ("chair.drc", b"DRACO"), ("chair.ply", b"ply")])
def test_cli_writes_a_file_that_decodes(tmp_path: Path, name: str, magic: bytes, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / name
    code = cli_main(["generate", "a red chair", "-o", str(out), "--models", "tiny", "--generation.steps", "2",
                     "--generation.grid_size", "16", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data.startswith(magic)
    mesh = decode_mesh(data)
    assert len(mesh.faces) > 0
    assert str(out) in capsys.readouterr().out


def test_cli_missing_model_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["generate", "a red chair", "-o", str(tmp_path / "x.glb"), "--model-path", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 78  # missing weights: a setting to change (fetch them), not a crash to restart
    assert err.startswith("text3d generate: Shap-E model") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.glb").exists()


def test_cli_refuses_unknown_extension_and_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["generate", "x", "-o", str(tmp_path / "x.obj"), "--models", "tiny"]) == 78
    assert "--format" in capsys.readouterr().err
    assert cli_main(["generate", "x", "-o", str(tmp_path / "x.ply"), "--models", "tiny", "--generation.grid_size", "4"]) == 78
    assert "--generation.grid_size" in capsys.readouterr().err
    assert cli_main(["generate", "x", "-o", str(tmp_path / "x.ply"), "--seed", "-3"]) == 78
    assert "--seed" in capsys.readouterr().err
