"""Runs that cannot go on end in one line and leave a run that resumes (issue 25, cause 9)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.engine import training as training_module
from moderncnn.errors import OutputError

TINY = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ cause 9: a full disk


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 24 MB tmpfs (a run needs 16 MB free to start), unmounted afterwards; skipped where mounting is refused."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({done.stderr.strip() or done.returncode}); needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` until about ``leave`` bytes are free; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "ab") as f:
        try:
            f.write(b"\0" * max(shutil.disk_usage(disk).free - leave, 0))
            f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.parametrize(("leave", "fails"), [(0, "metrics.csv"), (16 << 10, "checkpoints/")])
def test_a_disk_that_fills_during_training_is_one_line_keeps_the_last_checkpoint_and_resumes(
    small_disk, monkeypatch, leave, fails
):
    run = small_disk / "run"
    filled = []
    real = training_module.plot_curves

    def then_fill(run_dir):  # after epoch 1's files: the disk is full when epoch 2 ends
        real(run_dir)
        if not filled:
            filled.append(fill(small_disk, leave))

    monkeypatch.setattr(training_module, "plot_curves", then_fill)
    config = make_config("lenet_bn", dataset=TINY, epochs=2, batch_size=64, limit_batches=2, run_dir=str(run))
    with pytest.raises(OutputError) as caught:
        train(config, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot write {run}/{fails}")
    assert ": disk full (no space left on the device); the files written before are kept: free some space" in message
    assert not [p.name for p in run.rglob("*.tmp")] and not (run / "results.json").exists()
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0  # epoch 1's, intact

    filled[0].unlink()
    monkeypatch.setattr(training_module, "plot_curves", real)
    resumed = train(None, resume=run, quiet=True)
    assert resumed.test_acc >= 0 and (run / "results.json").is_file()
    assert [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]] == ["0", "1"]
