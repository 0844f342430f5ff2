"""A miner whose generation runs as a Ray Serve deployment, end to end on the devnet.

The test starts its own local Ray cluster (``ray.init(num_cpus=2)``: the head in this
process's children, CPU only) and shuts it down at the end. Pinned: a miner process given
``--generation.ray_address`` joins that cluster and deploys two CPU replicas of its own
generator (tiny Shap-E), each in its own process (finding the cluster's auth token itself);
it serves concurrent signed requests with
meshes that decode, and a real validator process scores it on the devnet in one step
(status ok, a score above 0) -- the same miner as in process, only its
generation elsewhere.
"""

import json
import os

import pytest

from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.ops.net import free_port
from text3d.protocol.mesh_codec import decode_mesh
from tests.devnet_miner import ask, child_env, validator_argv
from text3d.common.paths import source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

APP = "text3d-generation-test"


@pytest.fixture
def ray_cluster():
    """A local Ray cluster for this test only; its GCS address. Shut down (with Serve) afterwards."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray  # the ray extra is part of the dev extra: installed, never skipped
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}})  # fmt: skip
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def test_a_ray_serve_deployment_serves_the_miner_end_to_end(tmp_path, ray_cluster):
    from ray import serve

    subnet = LocalSubnet.create(tmp_path, miners=("miner",))
    port = free_port()
    env = child_env()
    env.pop("RAY_AUTH_MODE", None)  # as in an operator's shell: ray.init() set it here, the miner must find the token
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=env) as group:
        group.start("miner", subnet.miner_argv("miner", port, extra=[
            "--generation.ray_address", ray_cluster, "--generation.ray_replicas", "2",
            "--generation.ray_num_gpus", "0", "--generation.ray_num_cpus", "0.5", "--generation.ray_app", APP,
            "--miner.max_in_flight_per_caller", "16",
        ]))  # fmt: skip
        wait_until(lambda: subnet.serving(["miner"]), timeout_s=240, what="the miner serving on its Ray replicas",
                   check=group.check_alive)  # fmt: skip
        status = serve.status().applications[APP]
        assert status.status == "RUNNING"
        assert status.deployments["generation"].replica_states == {"RUNNING": 2}

        answers = ask(subnet, "miner", port, [f"a lamp {i}" for i in range(8)], timeout_s=45.0, concurrency=8)
        for answer in answers:
            assert answer.status == "ok", answer.detail
            assert len(decode_mesh(answer.body).faces) > 0

        validator = group.start("validator", validator_argv(subnet, max_steps=1, captioner="none"))
        wait_until(lambda: not validator.running(), timeout_s=240, what="the validator's step",
                   check=lambda: group.check_alive(validator))  # fmt: skip
        assert validator.popen.returncode == 0, validator.log_tail()

    step = json.loads((subnet.reports_dir / "step_000001" / "step.json").read_text())
    (outcome,) = [m for m in step["miners"] if m["uid"] == subnet.uids["miner"]]
    assert outcome["status"] == "ok", outcome
    assert outcome["score"] > 0.0  # "ok": answered within the step's deadline
