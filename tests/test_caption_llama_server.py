"""Captions come from a real llama.cpp ``llama-server`` through the OpenAI vision API: one
non-empty caption per view, the image actually reaching the model, many views in flight
on a few slots, and a RewardModel that scores a mesh with those real captions.

The server runs the tiny random LLaVA pair (junk text, real code path); see
``tests/llava_fixtures.py``.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from text3d.ops.net import free_port
from text3d.reward.caption import CaptionerConfig, OpenAICaptioner
from text3d.reward.errors import CaptionerUnavailable
from tests.llava_fixtures import LLAVA_TEST_SLOTS, llava_server, start_tiny_llava_server  # noqa: F401

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def noise_view(seed: int, size_px: int = 64) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size_px, size_px, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def client_for(server, **overrides) -> OpenAICaptioner:
    settings = dict(base_url=server.base_url, max_tokens=12, concurrency=LLAVA_TEST_SLOTS, timeout_s=30, retries=1,
                    backoff_s=0.05)
    settings.update(overrides)
    return OpenAICaptioner(CaptionerConfig(**settings))


def test_server_is_ready_on_health_and_models(llava_server):
    with client_for(llava_server) as client:
        assert client.is_ready()
        client.wait_until_ready(timeout_s=1)


def test_one_non_empty_caption_per_view_deterministic_and_image_dependent(llava_server):
    views = [noise_view(i) for i in range(4)] + [Image.new("RGB", (64, 64), "red")]
    with client_for(llava_server) as client:
        first = client.caption(views, prompt="a red chair")
        again = client.caption(views, prompt="a red chair")
    assert len(first) == len(views)
    assert all(isinstance(c, str) and c.strip() for c in first)
    assert again == first  # temperature 0 + fixed seed: every validator sees the same captions
    assert len(set(first)) > 1  # the views reach the model (the old /completion API ignored them)


def test_sixteen_views_in_flight_on_four_slots_are_all_answered(llava_server):
    assets = [[noise_view(10 + 4 * a + v) for v in range(4)] for a in range(4)]
    with client_for(llava_server, concurrency=16) as client:
        captions = client.caption_many(assets, [f"asset {a}" for a in range(4)])
    assert [len(c) for c in captions] == [4, 4, 4, 4]
    assert all(c.strip() for asset in captions for c in asset)


def test_a_server_that_goes_away_raises_captioner_unavailable():
    server = start_tiny_llava_server(slots=1)
    with client_for(server, retries=1, timeout_s=5) as client:
        assert client.caption([noise_view(0)], "x")[0]
        server.stop()
        with pytest.raises(CaptionerUnavailable, match=f"{server.base_url} failed 2 attempts"):  # retries=1, then gone
            client.caption([noise_view(0)], "x")


def test_reward_model_scores_a_mesh_with_real_captions(llava_server):
    from text3d.reward.config import RewardConfig
    from text3d.reward.factory import build_reward_model
    from tests.meshes import coloured_sphere

    config = RewardConfig(n_views=4, resolution_px=64)
    with client_for(llava_server) as captioner:
        model = build_reward_model("tiny", captioner, device="cpu", config=config)
        report = model.score(coloured_sphere(2000, seed=1), "a lumpy colourful ball")
        # the report's captions are exactly what the server says for those rendered views
        direct = captioner.caption(report.images, "ignored: the prompt is not sent")
    assert 0.0 <= report.score <= 1.0
    assert report.invalid_reason is None
    assert report.captioner == captioner.name
    assert "caption" in report.components
    assert [v.caption for v in report.views] == direct
    assert all(v.caption and v.caption_similarity is not None for v in report.views)


def test_cli_serves_the_tiny_model_until_sigterm():
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = subprocess.Popen([sys.executable, "-m", "text3d.cli.main", "llava", "--models", "tiny", "--port", str(port),
                            "-np", "2", "-c", "1024", "-t", "1"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = cli.stdout.readline()
        assert f"ready at http://127.0.0.1:{port}" in line
        with OpenAICaptioner(CaptionerConfig(base_url=f"http://127.0.0.1:{port}", max_tokens=4)) as client:
            assert client.caption([noise_view(3)], "x")[0]
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=20) == 0
        with OpenAICaptioner(CaptionerConfig(base_url=f"http://127.0.0.1:{port}")) as client:
            assert not client.is_ready()  # the llama-server child went with it
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_cli_download_offline_fails_fast_with_one_clear_sentence(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TEXT3D_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "text3d.cli.main", "llava", "--download", "7b"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # a hang guard: offline, nothing is retried
    assert done.returncode == 78  # a set-up error: restarting (pm2) cannot fetch what the network cannot reach
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "HF_HUB_OFFLINE" in done.stderr and "7b" in done.stderr


def test_tiny_pair_has_the_layout_llama_cpp_loads_and_is_built_once(llava_server):
    import gguf

    from text3d.reward.tiny_llava import ensure_tiny_llava

    model_path, mmproj_path = ensure_tiny_llava()
    before = (model_path.stat().st_mtime_ns, mmproj_path.stat().st_mtime_ns)
    assert ensure_tiny_llava() == (model_path, mmproj_path)
    assert (model_path.stat().st_mtime_ns, mmproj_path.stat().st_mtime_ns) == before  # cached, not rewritten

    text = gguf.GGUFReader(str(model_path))
    assert text.fields["general.architecture"].contents() == "llama"
    assert len(text.fields["tokenizer.ggml.tokens"].contents()) == 32000  # the genuine LLaMA vocabulary
    assert text.fields["llama.embedding_length"].contents() == 64
    clip = gguf.GGUFReader(str(mmproj_path))
    assert clip.fields["clip.projector_type"].contents() == "mlp"
    names = {t.name: t for t in clip.tensors}
    assert {"mm.0.weight", "mm.2.weight", "v.patch_embd.weight", "v.class_embd"} <= set(names)
    assert names["mm.2.weight"].shape.tolist()[1] == 64  # projects into the text model's width
