"""Runs that cannot go on end in one line and leave a run that resumes (issue 25, causes 9 and 10)."""

import json
import os
import pickle
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from moderncnn.cli import main
from moderncnn.data import cache as cache_module
from moderncnn.data import load_dataset
from moderncnn.data.cache import cache_folder
from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.engine import training as training_module
from moderncnn.errors import DataError, OutputError

TINY = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"


pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert json.loads((run / "results.json").read_text())["test_acc"] == pytest.approx(resumed.test_acc, abs=1e-6)
    assert [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]] == ["0", "1"]


# ------------------------------------------------------------------------ cause 10: one line, exit 2, nothing left


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def refused(capsys, run: Path, *argv) -> str:
    """The one-line error of ``moderncnn train ... --run-dir run``, which must leave no run directory."""
    code, err = cli(capsys, "train", *argv, "--run-dir", run, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-3000:]
    assert not run.exists()
    return err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["lenet_bn", "--dataset", "digits", "--resize", "28", "--batch-size", "5000"],
         "batch_size 5000 is larger than the training split of digits (1,437 images), so no full batch would train; "
         "use --batch-size 1437 or less"),
        (["lenet_bn", "--dataset", "digits", "--val-size", "1436"],
         "batch_size 256 is larger than the training split of digits (1 images)"),
        (["lenet_bn", "--dataset", TINY, "--batch-size", "1"],
         "batch_size 1 with lenet_bn, which has BatchNorm: its statistics need at least 2 images per batch"),
        (["lenet", "--dataset", TINY, "--batch-size", "64", "--limit-batches", "0.0001"],
         "limit_batches 0.0001 of the 4 batches of the train split is no batch at all"),
    ],
    ids=["batch-over-train", "val-size-leaves-one", "batchnorm-batch-1", "limit-below-one-batch"],
)  # fmt: skip
def test_settings_that_would_train_on_nothing_are_one_line(tmp_path, capsys, argv, words):
    assert words in refused(capsys, tmp_path / "run", *argv)


def test_folders_with_one_class_or_an_empty_split_are_one_line(tmp_path, capsys):
    for name, classes, per_class in (("one", ["a"], 10), ("two", ["a", "b"], 1)):
        for c in classes:
            (tmp_path / name / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / name / c / f"{i}.png")
    err = refused(capsys, tmp_path / "run", "lenet_bn", "--dataset", f"imagefolder:{tmp_path / 'one'}")
    assert "has 1 class (a); a classifier needs two or more" in err
    err = refused(
        capsys, tmp_path / "run", "lenet_bn", "--dataset", f"imagefolder:{tmp_path / 'two'}", "--batch-size", "2"
    )
    assert "its val split is empty (train 2, val 0, test 0 images)" in err


@pytest.fixture(scope="module")
def finished(tiny_run) -> Path:
    return tiny_run


# ------------------------------------------------------- checkpoints that are refused, before anything is written


def _files(run: Path) -> dict:
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [("model", "lenet", "model 'lenet_bn' in the checkpoint but 'lenet' in config.yaml"),
     ("resize", 32, "resize None in the checkpoint but 32 in config.yaml"),
     ("dataset", "digits", "dataset 'synthetic:image_size=28,channels=1,num_train=256,num_test=64' in the checkpoint "
      "but 'digits' in config.yaml")],
)  # fmt: skip
def test_a_resume_whose_config_no_longer_describes_the_weights_is_refused(
    finished, tmp_path, capsys, key, value, words
):
    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, key: value}, sort_keys=False))
    before = _files(run)
    code, err = cli(capsys, "train", "--resume", run, "--epochs", "3", "--quiet")
    assert code == 2 and err.count("\n") == 1 and words in err and "put config.yaml back" in err
    assert _files(run) == before


def test_a_resume_whose_weights_do_not_fit_is_refused(finished, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    (run / "results.json").unlink()  # as if interrupted
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["hyper_parameters"]["num_classes"] = 4
    torch.save(checkpoint, last)
    before = _files(run)
    with warnings.catch_warnings():
        code, err = cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 2 and err.count("\n") == 1 and "do not fit" in err
    assert _files(run) == before


def test_tampered_and_foreign_checkpoints_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(pickle.dumps({"state_dict": {}, "hyper_parameters": {"config": {}}, "x": Payload()}))
    with pytest.raises(ValueError, match="refusing .*tampered.ckpt: not a plain moderncnn checkpoint"):
        load_checkpoint(tampered)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weight": torch.ones(2)}, foreign)
    with pytest.raises(ValueError, match="not a moderncnn training checkpoint"):
        load_checkpoint(foreign)


def test_an_image_that_changes_size_while_a_folder_is_cached_is_one_line(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    for c in ("a", "b"):
        (photos / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(photos / c / f"{i}.png")
    data = load_dataset(f"imagefolder:{photos}", val_size=0.2)
    scanned = cache_module._image_sizes  # sees 10x12 everywhere; then a file is replaced by a larger one

    def grow_then_scan(paths):
        sizes = scanned(paths)
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photos / "b" / "3.png")
        return sizes

    monkeypatch.setattr(cache_module, "_image_sizes", grow_then_scan)
    with pytest.raises(DataError) as caught:
        cache_folder(data, tmp_path / "cache", force=True, workers=1, progress=False, log=lambda line: None)
    assert str(caught.value) == (
        f"{photos / 'b' / '3.png'} is 20x20 now but was 12x10 when the folder was scanned: it changed while the folder "
        "was being cached; run again once it is settled"
    )
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_options_that_are_not_finite_or_not_positive_are_one_line(finished, capsys):
    for argv, words in (
        (["landscape", finished, "--span", "nan"], "span (a finite number), subset and batch size must be positive"),
        (["landscape", finished, "--span", "inf"], "got inf"),
        (["serve", finished, "--max-body-mb", "nan"], "max_body_mb must be a positive finite number of MB, got nan"),
        (["serve", finished, "--max-body-mb", "inf"], "got inf"),
        (["benchmark", "lenet", "--batch-size", "0"], "batch_size must be a positive number of images, got 0"),
    ):
        code, err = cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and words in err, err
