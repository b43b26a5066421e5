"""Killing one process of a two-process (gloo, CPU) run: the other stops within seconds with one line naming the rank
that died and how to go on, exit status 2 and no traceback; the run directory keeps its checkpoint and no
temporary file.

Rank 1 is a child of rank 0 (Lightning's launcher starts it). When rank 0 is killed, this test process becomes rank
1's parent (a Linux "child subreaper"), so it can read rank 1's exit status.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moderncnn.engine.peers import RANK0_PID_VARIABLE, RankWatcher, stop_for_lost_rank, watch_ranks
from moderncnn.rundir import RunDir

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses prctl")

PR_SET_CHILD_SUBREAPER = 36
TRAIN = ["train", "lenet_bn", "--dataset", "synthetic:image_size=28,num_train=512,num_test=64", "--epochs", "1000",
         "--batch-size", "32", "--val-size", "64", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--precision", "32", "--compile", "false", "--quiet"]  # fmt: skip


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def rank_children(pid: int) -> list[int]:
    """The children of ``pid`` that Lightning's launcher started as local rank 1 (``LOCAL_RANK=1``), not a
    short-lived helper run during start-up (``strace`` shows ctypes' ``ldconfig -p`` before the launcher): killing
    that instead of rank 1 leaves a healthy run that trains on (the cause of a rare failure of the start-up test)."""
    ranks = []
    for child in children(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            if b"LOCAL_RANK=1" in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                ranks.append(child)
    return ranks


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.1)


def subreaper(on: bool) -> bool:
    """Make this process (or stop it being) the parent of its orphaned descendants."""
    return ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def test_a_watcher_names_the_child_that_died_and_how():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = RankWatcher(world=3, first_rank=1, children=[subprocess.Popen([sys.executable, "-c", "pass"]), child])
    watcher.start()
    child.kill()
    assert watcher.wait_for_loss(10) == "rank 2 of 3 died (killed by SIGKILL)"
    watcher.stand_down()


def test_a_single_process_run_keeps_its_errors_and_lightnings_launcher(tmp_path):
    from lightning.pytorch.strategies.launchers import subprocess_script

    observer = subprocess_script._launch_process_observer
    with pytest.raises(RuntimeError, match="Connection reset by peer"), watch_ranks(1, str):
        assert os.environ[RANK0_PID_VARIABLE] == str(os.getpid())
        raise RuntimeError("Connection reset by peer")  # no process group: not another rank's death
    assert subprocess_script._launch_process_observer is observer and RANK0_PID_VARIABLE not in os.environ


def test_the_line_says_what_is_left_of_the_run(tmp_path):
    run = RunDir(tmp_path / "new")
    run.path.mkdir()
    run.config.write_text("model: lenet_bn\n")
    line = stop_for_lost_rank(run, True, True, "rank 1 of 2 died")
    assert line == f"rank 1 of 2 died; the run stopped before its first checkpoint and {run} is removed: start it again"
    assert not run.path.exists()
    run.last.parent.mkdir(parents=True)
    run.config.write_text("model: lenet_bn\n")
    run.last.write_bytes(b"ckpt")
    (run.path / "checkpoints" / "best.ckpt.tmp").write_bytes(b"half")
    line = stop_for_lost_rank(run, True, True, "rank 1 of 2 died")
    assert line.endswith(f"{run.last} holds its last checkpoint; resume with: moderncnn train --resume {run}")
    assert run.last.is_file() and not list(run.path.glob("**/*.tmp"))
    run.last.unlink()  # a directory a dead rank 0 left, seen from rank 1: resumable from its config.yaml
    assert stop_for_lost_rank(run, False, False, "rank 0 of 2 died").endswith(
        f"again with: moderncnn train --resume {run}"
    )


@pytest.mark.slow  # two DDP processes until their first checkpoint: 15-20 s each on 2 busy cores
@LINUX_ONLY
@pytest.mark.parametrize("victim", [1, 0])
def test_killing_one_rank_stops_the_other_with_one_line(tmp_path, victim):
    run, status, seconds, lines = kill_a_rank(tmp_path, victim, when="checkpoint")
    assert status == 2, lines[-30:]
    assert seconds < 30, f"rank {1 - victim} took {seconds:.1f} s to stop"
    assert len(lines) == 1 and "Traceback" not in lines[0], lines[-30:]
    (line,) = lines
    how = " (killed by SIGKILL)" if victim == 1 else ""  # rank 0 starts rank 1 and sees how it ended
    assert line.startswith(f"moderncnn train: error: rank {victim} of 2 died{how}; the run stopped")
    assert line.endswith(f"resume with: moderncnn train --resume {run}")
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(run.glob("**/*.tmp"))
    assert (run / ".lock").exists() == (victim == 0)  # a dead rank 0's lock is taken over by --resume, with a warning


@pytest.mark.slow
@LINUX_ONLY
def test_a_rank_killed_while_the_run_starts_ends_it_and_leaves_no_directory(tmp_path):
    # Rank 0 then waits in torch's TCPStore for rank 1 to join, where no collective fails; its watcher ends the run.
    run, status, seconds, lines = kill_a_rank(tmp_path, victim=1, when="start-up")
    assert status == 2, lines[-30:]
    assert seconds < 30, f"rank 0 took {seconds:.1f} s to stop"
    assert len(lines) == 1 and "Traceback" not in lines[0], lines[-30:]
    assert lines[0].endswith(
        f"rank 1 of 2 died (killed by SIGKILL); the run stopped before its first checkpoint and {run} is removed: "
        "start it again"
    )
    assert not run.exists()


def kill_a_rank(tmp_path: Path, victim: int, when: str) -> tuple[Path, int, float, list[str]]:
    """Start a two-process run, SIGKILL rank ``victim`` at ``when`` ("checkpoint": once ``last.ckpt`` exists;
    "start-up": as soon as rank 1 exists), wait for the other; return the run directory, the other's exit status,
    the seconds it took to stop and the lines both wrote to stderr."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "MODERNCNN_DEBUG"):
        env.pop(name, None)
    if not subreaper(True):
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not permitted here")
    with open(tmp_path / "stderr", "w") as stderr:
        rank0 = subprocess.Popen(
            [sys.executable, "-m", "moderncnn.cli", *TRAIN, "--run-dir", str(run)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,  # rank 1 inherits it
        )
    rank1, status = None, None
    try:

        def ready() -> bool:
            if rank0.poll() is not None:
                return True  # ended early: the assertion below shows why
            if when == "checkpoint":
                return (run / "checkpoints" / "last.ckpt").is_file()
            return bool(rank_children(rank0.pid))

        wait_for(ready, 300, when)
        assert rank0.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        (rank1,) = rank_children(rank0.pid)
        killed = time.monotonic()
        if victim == 1:
            os.kill(rank1, signal.SIGKILL)
            status = rank0.wait(timeout=60)
        else:
            rank0.kill()
            rank0.wait()
            _, raw = os.waitpid(rank1, 0)  # the orphaned rank 1 is this process's child now
            status = os.waitstatus_to_exitcode(raw)
        seconds = time.monotonic() - killed
    finally:
        if status is None:  # failed or timed out: leave nothing running
            for pid in (rank0.pid, rank1):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if rank1 is not None:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(rank1, 0)
        rank0.wait()
        subreaper(False)

    return run, status, seconds, (tmp_path / "stderr").read_text().splitlines()
