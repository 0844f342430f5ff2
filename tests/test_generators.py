"""Any generator is a backend named by its import path, with its own settings section.

Pinned: ``--generation.backend package.module:Class`` loads the class; a path that is not
one, a module that is missing, a class that is not a backend and options its ``Options``
model refuses are each one sentence naming the flag (never a traceback); the default
backend is Shap-E, whose options are the ``--generation.*`` flags plus any
``[generation.backend_options]`` key of ``GenerationConfig``; sample and decode run apart
and together give what ``generate`` gives; the procedural second backend answers the
prompt's shape and colour words, deterministically per seed, with meshes the wire
accepts; the minimal backend of ``docs/generators.md`` works as printed; the settings
of the pools (endpoints, Ray) and of the generation server parse
and refuse with a sentence; the interface and the pool import neither torch nor bittensor.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from text3d.generation.interface import (
    DEFAULT_BACKEND,
    BackendContext,
    Generator,
    GeneratorSpec,
    TwoStageGenerator,
    load_backend,
    parse_options,
)
from text3d.generation.primitives import PrimitiveGenerator, PrimitiveOptions
from text3d.settings import build_parser, load_settings
from text3d.protocol.errors import ConfigError
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh

REPO = Path(__file__).resolve().parent.parent
PRIMITIVES = "text3d.generation.primitives:PrimitiveGenerator"
TINY_FLAGS = ["--models", "tiny", "--device", "cpu", "--generation.steps", "2", "--generation.grid_size", "16"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.upper().startswith("TEXT3D_") and name != "TEXT3D_CACHE":
            monkeypatch.delenv(name)


# -- loading by import path ---------------------------------------------------------------------


@pytest.mark.parametrize("path, says", [
    ("primitives", "expected package.module:Class"),
    ("generation.nowhere:Thing", "no module named 'generation.nowhere'"),
    ("text3d.generation.primitives:Nothing", "has no 'Nothing'"),
    ("text3d.generation.mesh:to_trimesh", "is not a generator backend"),
    ("text3d.generation.primitives:Primitive", "is not a generator backend"),
])  # fmt: skip
def test_a_bad_backend_path_is_one_sentence_naming_the_flag(path, says):
    with pytest.raises(ConfigError) as caught:
        load_backend(path)
    message = str(caught.value)
    assert message.startswith(f"--generation.backend {path!r}: ") and says in message
    assert message.endswith(".") and "\n" not in message


def test_a_module_that_fails_inside_is_not_called_missing(tmp_path, monkeypatch):
    (tmp_path / "broken_backend.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"importing it failed: No module named 'no_such_dependency_here'"):
        load_backend("broken_backend:Generator")


@pytest.mark.parametrize("options, starts", [
    ({"subdivisions": 9}, "--generation.backend_options.subdivisions 9: input should be less than or equal to 5."),
    ({"default_shape": "teapot"}, "--generation.backend_options.default_shape 'teapot': input should be 'box'"),
    ({"colour": "red"}, "--generation.backend_options.colour is not an option of PrimitiveGenerator (its options: "
                        "subdivisions, default_shape)."),
])  # fmt: skip
def test_options_are_checked_by_the_backends_own_model(options, starts):
    with pytest.raises(ConfigError) as caught:
        parse_options(PrimitiveGenerator, options)
    assert str(caught.value).startswith(starts), str(caught.value)
    assert parse_options(PrimitiveGenerator, {"subdivisions": 2}) == PrimitiveOptions(subdivisions=2)


def test_the_backend_and_its_options_come_from_the_config_file(tmp_path):
    config = tmp_path / "miner.toml"
    config.write_text(f'[generation]\nbackend = "{PRIMITIVES}"\n\n[generation.backend_options]\n'
                      'subdivisions = 2\ndefault_shape = "box"\n')  # fmt: skip
    settings = load_settings("miner", ["--config", str(config), "--models", "tiny"])
    spec = settings.generation.spec(models=settings.models, device="cpu", max_batch_size=3)
    assert spec == GeneratorSpec(PRIMITIVES, {"subdivisions": 2, "default_shape": "box"},
                                 BackendContext(device="cpu", max_batch_size=3, models="tiny"))  # fmt: skip
    generator = spec.build()
    assert isinstance(generator, PrimitiveGenerator) and generator.options.default_shape == "box"


def test_backend_options_from_the_environment_are_json(monkeypatch):
    monkeypatch.setenv("TEXT3D_GENERATION__BACKEND", PRIMITIVES)
    monkeypatch.setenv("TEXT3D_GENERATION__BACKEND_OPTIONS", '{"subdivisions": 1}')
    settings = load_settings("miner", [])
    assert settings.generation.spec(models="real", device="cpu", max_batch_size=4).build().options.subdivisions == 1


def test_options_the_backend_refuses_stop_the_build_not_the_settings(tmp_path):
    config = tmp_path / "miner.toml"
    config.write_text(f'[generation]\nbackend = "{PRIMITIVES}"\nbackend_options = {{ subdivisons = 2 }}\n')
    spec = load_settings("miner", ["--config", str(config)]).generation.spec(models="real", device="cpu",
                                                                            max_batch_size=4)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^--generation\.backend_options\.subdivisons is not an option"):
        spec.check()


# -- Shap-E, the default ------------------------------------------------------------------------------


def test_shap_e_is_the_default_and_its_flags_are_its_options():
    settings = load_settings("miner", [*TINY_FLAGS, "--generation.guidance", "3"])
    spec = settings.generation.spec(models="tiny", device="cpu", max_batch_size=2)
    assert spec.backend == DEFAULT_BACKEND == "text3d.generation.shap_e:ShapEGenerator"
    assert spec.options == {"num_inference_steps": 2, "guidance_scale": 3.0, "grid_size": 16, "dtype": "auto",
                            "show_progress": False}  # fmt: skip
    generator = spec.build()
    assert generator.config.num_inference_steps == 2 and generator.config.grid_size == 16
    assert generator.config.max_batch_size == 2 and str(generator.device) == "cpu"


def test_shap_e_samples_and_decodes_apart_and_together_the_same():
    generator = GeneratorSpec(DEFAULT_BACKEND, {"num_inference_steps": 2, "grid_size": 16, "guidance_scale": 3.0},
                              BackendContext(device="cpu", models="tiny")).build()  # fmt: skip
    assert isinstance(generator, TwoStageGenerator)
    latents = generator.sample(["a red chair", "a lamp"], [1, 2])
    assert tuple(latents.shape[:1]) == (2,)
    apart = generator.decode(latents)
    together = generator.generate(["a red chair", "a lamp"], [1, 2])
    for a, b in zip(apart, together):
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)
        assert np.array_equal(a.visual.vertex_colors, b.visual.vertex_colors)


def test_extra_shap_e_options_come_from_backend_options(tmp_path):
    config = tmp_path / "miner.toml"
    config.write_text("[generation.backend_options]\nquery_batch_size = 512\n")
    settings = load_settings("miner", ["--config", str(config), *TINY_FLAGS])
    generator = settings.generation.spec(models="tiny", device="cpu", max_batch_size=4).build()
    assert generator.config.query_batch_size == 512 and generator.config.grid_size == 16
    config.write_text("[generation.backend_options]\nquery_batch = 512\n")
    spec = load_settings("miner", ["--config", str(config)]).generation.spec(models="tiny", device="cpu",
                                                                            max_batch_size=4)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^--generation\.backend_options\.query_batch is not an option of "
                                          r"ShapEGenerator"):  # fmt: skip
        spec.check()


# -- the procedural backend -------------------------------------------------------------------------------


def test_primitives_follow_the_prompts_words_and_the_seed():
    generator = PrimitiveGenerator(PrimitiveOptions(subdivisions=2))
    assert isinstance(generator, TwoStageGenerator) and isinstance(generator, Generator)
    box, ball, thing = generator.generate(["a red cube", "a blue ball", "a chair"], [1, 2, 3])
    assert len(box.faces) == 12 * 4**4 and len(ball.faces) == 20 * 4**3 and len(thing.faces) == len(ball.faces)
    rgb = np.array(generator.sample(["a red cube"], [1])[0].rgb)
    colours = box.visual.vertex_colors[:, :3].astype(int)  # the shade in bands of 0.6-1.0 of it
    assert (colours <= rgb + 1).all() and (colours >= 0.6 * rgb - 1).all() and colours[:, 0].std() > 5
    red, green, blue = colours.mean(axis=0)
    assert red > 120 and green < 60 and blue < 60
    again = generator.generate(["a red cube"], [1])[0]
    other_seed = generator.generate(["a red cube"], [99])[0]
    assert np.array_equal(again.vertices, box.vertices) and not np.allclose(other_seed.vertices, box.vertices)
    # different seeds are different objects, not one shape stretched (the copycat rule would join those)
    from text3d.reward.defences.fingerprint import fingerprint, same_object

    assert not same_object(fingerprint(box), fingerprint(other_seed))
    for mesh in (box, ball, thing):
        assert mesh.visual.vertex_colors.dtype == np.uint8 and mesh.visual.vertex_colors.shape[1] == 4
        assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)
        assert mesh.is_watertight


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_primitives_cross_the_wire(fmt):
    for mesh in PrimitiveGenerator().generate(["green torus", "orange cone", "pill", "can"], [5, 6, 7, 8]):
        decoded = decode_mesh(encode_mesh(mesh, fmt))
        assert len(decoded.faces) == len(mesh.faces)


# -- pool and server settings ---------------------------------------------------------------------------------


def test_endpoints_are_urls_and_one_pool_at_a_time():
    settings = load_settings("miner", ["--generation.endpoints", " http://10.0.0.2:8093/, http://[::1]:8094"])
    assert settings.generation.endpoint_urls == ("http://10.0.0.2:8093", "http://[::1]:8094")
    assert load_settings("miner", []).generation.endpoint_urls == ()
    cases = [("10.0.0.2:8093", "is not http://HOST:PORT"), ("http://a:1/generate", "is not http://HOST:PORT"),
             ("http://a:1,http://a:1", "listed twice")]
    for value, says in cases:
        with pytest.raises(ConfigError) as caught:
            load_settings("miner", ["--generation.endpoints", value])
        assert str(caught.value).startswith(f"--generation.endpoints {value}: ") and says in str(caught.value)
    with pytest.raises(ConfigError, match=r"^--generation\.ray_address auto: cannot be used with "
                                          r"--generation\.endpoints: pick one pool\.$"):  # fmt: skip
        load_settings("miner", ["--generation.endpoints", "http://a:1", "--generation.ray_address", "auto"])


def test_the_generation_server_has_its_own_flags_and_secrets_are_not_flags():
    flags = {option for action in build_parser("generation-server")._actions for option in action.option_strings}
    assert {"--server.ip", "--server.port", "--server.max_batch_size", "--generation.backend", "--models"} <= flags
    assert not {"--axon.port", "--wallet.name", "--miner.max_batch_size", "--server.token"} & flags
    miner = {option for action in build_parser("miner")._actions for option in action.option_strings}
    assert {"--generation.endpoints", "--generation.ray_address", "--generation.ray_replicas"} <= miner
    assert "--generation.token" not in miner and not any(flag.startswith("--server.") for flag in miner)
    settings = load_settings("generation-server", ["--server.port", "9000"])
    assert settings.server.ip == "127.0.0.1" and settings.server.port == 9000 and settings.server.token is None


@pytest.mark.parametrize("module", ["text3d.generation.interface", "text3d.generation.primitives", "text3d.miner.pool"])
def test_the_interface_and_the_pool_import_neither_torch_nor_bittensor(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'bittensor', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# -- the documentation's minimal backend ----------------------------------------------------------------------


def test_the_minimal_backend_of_the_docs_loads_by_its_path_and_crosses_the_wire(tmp_path, monkeypatch):
    from text3d.miner.encoding import encode_for_wire

    text = (REPO / "docs" / "generators.md").read_text()
    code = text.split("## A minimal backend", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    package = tmp_path / "my_generators"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "spheres.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = GeneratorSpec("my_generators.spheres:SphereGenerator", {"subdivisions": 2})
    generator = spec.build()
    first, second = generator.generate(["a red chair", "a red chair"], [1, 2])
    assert len(first.faces) == 320 and not np.array_equal(first.visual.vertex_colors, second.visual.vertex_colors)
    payload, fmt = encode_for_wire(first, MeshFormat.DRACO)
    assert len(decode_mesh(payload).faces) == 320
    with pytest.raises(ConfigError, match=r"^--generation\.backend_options\.subdivisons is not an option of "
                                          r"SphereGenerator \(its options: subdivisions\)\.$"):  # fmt: skip
        GeneratorSpec("my_generators.spheres:SphereGenerator", {"subdivisons": 2}).check()
