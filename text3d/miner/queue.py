"""The miner's work queue: admission control, a stake-ordered queue, batched generation.

A miner has one generator (one GPU) and many callers. The queue decides, *before* any
work is queued, whether a request can be answered in time:

- a caller with ``max_in_flight_per_caller`` requests queued or running gets **429**
  (``Overloaded(429)``): one validator's flood stays within its own budget;
- a request whose deadline is closer than the estimated wait (batches ahead of it x the
  moving average batch time) gets **503**: the miner never starts what cannot finish;
- a full queue (``max_queue``) gets **503**, except that a caller with more stake than
  the lowest-stake queued request takes that request's place (the evicted one is told
  503 at once, so its caller can retry elsewhere);
- the queue is ordered by stake (highest first), then by arrival.

Requests arriving within ``window_s`` of each other are generated together, up to
``max_batch_size``, on the single-worker ``executor``. A queued request whose deadline
passes before its batch starts is dropped (``submit`` returns None), never started.
Failures of ``work`` fail the requests of that batch only.

``work`` is either a plain function ``work(prompts, seeds)``, run on ``executor`` (one
generator in this process), or a coroutine function ``work(prompts, seeds, deadlines)``,
awaited on the loop and told each request's deadline (a generation pool that sends the
work elsewhere and passes the deadlines down). ``workers`` batches run at once (1 for one
generator; one per endpoint or replica for a pool), and the wait estimate counts them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from inspect import iscoroutinefunction
from typing import Any, Callable

__all__ = ["Overloaded", "GenerationQueue"]

Clock = Callable[[], float]


class Overloaded(Exception):
    """The miner cannot take (or keep) this request; ``status`` is 429 or 503."""

    def __init__(self, status: int, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(order=True)
class _Job:
    priority: tuple[float, int]  # (-stake, arrival): heapq pops the highest stake first
    prompt: str = field(compare=False)
    seed: int = field(compare=False)
    deadline: float = field(compare=False)
    caller: str = field(compare=False)
    stake: float = field(compare=False)
    future: asyncio.Future = field(compare=False, repr=False)


class GenerationQueue:
    """Runs ``work(prompts, seeds) -> results`` in batches, admitting only what it can finish."""

    def __init__(
        self,
        work: Callable[..., Any],
        executor: Executor | None,
        *,
        max_batch_size: int,
        window_s: float,
        max_queue: int,
        max_in_flight_per_caller: int,
        workers: int = 1,
        clock: Clock = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._work = work
        self._work_is_async = iscoroutinefunction(work) or iscoroutinefunction(getattr(work, "__call__", None))
        if executor is None and not self._work_is_async:
            raise ValueError("a plain work function needs an executor to run on")
        self._executor = executor
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.max_queue = max_queue
        self.max_in_flight_per_caller = max_in_flight_per_caller
        self._clock = clock
        self.expected_batch_s = 0.0  # moving average of batch durations; 0 until the first batch
        self.batch_sizes: list[int] = []  # history, for logs and tests
        self.peak_queued = 0
        self._heap: list[_Job] = []
        self._in_flight: dict[str, int] = {}
        self._running_batches = 0  # batches being generated
        self._arrivals = itertools.count()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # -- observation ---------------------------------------------------------------

    @property
    def running_batches(self) -> int:
        """Batches being generated now (the miner's metrics read it at scrape time)."""
        return self._running_batches

    @property
    def queued(self) -> int:
        return len(self._heap)

    def in_flight(self, caller: str) -> int:
        return self._in_flight.get(caller, 0)

    def retry_after_s(self) -> float:
        """A polite ``Retry-After``: about one batch, at least a second."""
        return max(1.0, math.ceil(self.expected_batch_s))

    def estimated_wait_s(self, stake: float) -> float:
        """Seconds until a new request of ``stake`` would be answered, from the batch-time average."""
        ahead = sum(1 for job in self._heap if job.stake >= stake)
        batches = ahead // self.max_batch_size + 1 + self._running_batches  # ours, those ahead, those running
        return math.ceil(batches / self.workers) * self.expected_batch_s + self.window_s

    # -- submission ----------------------------------------------------------------

    async def submit(self, prompt: str, seed: int, deadline: float, *, caller: str, stake: float) -> Any | None:
        """Queue one request and wait for its result; None when it was dropped at its deadline.

        Raises ``Overloaded`` (429/503) at once when the request is not admitted, or
        later when a higher-stake request evicts it from a full queue.
        """
        loop = asyncio.get_running_loop()
        self._ensure_loop(loop)
        now = self._clock()
        if self.in_flight(caller) >= self.max_in_flight_per_caller:
            raise Overloaded(
                429,
                f"this caller already has {self.max_in_flight_per_caller} requests queued or running",
                self.retry_after_s(),
            )
        if self.expected_batch_s > 0 and deadline - now < self.estimated_wait_s(stake):
            if not self._heap and not self._running_batches:
                # Idle, so no batch will re-measure the estimate: let a one-off slow batch (a warm-up)
                # fade, or every request is refused from now on.
                self.expected_batch_s *= 0.8
            raise Overloaded(503, "the miner cannot finish this request before its deadline", self.retry_after_s())
        if len(self._heap) >= self.max_queue:
            lowest = min(self._heap, key=lambda job: (job.stake, -job.priority[1]))
            if lowest.stake >= stake:
                raise Overloaded(503, "the miner's queue is full", self.retry_after_s())
            self._heap.remove(lowest)
            heapq.heapify(self._heap)
            self._release(lowest)
            if not lowest.future.done():
                lowest.future.set_exception(
                    Overloaded(503, "a caller with more stake took this request's place", self.retry_after_s())
                )
        job = _Job((-stake, next(self._arrivals)), prompt, seed, deadline, caller, stake, loop.create_future())
        heapq.heappush(self._heap, job)
        self.peak_queued = max(self.peak_queued, len(self._heap))
        self._in_flight[caller] = self.in_flight(caller) + 1
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return await job.future
        finally:
            if job in self._heap:  # the caller went away (cancelled): forget the job
                self._heap.remove(job)
                heapq.heapify(self._heap)
                self._release(job)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- the batch loop ----------------------------------------------------------

    def _ensure_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._loop())

    def _release(self, job: _Job) -> None:
        left = self._in_flight.get(job.caller, 1) - 1
        if left > 0:
            self._in_flight[job.caller] = left
        else:
            self._in_flight.pop(job.caller, None)

    async def _collect(self) -> list[_Job]:
        assert self._wakeup is not None
        while not self._heap:
            self._wakeup.clear()
            await self._wakeup.wait()
        window_end = self._clock() + self.window_s
        while len(self._heap) < self.max_batch_size:
            remaining_s = window_end - self._clock()
            if remaining_s <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining_s)
            except asyncio.TimeoutError:
                break
        batch = []
        while self._heap and len(batch) < self.max_batch_size:
            batch.append(heapq.heappop(self._heap))
        return batch

    async def _loop(self) -> None:
        free = asyncio.Semaphore(self.workers)
        running: set[asyncio.Task] = set()
        try:
            while True:
                await free.acquire()  # collect only when a worker can start at once: stake order holds until then
                batch = await self._collect()
                now = self._clock()
                live = [job for job in batch if not job.future.done() and job.deadline - now > self.expected_batch_s]
                for job in batch:
                    if job not in live:
                        self._release(job)
                        if not job.future.done():
                            job.future.set_result(None)  # cannot make it in time: drop, do not start
                if len(live) < len(batch):  # forget a one-off slow batch (warm-up) slowly, or we never try again
                    self.expected_batch_s *= 0.8
                if not live:
                    free.release()
                    continue
                self._running_batches += 1
                task = asyncio.get_running_loop().create_task(self._run_batch(live))
                running.add(task)
                task.add_done_callback(lambda done: (running.discard(done), free.release()))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _run_batch(self, live: list[_Job]) -> None:
        started = self._clock()
        prompts, seeds = [job.prompt for job in live], [job.seed for job in live]
        try:
            if self._work_is_async:
                results = await self._work(prompts, seeds, [job.deadline for job in live])
            else:
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self._work, prompts, seeds)
            if len(results) != len(live):
                raise RuntimeError(f"generator returned {len(results)} results for {len(live)} prompts")
        except Exception as exc:  # one failed batch fails its requests, never the loop
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            results = None
        finally:
            self._running_batches -= 1
            elapsed_s = self._clock() - started
            self.expected_batch_s = elapsed_s if not self.batch_sizes else 0.7 * self.expected_batch_s + 0.3 * elapsed_s
            self.batch_sizes.append(len(live))
            for job in live:
                self._release(job)
        if results is None:
            return
        for job, result in zip(live, results):
            if not job.future.done():
                job.future.set_result(result)
