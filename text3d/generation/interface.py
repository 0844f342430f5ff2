"""The generator interface: prompts and seeds in, coloured meshes out; any model by import path.

    Generator          generate(prompts, seeds) -> list[trimesh.Trimesh]   one mesh per prompt, in order
    TwoStageGenerator  sample(prompts, seeds) -> latents                   the expensive, batched part
                       decode(latents) -> list[trimesh.Trimesh]            latents to meshes
    Backend            a Generator class with ``Options`` (its pydantic settings section)
                       and ``from_options(options, context)`` (loads weights, returns the generator)

A miner names its backend with ``--generation.backend package.module:Class`` (default:
Shap-E, ``text3d.generation.shap_e:ShapEGenerator``) and gives it its own settings as the table
``[generation.backend_options]`` of the ``--config`` file, which the backend's
``Options`` model validates (unknown keys are errors). ``GeneratorSpec`` carries backend,
options and context as plain data, so the same generator can be built in this process,
in a generation server or in a Ray replica on another machine.

Contract of every mesh a generator returns (what the miner encodes and validators score):
a ``trimesh.Trimesh`` with triangle faces and colours -- per-vertex (``visual.vertex_colors``,
uint8 RGBA) or a base-colour texture (kept in GLB, baked to vertex colours for Draco and
PLY) -- +Y up, front +Z, centred in the unit sphere (see ``text3d.generation.mesh``).
``seeds`` are integers in [0, MAX_SEED] (``text3d.protocol.wire``: the wire's uint32 range); the same prompt, seed, settings
and device give the same mesh. A generator need not be thread-safe: the callers run it
on one worker thread. Errors are ``GenerationError`` (or any exception: it fails that
batch only).

Nothing here imports torch or a backend: loading happens in ``GeneratorSpec.build``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Protocol, Sequence, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from text3d.protocol.errors import ConfigError

if TYPE_CHECKING:
    import trimesh

__all__ = [
    "DEFAULT_BACKEND",
    "BACKEND_FLAG",
    "OPTIONS_FLAG",
    "Generator",
    "TwoStageGenerator",
    "Backend",
    "NoOptions",
    "BackendContext",
    "GeneratorSpec",
    "load_backend",
    "parse_options",
]

DEFAULT_BACKEND = "text3d.generation.shap_e:ShapEGenerator"
BACKEND_FLAG = "--generation.backend"
OPTIONS_FLAG = "--generation.backend_options"


@runtime_checkable
class Generator(Protocol):
    """Prompts -> meshes. ``len(result) == len(prompts)``; ``result[i]`` answers ``prompts[i]``."""

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list["trimesh.Trimesh"]: ...


@runtime_checkable
class TwoStageGenerator(Generator, Protocol):
    """A generator whose sampling and decoding can run apart ("sample, then decode").

    ``generate(p, s)`` must equal ``decode(sample(p, s))``. Tests, caches and benchmarks
    stop after ``sample``; the latents' type is the backend's own (a tensor for Shap-E).
    """

    def sample(self, prompts: Sequence[str], seeds: Sequence[int]) -> Any: ...

    def decode(self, latents: Any) -> list["trimesh.Trimesh"]: ...


class NoOptions(BaseModel):
    """The options of a backend that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BackendContext:
    """What every backend is told besides its own options.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``auto``: the backend picks;
            in a Ray replica with a GPU, ``cuda`` is the replica's own GPU).
        max_batch_size: prompts the caller sends together at most.
        models: ``real`` (production weights) or ``tiny`` (offline test-size weights, where the
            backend has them; a backend without may ignore it).
    """

    device: str = "auto"
    max_batch_size: int = 4
    models: Literal["real", "tiny"] = "real"


class Backend(Protocol):
    """A class usable as ``--generation.backend``: a settings model and a loader."""

    Options: ClassVar[type[BaseModel]]

    @classmethod
    def from_options(cls, options: Any, context: BackendContext) -> Generator: ...


def load_backend(path: str) -> type:
    """The class named by ``package.module:Class``; ``ConfigError`` naming the flag if it is not one."""
    module_name, sep, attribute = path.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{BACKEND_FLAG} {path!r}: expected package.module:Class, e.g. {DEFAULT_BACKEND}.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):  # it, not something it imports
            missing = f"{BACKEND_FLAG} {path!r}: no module named {module_name!r} on this Python path."
            raise ConfigError(missing) from None
        raise ConfigError(f"{BACKEND_FLAG} {path!r}: importing it failed: {exc}.") from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"{BACKEND_FLAG} {path!r}: module {module_name!r} has no {attribute!r}.")
    if not isinstance(target, type) or not callable(getattr(target, "from_options", None)):
        raise ConfigError(
            f"{BACKEND_FLAG} {path!r}: {attribute} is not a generator backend (a class with Options and "
            "from_options(options, context)); see docs/generators.md."
        )
    if not callable(getattr(target, "generate", None)):
        raise ConfigError(f"{BACKEND_FLAG} {path!r}: {attribute} has no generate(prompts, seeds) method.")
    return target


def parse_options(backend: type, options: Mapping[str, Any]) -> BaseModel:
    """``options`` validated by ``backend.Options``; ``ConfigError`` naming the option otherwise."""
    model: type[BaseModel] = getattr(backend, "Options", NoOptions)
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        flag = f"{OPTIONS_FLAG}.{where}" if where else OPTIONS_FLAG
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise ConfigError(f"{flag} is not an option of {backend.__name__} (its options: {known}).") from None
        value = error.get("input")
        shown = "" if isinstance(value, (dict, list)) or value is None else f" {value!r}"
        raise ConfigError(f"{flag}{shown}: {message[0].lower() + message[1:]}.") from None


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build a generator anywhere: plain, picklable data (Ray ships it to its replicas).

    ``options`` is the raw table; it is validated by the backend's ``Options`` on ``check``
    and again on ``build``, in the process that builds.
    """

    backend: str = DEFAULT_BACKEND
    options: Mapping[str, Any] = field(default_factory=dict)
    context: BackendContext = BackendContext()

    def check(self) -> tuple[type, BaseModel]:
        """Import the backend and validate the options, without loading any weights."""
        backend = load_backend(self.backend)
        return backend, parse_options(backend, self.options)

    def build(self) -> Generator:
        """Load the generator (weights and all); raises ``ConfigError`` / ``GenerationError``."""
        backend, options = self.check()
        return backend.from_options(options, self.context)

    def with_device(self, device: str) -> "GeneratorSpec":
        return GeneratorSpec(self.backend, dict(self.options), BackendContext(
            device=device, max_batch_size=self.context.max_batch_size, models=self.context.models))
