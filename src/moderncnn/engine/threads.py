"""CPU threads that make way: a run gives cores back while other processes need them, and takes them again after.

Why: torch runs one intra-op thread per core, and its OpenMP threads (and oneDNN's own barriers inside a
convolution) wait for each other by spinning. With a second busy process on the same cores, one thread of a team
is often descheduled while its partner spins for a whole time slice waiting for it, so every parallel region costs
a slice instead of microseconds. Measured with benchmarks/shared_cpu.py on a 2-core machine (resnet20, bf16, two
identical runs at once; benchmarks/RESULTS.md): with torch's defaults each run kept 3-22% of its solo speed; with
``OMP_WAIT_POLICY=PASSIVE`` (set before torch loads, so that waiting OpenMP threads sleep) 6-8%, and it cost solo
speed: the spinning that matters is oneDNN's, which no OpenMP setting reaches. A team of one thread has no partner
to wait for: with this governor each of the two runs kept 48-56% of the best solo speed, and a run alone keeps all
its threads.

:class:`ThreadGovernor` looks every few seconds at how much of the machine's CPU time others used (``/proc/stat``
minus this process's own CPU time) and sets torch's intra-op threads to the cores left over: all of them when the
machine is free, one when it is shared. It reads two small files and calls ``torch.set_num_threads`` between steps;
off Linux, it does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from moderncnn.run.speed import default_threads

_PROC_STAT = "/proc/stat"


def threads_for(max_threads: int, cpus: int, others: float) -> int:
    """Threads to run with: the CPUs that others (``others`` CPUs busy on average) leave, within [1, max_threads]."""
    return max(1, min(max_threads, round(cpus - others)))


def machine_busy_seconds(path: str = _PROC_STAT) -> float | None:
    """CPU seconds all processes of the machine have used since boot (``None`` where ``/proc/stat`` is missing)."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...: busy = user + nice + system + irq + softirq
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class ThreadGovernor:
    """Keeps torch's intra-op threads at the cores other processes leave free (see the module docstring).

    Args:
        max_threads: the most threads to use (default :func:`default_threads`).
        interval: seconds between looks at the machine.
        cpus: CPUs of the machine (default ``os.cpu_count()``).
        clock, busy, own: time, machine busy seconds and this process's CPU seconds (replaceable in tests).
        set_threads: what applies a new count (default ``torch.set_num_threads``).
    """

    def __init__(
        self,
        max_threads: int | None = None,
        *,
        interval: float = 2.0,
        cpus: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[], float | None] = machine_busy_seconds,
        own: Callable[[], float] = time.process_time,
        set_threads: Callable[[int], None] | None = None,
    ):
        import torch

        self.max_threads = max_threads or default_threads()
        self.cpus = cpus or os.cpu_count() or 1
        self.interval = interval
        self._clock, self._busy, self._own = clock, busy, own
        self._set = set_threads or torch.set_num_threads
        self.threads = self.max_threads
        self._set(self.threads)  # a run starts with all its threads, whatever an earlier one left
        self._last = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        return self._clock(), self._busy(), self._own()

    def tick(self) -> int | None:
        """Call between steps; returns the new thread count when it changed, else ``None``."""
        now = self._clock()
        if now - self._last[0] < self.interval:
            return None
        sample = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, sample
        self._last = sample
        if busy0 is None or busy1 is None or t1 <= t0:
            return None
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        wanted = threads_for(self.max_threads, self.cpus, others)
        if wanted == self.threads:
            return None
        self.threads = wanted
        self._set(wanted)
        return wanted

    def callback(self):
        """A Lightning callback that calls :meth:`tick` after every training and validation batch."""
        from lightning.pytorch.callbacks import Callback

        governor = self

        class ThreadGovernorCallback(Callback):
            def on_train_batch_end(self, *args, **kwargs) -> None:
                governor.tick()

            def on_validation_batch_end(self, *args, **kwargs) -> None:
                governor.tick()

            def on_test_batch_end(self, *args, **kwargs) -> None:
                governor.tick()

        return ThreadGovernorCallback()
