"""Checkpoints inside an epoch (``checkpoint_every``): a run killed at any moment resumes to the same metrics.csv.

The five-kill test kills one run at five moments with SIGKILL from inside the process, at Lightning hooks of a
callback that only the test adds (a subclass of ``lightning.Trainer`` put in place in the child process), so the
moments are exact rather than raced: during start-up, in the middle of a step of epoch 1, between the epochs, in
the middle of a step of epoch 2, and during the final test.
"""

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from moderncnn.data import DeviceLoader, Split
from moderncnn.data.augment import BatchAugment
from moderncnn.data.loader import ResumableDataLoader, ShardSampler
from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.engine.recorder import TIMING_COLUMNS
from moderncnn.errors import ConfigError
from moderncnn.run.config import checkpoint_interval

# 320 training images in batches of 32: 10 steps an epoch, checkpoints inside it after steps 3, 6 and 9 (not 10, the
# epoch's end writes its own), then 12, 15 and 18 (every third step of the run).
SETTINGS = {
    "dataset": "synthetic:image_size=28,num_train=400,num_test=64",
    "val_size": 80,
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.2,
    "momentum": 0.9,
    "schedule": "cosine",  # the rate changes every step: the scheduler's state is resumed too
    "augment": "cifar",  # random crops and flips: the loader's generator is resumed too
    "checkpoint_every": 3,
    "deterministic": True,
    "threads": 1,
}
RESULTS = ("train_loss", "train_acc", "val_loss", "val_acc", "best_val_acc", "test_loss", "test_acc")

# Run in a child process: trains the run whose config.yaml is argv[1] and kills itself (SIGKILL) at moment argv[2].
KILLED_RUN = """
import os, signal, sys
import lightning
from lightning.pytorch.callbacks import Callback
from moderncnn.engine import TrainConfig, train

moment = sys.argv[2]

class Kill(Callback):
    def _at(self, now):
        if now == moment:
            os.kill(os.getpid(), signal.SIGKILL)

    def setup(self, trainer, module, stage):
        self._at("start-up")

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self._at(f"step {trainer.global_step + 1}")  # its forward and backward are done, the update is not

    def on_train_epoch_start(self, trainer, module):
        self._at(f"epoch {trainer.current_epoch + 1} start")

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self._at("test")

class Trainer(lightning.Trainer):
    def __init__(self, *args, callbacks=(), **kwargs):
        super().__init__(*args, callbacks=[*callbacks, Kill()], **kwargs)

lightning.Trainer = Trainer
train(TrainConfig.load(sys.argv[1]), quiet=True)
"""


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def _results(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    return {k: results[k] for k in RESULTS}


@pytest.fixture(autouse=True)
def _restore_threads():  # the runs set one thread (threads: 1) in this process too
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# (moment, the step last.ckpt holds when the run is killed: None for no checkpoint yet)
MOMENTS = [("start-up", None), ("step 5", 3), ("epoch 2 start", 10), ("step 17", 15), ("test", 20)]


def test_a_run_killed_at_five_moments_resumes_each_time_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    train(make_config("lenet_bn", **SETTINGS, run_dir=str(tmp_path / "straight")), quiet=True)
    straight = tmp_path / "straight"
    assert len(_metrics(straight)) == 2

    for i, (moment, step) in enumerate(MOMENTS):
        run = tmp_path / f"killed-{i}"
        run.mkdir()
        make_config("lenet_bn", **SETTINGS, run_dir=str(run)).save(run / "config.yaml")
        child = subprocess.run([sys.executable, "-c", KILLED_RUN, str(run / "config.yaml"), moment], timeout=300)
        assert child.returncode == -9, f"{moment}: the run was not killed"
        last = run / "checkpoints" / "last.ckpt"
        assert (load_checkpoint(last)["global_step"] if last.exists() else None) == step, moment

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*taking over the lock")  # the killed run's
            train(None, resume=run, quiet=True)
        assert _metrics(run) == _metrics(straight), moment
        assert _results(run) == _results(straight), moment


def test_checkpoint_every_reads_steps_times_and_off():
    assert checkpoint_interval(500) == checkpoint_interval("500") == (500, 0.0)
    assert checkpoint_interval("30s") == (0, 30.0)
    assert checkpoint_interval("10min") == (0, 600.0)
    assert checkpoint_interval("1.5h") == (0, 5400.0)
    assert checkpoint_interval(0) == checkpoint_interval("off") == (0, 0.0)
    assert make_config("lenet_bn").checkpoint_every == "10min"
    for bad in ("ten", "", "-3", -3, "1.5", "10 minutes", "5d"):
        with pytest.raises(ConfigError, match=rf"^checkpoint_every must be .*; got {bad!r}$"):
            make_config("lenet_bn", checkpoint_every=bad)


def _remaining_after_a_resume(make_loader, done: int):
    """The batches of epoch 1 after its first ``done``: from one loader, and from a fresh one (at epoch 0) given its
    state; and how many batches that fresh loader's next iteration has (a whole epoch again)."""
    loader = make_loader(epoch=1)
    batches = iter(loader)
    for _ in range(done):
        next(batches)
    resumed = make_loader()
    resumed.load_state_dict(loader.state_dict())
    return list(batches), list(resumed), len(list(resumed))


def test_the_device_loader_resumes_its_epoch_at_the_next_batch_with_the_same_augmentation():
    split = Split(torch.randint(0, 256, (100, 1, 12, 12), dtype=torch.uint8), torch.arange(100))

    def make_loader(epoch=0):
        augment = BatchAugment("cifar", mean=[0.5], std=[0.25], generator=torch.Generator())
        loader = DeviceLoader(split, 16, transform=augment, shuffle=True, drop_last=True, seed=3)
        loader.set_epoch(epoch)
        return loader

    straight, resumed, then = _remaining_after_a_resume(make_loader, 2)
    assert len(straight) == len(resumed) == 4 and then == 6
    for (x, y), (rx, ry) in zip(straight, resumed, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_the_folder_loader_resumes_its_epoch_at_the_next_batch():
    def make_loader(epoch=0):
        sampler = ShardSampler(50, shuffle=True, seed=5, even=True)
        sampler.set_epoch(epoch)
        return ResumableDataLoader(torch.arange(50), batch_size=8, sampler=sampler, drop_last=True)

    straight, resumed, then = _remaining_after_a_resume(make_loader, 2)
    assert len(straight) == 4 and [b.tolist() for b in straight] == [b.tolist() for b in resumed] and then == 6
