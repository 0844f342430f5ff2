"""Generation on a Ray cluster: a Ray Serve deployment, one replica per GPU, behind the miner's pool.

    miner (RayPool) --handle.generate.remote(prompt, seed, timeout_s)--> GenerationReplica x N
                                                                         each a GenerationWorker
                                                                         (generator, encoder, queue)

``--generation.ray_address`` names the cluster: ``auto`` on a cluster node, ``HOST:6379``
(the head's GCS), or ``ray://HOST:10001`` (Ray Client). ``RayPool.from_settings`` connects
and sizes the deployment: ``--generation.ray_replicas`` replicas (0: one per GPU of the
cluster), each reserving ``--generation.ray_num_gpus`` GPUs (1: Ray gives each replica its
own GPU through ``CUDA_VISIBLE_DEVICES``, so its ``cuda`` is that GPU; 0: CPU replicas) and
``--generation.ray_num_cpus`` CPUs. ``start()`` starts Serve without its HTTP proxy and
deploys the application ``--generation.ray_app`` (or updates it in place); every replica
builds the miner's own ``--generation.backend`` and options, warms up, and only then takes
requests. Every node needs text3d installed (the replicas import this module).

Routing and health are Ray Serve's: a request goes to the less loaded of two replicas
(``max_ongoing_requests`` each: ``--generation.endpoint_concurrency`` or
``--miner.max_batch_size``), ``check_health`` is polled and a dead replica replaced. The
pool passes each request's remaining time down (the replica's queue never starts what
cannot finish), cancels it at its deadline, and retries on another replica when one dies
mid-request or refuses (503) while time is left. The application keeps running when the
miner exits, so a restart finds it warm; ``serve.delete(app)`` (or ``serve shutdown -y``)
removes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from typing import Any, Callable, Sequence

from text3d.generation.interface import GeneratorSpec
from text3d.miner.pool import Result
from text3d.protocol.errors import ConfigError, GenerationError
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import MAX_TIMEOUT_S

__all__ = ["GenerationReplica", "RayPool", "FORWARDED_ENV"]

log = logging.getLogger("text3d.miner.pool")
Clock = Callable[[], float]
FORWARDED_ENV = ("TEXT3D_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE")
"""Environment variables the miner hands to its replicas (model caches, offline mode)."""


class GenerationReplica:
    """One Ray Serve replica: a ``GenerationWorker`` on the replica's device (built in its own process)."""

    def __init__(self, spec: GeneratorSpec, server: dict[str, Any]) -> None:
        from text3d.miner.generation_server import GenerationWorker
        from text3d.miner.encoding import encode_for_wire
        from text3d.settings import ServerSettings

        settings = ServerSettings(**server)
        self.worker = GenerationWorker.from_settings(spec.build(), settings, encode_for_wire)
        if settings.warmup:
            self.worker.warm_up()
        self.pid = os.getpid()

    async def generate(self, prompt: str, seed: int, timeout_s: float) -> dict[str, Any]:
        """``WorkerAnswer`` as a dict (status 200 with the payload, or 503/500 with a detail), plus the pid."""
        answer = await self.worker.submit(prompt, seed, timeout_s, caller="ray")
        return {**dataclasses.asdict(answer), "replica_pid": self.pid}

    def stats(self) -> dict[str, Any]:
        return {"pid": self.pid, **self.worker.stats()}

    def check_health(self) -> None:
        """Serve's health probe: the replica's event loop answers, so it is alive."""


class RayPool:
    """The miner's pool over a Ray Serve deployment of ``GenerationReplica``."""

    executor = None

    def __init__(
        self,
        address: str,
        spec: GeneratorSpec,
        server: dict[str, Any],
        *,
        replicas: int,
        num_gpus: float,
        num_cpus: float,
        max_ongoing_requests: int,
        app_name: str = "text3d-generation",
        max_attempts: int = 3,
        clock: Clock = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.address = address
        self.spec = spec
        self.server = dict(server)
        self.workers = replicas
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus
        self.max_ongoing_requests = max_ongoing_requests
        self.app_name = app_name
        self.max_attempts = max_attempts
        self._clock = clock
        self._handle: Any = None
        self.answered = 0
        self.retried = 0

    @classmethod
    def from_settings(cls, settings: Any) -> "RayPool":
        """Check the backend here, connect to the cluster, size the deployment; ``ConfigError`` otherwise."""
        generation, miner = settings.generation, settings.miner
        spec = generation.spec(models=settings.models, device="cuda" if generation.ray_num_gpus > 0 else "cpu",
                               max_batch_size=miner.max_batch_size)  # fmt: skip
        spec.check()
        connect(generation.ray_address)
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        replicas = generation.ray_replicas
        if replicas == 0:
            if generation.ray_num_gpus == 0:
                raise ConfigError("--generation.ray_replicas 0 means one replica per GPU, but "
                                  "--generation.ray_num_gpus is 0: say how many CPU replicas with "
                                  "--generation.ray_replicas.")  # fmt: skip
            replicas = int(gpus // generation.ray_num_gpus)
            if replicas == 0:
                raise ConfigError(f"the Ray cluster at {generation.ray_address} has no GPU: add GPU nodes, or run CPU "
                                  "replicas with --generation.ray_num_gpus 0 --generation.ray_replicas N.")  # fmt: skip
        server = {"format": miner.format, "max_batch_size": miner.max_batch_size,
                  "batch_window_s": miner.batch_window_s, "max_queue": miner.max_queue,
                  "max_timeout_s": miner.max_timeout_s}  # fmt: skip
        return cls(generation.ray_address, spec, server, replicas=replicas, num_gpus=generation.ray_num_gpus,
                   num_cpus=generation.ray_num_cpus, app_name=generation.ray_app,
                   max_ongoing_requests=generation.endpoint_concurrency or miner.max_batch_size)  # fmt: skip

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Deploy (or update) the application and wait until every replica has loaded and warmed up."""
        self._handle = await asyncio.to_thread(self._deploy)
        log.info("Ray Serve application %r: %d replicas (%g GPU, %g CPU each) on %s", self.app_name, self.workers,
                 self.num_gpus, self.num_cpus, self.address)  # fmt: skip

    def _deploy(self) -> Any:
        connect(self.address)
        from ray import serve

        serve.start(proxy_location="Disabled")
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        deployment = serve.deployment(
            GenerationReplica,
            name="generation",
            num_replicas=self.workers,
            ray_actor_options={"num_gpus": self.num_gpus, "num_cpus": self.num_cpus,
                               **({"runtime_env": {"env_vars": env}} if env else {})},  # fmt: skip
            max_ongoing_requests=self.max_ongoing_requests,
            health_check_period_s=5.0,
            health_check_timeout_s=30.0,
            logging_config={"enable_access_log": False},
        )
        return serve.run(deployment.bind(self.spec, self.server), name=self.app_name, route_prefix=None)

    async def close(self) -> None:
        self._handle = None  # the application keeps running for the next start (see the module docstring)

    def health(self) -> dict[str, Any]:
        return {"pool": "ray", "address": self.address, "app": self.app_name, "replicas": self.workers,
                "answered": self.answered, "retried": self.retried}  # fmt: skip

    # -- generation --------------------------------------------------------------------------

    async def generate(self, prompts: Sequence[str], seeds: Sequence[int], deadlines: Sequence[float]) -> list[Result]:
        return list(await asyncio.gather(*(self._one(p, s, d) for p, s, d in zip(prompts, seeds, deadlines))))

    async def _one(self, prompt: str, seed: int, deadline: float) -> Result:
        from ray.exceptions import RayError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        assert self._handle is not None, "start() the pool first"
        error: Exception | None = None
        for attempt in range(self.max_attempts):
            remaining_s = deadline - self._clock()
            if remaining_s <= 0.01:
                return None
            if attempt:
                self.retried += 1
            response = self._handle.generate.remote(prompt, seed, min(remaining_s, MAX_TIMEOUT_S))
            try:
                async with asyncio.timeout(remaining_s):
                    answer = await response
            except TimeoutError:
                response.cancel()
                return None
            except (RayError, BackPressureError, DeploymentUnavailableError) as exc:  # a replica died or is gone
                log.warning("Ray replica failed a request (%s); trying another", type(exc).__name__)
                continue
            if answer["status"] == 200:
                self.answered += 1
                return answer["payload"], MeshFormat(answer["format"])
            if answer["status"] != 503:  # 503: that replica cannot finish in time; another may
                error = GenerationError(f"Ray replica {answer.get('replica_pid')}: {answer['detail']}")
        return error


def connect(address: str) -> None:
    """``ray.init(address)`` once per process, quietly; ``ConfigError`` when Ray is missing or
    unreachable (``text3d.ops.ray_cluster.connect``, shared with the asset library)."""
    from text3d.ops.ray_cluster import connect as join

    join(address, flag="--generation.ray_address", modules=("ray.serve",),
         install="pip install 'text3d[ray]' (ray[serve]==2.60.0)")
