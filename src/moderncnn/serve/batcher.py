"""Server-side batching: inputs of concurrent requests run through the network together, off the event loop.

A request puts its preprocessed images on a queue and awaits their probabilities. One collector task takes the
first waiting request, then keeps taking requests for up to ``window`` seconds or until ``max_batch`` images are
gathered, and hands the batch to a thread pool of ``workers`` threads: the event loop never runs the network, so
/health and new requests are answered while a batch runs. A batch that fails fails only the requests in it.
``max_batch=1`` turns batching off (each request runs alone, at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

WINDOW = 0.005  # seconds a batch waits for more requests: a few ms, small beside a forward pass of a CNN


class Batcher:
    """Groups concurrent ``submit`` calls into batches for ``forward``.

    Args:
        forward: probabilities ``(N, K)`` for inputs ``(N, C, S, S)``; called in a worker thread.
        max_batch: the most images in one forward call (a request with more runs alone).
        window: seconds to wait for more requests after the first one of a batch.
        workers: threads running batches at once.
        observe: called with the size of each batch run and its seconds, for metrics.
    """

    def __init__(
        self,
        forward: Callable[[Tensor], Tensor],
        *,
        max_batch: int = 32,
        window: float = WINDOW,
        workers: int = 1,
        observe: Callable[[int, float], None] | None = None,
    ):
        self.forward, self.max_batch, self.window, self.observe = forward, max_batch, window, observe
        self.workers = workers
        self.batches = 0  # forward calls made: a test reads it to see that requests were grouped
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._carry: tuple | None = None  # a request that did not fit the last batch: first in the next one

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="moderncnn-infer")
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.workers)  # a batch is gathered only when a thread is free to run it
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, inputs: Tensor) -> Tensor:
        """Probabilities for ``inputs`` ``(n, C, S, S)``, computed in some batch with other requests' inputs."""
        if not self.running:
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((inputs, future))
        return await future

    async def run_alone(self, fn: Callable, *args):
        """``fn(*args)`` in an inference thread (for work that is no batch, such as an explanation)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            first, self._carry = self._carry, None
            items = [first if first is not None else await self._queue.get()]
            count = len(items[0][0])
            deadline = loop.time() + self.window
            while count < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if count + len(item[0]) > self.max_batch:
                    self._carry = item
                    break
                items.append(item)
                count += len(item[0])
            asyncio.create_task(self._run(items))

    async def _run(self, items: list) -> None:
        loop = asyncio.get_running_loop()
        try:
            batch = torch.cat([inputs for inputs, _ in items])
            start = time.perf_counter()
            self.batches += 1
            probs = await loop.run_in_executor(self._executor, self.forward, batch)
            if self.observe is not None:
                self.observe(len(batch), time.perf_counter() - start)
        except Exception as err:
            for _, future in items:
                if not future.done():
                    future.set_exception(err)
            return
        finally:
            self._slots.release()
        offset = 0
        for inputs, future in items:
            if not future.done():  # a client that went away has its future cancelled
                future.set_result(probs[offset : offset + len(inputs)])
            offset += len(inputs)
