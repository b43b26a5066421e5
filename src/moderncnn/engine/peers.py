"""One line, not a gloo traceback, when one process of a multi-process run dies.

A rank that is killed (SIGKILL, the kernel's OOM killer, a crash) closes its sockets, and the next collective of the
others fails with gloo's ``RuntimeError: [.../pair.cc:545] Read error [127.0.0.1]:52957: Connection reset by peer``
(NCCL: a ``DistBackendError``): an address and port, not a rank. :func:`watch_ranks` turns that error into one line
that says which rank died, as far as this process can know:

- Lightning's own launcher (``--devices D``): the node's rank 0 starts the other D - 1 processes and watches them
  (a :class:`RankWatcher` in place of Lightning's observer, which SIGKILLs rank 0 within 5 s of a child's death,
  before it can say anything or tidy its run directory); each child watches its parent, the node's rank 0.
- Two processes in all (torchrun, SLURM, two nodes): the other one.
- More, launched by another launcher: "another rank".

A process that does not reach a failing collective soon (one waiting for a dead peer to join, or validating a long
epoch) is stopped by its watcher after ``GRACE_SECONDS`` with the same line and exit status 2: a run never hangs on
a dead process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

from moderncnn.errors import TrainingError
from moderncnn.rundir import RunDir

# Set by the node's rank 0 for the processes Lightning launches (they inherit its environment): their parent's pid.
RANK0_PID_VARIABLE = "MODERNCNN_RANK0_PID"
GRACE_SECONDS = 10.0  # from a death seen by a watcher to the watcher stopping the process itself
CHILD_WAIT_SECONDS = 10.0  # a child that lost a peer while rank 0 lives: rank 0 names the dead rank and stops it
# gloo's and NCCL's words for a peer that went away (their errors carry no rank).
_PEER_LOST = re.compile(
    r"(closed|reset) by peer|broken pipe|connection refused|remote process exited|communicator was aborted", re.I
)

_watcher: RankWatcher | None = None


def _how(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


class RankWatcher(threading.Thread):
    """Watches the other processes of a run that Lightning's launcher started on this node, every 0.2 s: in the
    node's rank 0 its children (local ranks 1, 2, ...), in a child its parent.

    Args:
        world: the number of processes of the run.
        children: in rank 0, the launcher's child processes, whose global ranks start at ``first_rank``.
        first_rank: the global rank of ``children[0]``, or in a child the global rank of its parent.
    """

    def __init__(self, world: int, first_rank: int, children: list[subprocess.Popen] | None = None):
        super().__init__(daemon=True, name="moderncnn-rank-watcher")  # ends with the process
        self.world = world
        self.first_rank = first_rank
        self.children = children
        self.parent = None if children is not None else os.getppid()
        self.lost: str | None = None  # "rank 1 of 2 died (killed by SIGKILL)": the first death seen
        self.on_stop: Callable[[str], str] = str  # tidies up after a death; returns the line to report
        self._seen = threading.Event()
        self._done = threading.Event()  # the loss is reported, or the run ended: stand down

    def run(self) -> None:
        while not self._seen.wait(0.2):
            if self._done.is_set() or self._look() is None:
                return
        if self._done.wait(GRACE_SECONDS):
            return
        # The main thread has not reached a collective that fails: report and stop, as Lightning's observer would.
        self.stand_down()
        print(self.on_stop(self.lost or ""), file=sys.stderr, flush=True)
        os._exit(2)  # the CLI's status for a run that cannot go on; no atexit: a collective there would hang

    def _look(self) -> bool | None:
        """Record the first death seen; ``None`` once every child has finished well (nothing left to watch)."""
        if self.children is None:
            if os.getppid() != self.parent:  # orphaned: the parent has gone
                self.lost = f"rank {self.first_rank} of {self.world} died"
                self._seen.set()
            return True
        codes = [proc.poll() for proc in self.children]
        for i, code in enumerate(codes):
            if code:  # not None (running) nor 0 (finished)
                self.lost = f"rank {self.first_rank + i} of {self.world} died ({_how(code)})"
                self._seen.set()
                return True
        return None if all(code == 0 for code in codes) else True

    def wait_for_loss(self, seconds: float) -> str | None:
        """What died, waiting up to ``seconds`` for the watcher to see it (a dead peer's socket can close first)."""
        self._seen.wait(seconds)
        return self.lost

    def retire(self) -> None:
        """Stop watching (the run is over; the process may go on: a sweep trains again)."""
        self._done.set()

    def stand_down(self) -> None:
        """After a death: SIGKILL the children still running (a process blocked in a collective ignores SIGTERM), so
        that only this process reports it, and stop watching."""
        self.retire()
        for proc in self.children or ():
            if proc.poll() is None:
                proc.kill()


def _start_watcher(child_processes: list[subprocess.Popen]) -> None:
    """In place of Lightning's ``_launch_process_observer``, called with the children it has just started."""
    global _watcher
    per_node = len(child_processes) + 1
    world = int(os.environ.get("WORLD_SIZE", str(per_node)))
    on_stop = _watcher.on_stop if _watcher is not None else str
    _watcher = RankWatcher(world, int(os.environ.get("NODE_RANK", "0")) * per_node + 1, child_processes)
    _watcher.on_stop = on_stop
    _watcher.start()


@contextlib.contextmanager
def watch_ranks(per_node: int, on_stop: Callable[[str], str]) -> Iterator[None]:
    """Around a run: the processes of its node watch each other, and a process stopped by the death of another
    raises :class:`~moderncnn.errors.TrainingError` with one line, ``on_stop(what died)``.

    Args:
        per_node: processes per node (``--devices``).
        on_stop: called with "rank 1 of 2 died (killed by SIGKILL)" when the run stops for it: tidies the run
            directory and returns the line to report (with how to go on).
    """
    global _watcher
    from lightning.pytorch.strategies.launchers import subprocess_script

    parent = os.environ.get(RANK0_PID_VARIABLE)
    patched = parent is None and hasattr(subprocess_script, "_launch_process_observer")
    if parent is not None and int(parent) != os.getpid():  # a process Lightning's launcher started
        world, node_zero = int(os.environ.get("WORLD_SIZE", "0")), int(os.environ.get("NODE_RANK", "0")) * per_node
        if os.getppid() != int(parent):  # rank 0 died while this process started (it would wait for it to listen)
            raise TrainingError(on_stop(f"rank {node_zero} of {world} died"))
        _watcher = RankWatcher(world, node_zero)
        _watcher.start()
    elif patched:  # rank 0 of its node: watch the children Lightning's launcher starts, if it starts any
        original = subprocess_script._launch_process_observer
        subprocess_script._launch_process_observer = _start_watcher
        os.environ[RANK0_PID_VARIABLE] = str(os.getpid())
        _watcher = RankWatcher(1, 0, [])  # a placeholder that carries on_stop until the launcher starts the children
    if _watcher is not None:
        _watcher.on_stop = on_stop
    try:
        yield
    except RuntimeError as err:
        if (lost := lost_rank(err)) is None:
            raise
        raise TrainingError(on_stop(lost)) from None
    finally:
        if _watcher is not None:
            _watcher.retire()
        _watcher = None
        if patched:
            subprocess_script._launch_process_observer = original
            os.environ.pop(RANK0_PID_VARIABLE, None)


def stop_for_lost_rank(run: RunDir, rank_zero: bool, created: bool, lost: str) -> str:
    """Tidy the run directory of a run that ``lost`` (another rank's death) stopped, as a run that fails does; return
    the one line that says what died, what is left and how to go on."""
    if rank_zero:
        for tmp in run.path.glob("**/*.tmp"):  # a write the stop cut short (written_whole's temporary file)
            tmp.unlink(missing_ok=True)
        if created and not run.last.exists():
            shutil.rmtree(run.path, ignore_errors=True)
            return f"{lost}; the run stopped before its first checkpoint and {run} is removed: start it again"
    resume = f"moderncnn train --resume {run}"
    if run.last.is_file():
        return f"{lost}; the run stopped: {run.last} holds its last checkpoint; resume with: {resume}"
    if run.config.is_file():  # left by a dead rank 0: resuming starts it again from its config.yaml
        return f"{lost}; the run stopped before its first checkpoint; start it again with: {resume}"
    return f"{lost}; the run stopped: resume it where rank 0 ran, with: {resume}"


def lost_rank(err: BaseException) -> str | None:
    """Which rank died, when ``err`` stopped this process because another process of the run died; else ``None``.

    The answer reads "rank 1 of 2 died (killed by SIGKILL)". A child of Lightning's launcher whose rank 0 lives
    waits (up to ``CHILD_WAIT_SECONDS``) for rank 0, which knows its siblings, to report and stop it.
    """
    import torch.distributed as dist

    if not isinstance(err, RuntimeError):
        return None
    initialised = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if initialised else (-1, 1)
    peer_error = isinstance(err, getattr(dist, "DistError", ())) or bool(_PEER_LOST.search(str(err)))
    if _watcher is not None and _watcher.world > 1:
        wait = (2.0 if _watcher.children is not None else CHILD_WAIT_SECONDS) if peer_error else 0.0
        if (lost := _watcher.wait_for_loss(wait)) is not None:
            _watcher.stand_down()
            return lost
    if not peer_error or world < 2:
        return None
    if world == 2:
        return f"rank {1 - rank} of 2 died or lost its connection"
    return f"another rank of the {world} died or lost its connection"
