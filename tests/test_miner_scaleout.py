"""One miner, its generation elsewhere: real processes on the devnet, signed requests, tiny models.

Pinned:
- a miner over two ``text3d generation-server`` processes keeps answering when one is
  killed (SIGKILL, mid-load): every request, each with a deadline it could meet, is
  answered with a mesh that decodes; both servers did work, and the miner marked the dead
  one down;
- a second backend, named by its import path with its options in the ``--config`` file,
  answers through the same miner: a red box for "a red cube", a blue sphere for "a blue
  ball", the configured default shape for a prompt naming none, another stretch for another seed.
"""

import os
import signal
import threading

import numpy as np
import pytest

from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.ops.net import free_port
from text3d.protocol.mesh_codec import decode_mesh
from tests.devnet_miner import ask, child_env, generation_server_argv, wait_ready
from tests.generation_fixtures import primitive_faces
from text3d.common.paths import source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_miner_over_two_generation_servers_survives_losing_one_mid_load(tmp_path):
    subnet = LocalSubnet.create(tmp_path, miners=("miner",))
    ports = [free_port(), free_port()]
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=child_env()) as group:
        servers = [group.start(f"server{i}", generation_server_argv(port, "--server.max_batch_size", "2"))
                   for i, port in enumerate(ports)]  # fmt: skip
        for port in ports:
            wait_ready(port, group)
        miner_port = free_port()
        endpoints = ",".join(f"http://127.0.0.1:{port}" for port in ports)
        miner = group.start("miner", subnet.miner_argv("miner", miner_port, extra=[
            "--generation.endpoints", endpoints, "--generation.health_interval_s", "0.5",
            "--miner.max_in_flight_per_caller", "64", "--miner.max_queue", "64",
        ]))  # fmt: skip
        wait_until(lambda: subnet.serving(["miner"]), timeout_s=180, what="the miner serving", check=group.check_alive)

        killed = threading.Event()
        answered_before_kill = []

        def kill_first_server_after_a_few(i, answer):
            answered_before_kill.append(i)
            if len(answered_before_kill) == 6 and not killed.is_set():
                os.killpg(servers[0].pid, signal.SIGKILL)
                killed.set()

        answers = ask(subnet, "miner", miner_port, [f"a thing number {i}" for i in range(36)], timeout_s=45.0,
                      concurrency=6, on_answer=kill_first_server_after_a_few)  # fmt: skip
        assert killed.is_set()
        servers[0].popen.wait(timeout=30)
        group.check_alive(servers[0])
        miner_log = miner.log_tail(400)

    failed = [(i, a.status, a.detail) for i, a in enumerate(answers) if a.status != "ok"]
    assert not failed, failed
    for answer in answers:
        mesh = decode_mesh(answer.body)
        assert len(mesh.faces) > 0 and mesh.visual.vertex_colors.shape[1] == 4
    server_logs = [(subnet.logs_dir / f"server{i}.log").read_text() for i in range(2)]
    assert "generation server ready" in server_logs[0] and "generation server ready" in server_logs[1]
    assert f"generation server http://127.0.0.1:{ports[0]}" in miner_log, miner_log  # marked down, said so


def test_a_second_backend_by_import_path_answers_through_the_same_miner(tmp_path):
    subnet = LocalSubnet.create(tmp_path, miners=("miner",))
    config = tmp_path / "miner.toml"
    config.write_text('[generation]\nbackend = "text3d.generation.primitives:PrimitiveGenerator"\n\n'
                      '[generation.backend_options]\nsubdivisions = 2\ndefault_shape = "box"\n')  # fmt: skip
    port = free_port()
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=child_env()) as group:
        group.start("miner", subnet.miner_argv("miner", port, extra=["--config", str(config)]))
        wait_until(lambda: subnet.serving(["miner"]), timeout_s=180, what="the miner serving", check=group.check_alive)
        prompts = ["a red cube", "a blue ball", "a chair", "a red cube"]
        cube, ball, chair, cube_again = ask(subnet, "miner", port, prompts)
    for answer in (cube, ball, chair):
        assert answer.status == "ok", answer.detail
    cube_mesh, ball_mesh, chair_mesh = (decode_mesh(a.body) for a in (cube, ball, chair))
    box_faces = primitive_faces("box", 2)  # the options in the config file, not the defaults
    assert len(cube_mesh.faces) == box_faces and len(chair_mesh.faces) == box_faces  # no shape word: the default, a box
    assert len(ball_mesh.faces) == primitive_faces("ball", 2) != box_faces
    # the prompts' colours, shaded in bands: red and blue lead their meshes' mean colours by far
    red = cube_mesh.visual.vertex_colors[:, :3].astype(float).mean(axis=0)
    blue = ball_mesh.visual.vertex_colors[:, :3].astype(float).mean(axis=0)
    assert red[0] > 2 * max(red[1], red[2]) and blue[2] > 2 * max(blue[0], blue[1])
    assert cube_again.status == "ok"  # seeds are the prompt's index: a different seed, a different stretch
    assert not np.allclose(decode_mesh(cube_again.body).vertices, cube_mesh.vertices)
