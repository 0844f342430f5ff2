"""A miner's generation pool: several batches at once, least loaded first, failover, deadlines passed down.

Pinned rules of the ``GenerationQueue`` with ``workers``: with two workers two batches run
at once (one worker: one after the other, as before), the wait estimate counts the workers,
and an async ``work`` is told each request's deadline.

Pinned rules of the ``EndpointPool`` over real generation servers on 127.0.0.1: requests go
to the least loaded ready endpoint and never more than ``capacity`` to one at a time; an
endpoint that is down gets nothing until its ``/ready`` answers, then gets its share; an
endpoint that dies mid-request (the connection reset) is marked down and the request is
answered by another; each server is told the time left (``timeout_s``), and when every
server says it cannot finish in time the answer is ``None`` (the miner's 503) at once; a
generator failure is tried on another endpoint and reported only if every one fails; a token
the servers refuse leaves the endpoint not ready with a sentence naming the flags.
"""

import asyncio
import socket
import threading
import time

import pytest

from text3d.miner.pool import GENERATE_ROUTE, EndpointPool, InProcessPool
from text3d.miner.queue import GenerationQueue
from text3d.miner.encoding import encode_for_wire
from text3d.protocol.errors import GenerationError
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from tests.generation_fixtures import TimedGenerator, primitive_faces, served_generation_server
from tests.loopback import free_socket

FAR = 10**9


def url(served) -> str:
    return f"http://127.0.0.1:{served.port}"


def run_pool(pool, coroutine_fn):
    async def go():
        await pool.start()
        try:
            return await coroutine_fn()
        finally:
            await pool.close()

    return asyncio.run(go())


def assert_meshes(results):
    for result in results:
        assert isinstance(result, tuple), result
        payload, fmt = result
        assert fmt is MeshFormat.DRACO and len(decode_mesh(payload).faces) > 0


# -- the queue with several workers -------------------------------------------------------------------


class GatedWork:
    """Async ``work(prompts, seeds, deadlines)``: records, and holds each batch until released."""

    def __init__(self):
        self.calls, self.running, self.peak = [], 0, 0
        self.release = asyncio.Event()

    async def __call__(self, prompts, seeds, deadlines):
        self.calls.append((list(prompts), list(deadlines)))
        self.running += 1
        self.peak = max(self.peak, self.running)
        await self.release.wait()
        self.running -= 1
        return [f"mesh {p}" for p in prompts]


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_batches_run_at_once_and_async_work_gets_the_deadlines(workers):
    work = GatedWork()
    queue = GenerationQueue(work, None, max_batch_size=2, window_s=0.01, max_queue=32, max_in_flight_per_caller=32,
                            workers=workers)  # fmt: skip

    async def go():
        submits = [asyncio.ensure_future(queue.submit(f"p{i}", i, FAR - i, caller="v", stake=1.0)) for i in range(6)]
        await asyncio.sleep(0.3)
        running_before_release = work.peak
        queue.expected_batch_s = 1.0
        estimate = queue.estimated_wait_s(1.0)
        work.release.set()
        results = await asyncio.gather(*submits)
        await queue.close()
        return running_before_release, estimate, results

    running, estimate, results = asyncio.run(go())
    assert running == workers  # the other batches waited for a worker, in the stake-ordered heap
    assert results == [f"mesh p{i}" for i in range(6)]
    assert [len(prompts) for prompts, _ in work.calls] == [2, 2, 2]
    assert work.calls[0] == (["p0", "p1"], [FAR, FAR - 1])  # each request's own deadline
    # 6 - 2*workers queued ahead (2 batches with one worker, 1 with two) + ours + the running ones, over the workers
    ahead = (6 - 2 * workers) // 2
    assert estimate == pytest.approx(-(-(ahead + 1 + workers) // workers) * 1.0 + 0.01)


def test_a_plain_work_function_still_needs_its_executor():
    with pytest.raises(ValueError, match="needs an executor"):
        GenerationQueue(lambda prompts, seeds: [], None, max_batch_size=1, window_s=0, max_queue=1,
                        max_in_flight_per_caller=1)  # fmt: skip


def test_the_in_process_pool_is_the_miners_old_path():
    pool = InProcessPool(TimedGenerator(), MeshFormat.PLY, encode_for_wire)
    assert pool.workers == 1 and pool.executor is not None
    (payload, fmt), = pool.generate(["a red cube"], [1])
    assert fmt is MeshFormat.PLY and payload.startswith(b"ply") and len(decode_mesh(payload).faces) == primitive_faces("box", 1)


# -- the endpoint pool --------------------------------------------------------------------------------


def test_requests_go_to_the_least_loaded_and_never_past_capacity():
    with served_generation_server(TimedGenerator(cost_s=0.2)) as (a, _, count_a), \
            served_generation_server(TimedGenerator(cost_s=0.2)) as (b, _, count_b):  # fmt: skip
        pool = EndpointPool([url(a), url(b)], capacity=2, health_interval_s=0.5)
        results = run_pool(pool, lambda: pool.generate([f"cube {i}" for i in range(8)], list(range(8)),
                                                        [time.monotonic() + 30] * 8))  # fmt: skip
    assert_meshes(results)
    assert (count_a.count, count_b.count) == (4, 4)
    assert count_a.peak <= 2 and count_b.peak <= 2
    assert [e.answered for e in pool.endpoints] == [4, 4]


def test_a_down_endpoint_gets_nothing_until_it_is_ready_again():
    reserved = free_socket()
    port = reserved.getsockname()[1]
    reserved.close()  # nothing listens there now
    down = f"http://127.0.0.1:{port}"
    with served_generation_server() as (b, _, count_b):
        pool = EndpointPool([down, url(b)], capacity=2, health_interval_s=0.2)

        async def go():
            first = await pool.generate(["a", "b", "c", "d"], [1, 2, 3, 4], [time.monotonic() + 20] * 4)
            state = pool.endpoints[0].ready, pool.endpoints[0].detail
            with served_generation_server(sock=free_socket(port=port)) as (_, _, count_a):
                for _ in range(100):
                    if pool.endpoints[0].ready:
                        break
                    await asyncio.sleep(0.05)
                second = await pool.generate([f"e{i}" for i in range(6)], list(range(6)), [time.monotonic() + 20] * 6)
                return first, state, second, count_a.count

        first, (ready, detail), second, back_count = run_pool(pool, go)
    assert_meshes(first + second)
    assert not ready and "unreachable" in detail
    assert count_b.count == 4 + (6 - back_count) and back_count >= 2  # it got its share once back


class DyingServer:
    """Says it is ready, then resets the connection of every generation request (a crash mid-request)."""

    def __init__(self):
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.posts = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if data.startswith(b"GET /ready"):
                    payload = b'{"ready": true, "queued": 0}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))  # fmt: skip
                elif data.startswith(f"POST {GENERATE_ROUTE}".encode()):
                    self.posts += 1
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def close(self):
        self.sock.close()


def test_an_endpoint_dying_mid_request_fails_over_to_another():
    dying = DyingServer()
    try:
        with served_generation_server() as (b, _, count_b):
            pool = EndpointPool([f"http://127.0.0.1:{dying.port}", url(b)], capacity=4, health_interval_s=30)

            async def go():
                assert pool.endpoints[0].ready  # it looked fine when the pool started
                return await pool.generate([f"p{i}" for i in range(4)], list(range(4)), [time.monotonic() + 20] * 4)

            results = run_pool(pool, go)
    finally:
        dying.close()
    assert_meshes(results)
    assert dying.posts >= 1 and count_b.count == 4  # what reached the dying one was answered by the other
    assert not pool.endpoints[0].ready and "during a request" in pool.endpoints[0].detail


def test_the_time_left_is_passed_down_and_nobody_starts_what_cannot_finish():
    slow_a, slow_b = TimedGenerator(cost_s=0.8), TimedGenerator(cost_s=0.8)
    seen = []
    with served_generation_server(slow_a, max_batch_size=1) as (a, service_a, _), \
            served_generation_server(slow_b, max_batch_size=1) as (b, service_b, _):  # fmt: skip
        for service in (service_a, service_b):
            submit = service.worker.submit

            async def recording(prompt, seed, timeout_s, *, _submit=submit, **kwargs):
                seen.append((prompt, timeout_s))
                return await _submit(prompt, seed, timeout_s, **kwargs)

            service.worker.submit = recording
        pool = EndpointPool([url(a), url(b)], capacity=2, health_interval_s=30)

        async def go():
            now = time.monotonic()
            warm = await pool.generate(["warm a", "warm b"], [1, 2], [now + 10, now + 6])
            hurried = await pool.generate(["hurry"], [3], [time.monotonic() + 0.5])
            return warm, hurried

        warm, hurried = run_pool(pool, go)
    assert_meshes(warm)
    # each request's own time left is passed down, never more (the time spent getting there only lowers it)
    left = dict(seen)
    assert 0.0 < left["warm b"] < left["warm a"] <= 10.0 and left["warm b"] <= 6.0, seen
    assert hurried == [None]  # 0.5 s left, 0.8 s a batch: refused by both, never generated (below)
    assert [p for p, _ in seen].count("hurry") == 2  # asked both, each said no
    assert "hurry" not in slow_a.prompts + slow_b.prompts


def test_a_failed_generation_is_tried_elsewhere_and_reported_only_if_all_fail():
    with served_generation_server(TimedGenerator(fail_on="boom")) as (a, _, _), \
            served_generation_server(TimedGenerator()) as (b, _, _), \
            served_generation_server(TimedGenerator(fail_on="boom")) as (c, _, _):  # fmt: skip
        pool = EndpointPool([url(a), url(b)], capacity=1, health_interval_s=30)
        (rescued,) = run_pool(pool, lambda: pool.generate(["boom"], [1], [time.monotonic() + 20]))
        both_fail = EndpointPool([url(a), url(c)], capacity=1, health_interval_s=30)
        (failed,) = run_pool(both_fail, lambda: both_fail.generate(["boom"], [1], [time.monotonic() + 20]))
    assert_meshes([rescued])
    assert isinstance(failed, GenerationError) and "500" in str(failed) and "CUDA out of memory" in str(failed)


def test_a_refused_token_leaves_the_endpoint_not_ready_with_a_sentence():
    with served_generation_server(token="s3cret") as (a, _, count):
        pool = EndpointPool([url(a)], capacity=1, token="wrong", health_interval_s=30)
        (result,) = run_pool(pool, lambda: pool.generate(["x"], [1], [time.monotonic() + 0.5]))
        good = EndpointPool([url(a)], capacity=1, token="s3cret", health_interval_s=30)
        (answered,) = run_pool(good, lambda: good.generate(["x"], [1], [time.monotonic() + 10]))
    assert result is None and count.count == 1  # the bad token never got a request through
    assert not pool.endpoints[0].ready and "--generation.token" in pool.endpoints[0].detail
    assert_meshes([answered])
