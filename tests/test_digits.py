"""The embedded `digits` dataset (scikit-learn's handwritten digits) and the offline `moderncnn demo` on it."""

import json
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from moderncnn.cli import main
from moderncnn.data import DataError, dataset_stats, load_dataset
from moderncnn.data import datasets as ds_module
from moderncnn.engine import make_config
from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.run.plan import data_options

# The documented split: a fixed stratified test split of 36 images per class, 180 of the rest for validation.
SIZES = {"train": 1257, "val": 180, "test": 360}


@pytest.fixture
def no_data_root(tmp_path, monkeypatch):
    """A data root that does not exist (a fresh machine): digits must neither need it nor fail on it."""
    root = tmp_path / "no-data-root"
    monkeypatch.setenv("MODERNCNN_DATA", str(root))
    return root


def rows(*splits) -> list[bytes]:
    """Each image with its label as bytes, sorted: equal lists mean the same images, each as often."""
    return sorted(
        bytes(image.flatten().tolist()) + bytes([label])
        for split in splits
        for image, label in zip(split.images, split.labels.tolist(), strict=True)
    )


def test_splits_have_the_documented_sizes_and_partition_all_1797_images(no_data_root):
    data = load_dataset("digits", val_size=180, seed=42)
    assert {name: len(split) for name, split in data.splits.items()} == SIZES
    bunch = load_digits()
    scaled = np.round(bunch.images * 255 / 16).astype(np.uint8)  # 8 → 127.5 → 128 either way
    everything = ds_module.Split(torch.from_numpy(scaled).unsqueeze(1), torch.from_numpy(bunch.target))
    assert rows(*data.splits.values()) == rows(everything)  # disjoint and complete: 1257 + 180 + 360 = 1797
    assert not no_data_root.exists()


def test_images_are_8x8_grey_uint8_over_the_full_range_and_classes_are_the_digits(no_data_root):
    data = load_dataset("digits")
    images = torch.cat([split.images for split in data.splits.values()])
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 8, 8)
    # 17 levels (0..16 on-pixels of a 4x4 block of the 32x32 scan), spread evenly over 0..255.
    assert images.unique().tolist() == [(v * 255 + 8) // 16 for v in range(17)]
    assert data.classes == [str(k) for k in range(10)]
    assert (data.channels, data.image_size, data.num_classes, data.root) == (1, 8, 10, None)


def test_test_split_is_fixed_and_stratified_validation_is_seeded(no_data_root):
    a = load_dataset("digits", val_size=180, seed=42)
    b = load_dataset("digits", val_size=180, seed=42)
    c = load_dataset("digits", val_size=180, seed=7)
    d = load_dataset("digits", val_size=0, seed=7)
    for name in SIZES:
        assert torch.equal(a.splits[name].images, b.splits[name].images)
        assert torch.equal(a.splits[name].labels, b.splits[name].labels)
    assert torch.equal(a.splits["test"].images, c.splits["test"].images)  # every seed is tested on the same images
    assert torch.equal(a.splits["test"].images, d.splits["test"].images)
    assert not torch.equal(a.splits["val"].labels, c.splits["val"].labels)
    assert "val" not in d.splits and len(d.splits["train"]) == 1437
    assert torch.bincount(a.splits["test"].labels).tolist() == [36] * 10
    train_counts = torch.bincount(a.splits["train"].labels, minlength=10)
    assert train_counts.min() >= 100 and train_counts.max() <= 145  # roughly balanced: 1,257 / 10 = 126


def test_stats_come_from_the_1437_training_images_and_write_nothing(no_data_root):
    small, large = load_dataset("digits", val_size=0), load_dataset("digits", val_size=400, seed=3)
    mean, std = dataset_stats(small)
    assert (mean, std) == dataset_stats(large)  # the training split, whatever part of it validates
    pixels = small.splits["train"].images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(std, [pixels.std()], rtol=1e-9)
    assert not no_data_root.exists()


def test_content_is_verified_and_options_are_refused(monkeypatch):
    with pytest.raises(DataError, match="takes no options"):
        load_dataset("digits", image_size=8)
    monkeypatch.setitem(ds_module.CONTENT_DIGESTS, ("digits", "all"), ("0" * 32, "0" * 32))
    with pytest.raises(DataError, match="not the expected 1,797 images"):
        load_dataset("digits")


def test_device_resident_loader_upsamples_to_the_resize_setting(no_data_root):
    config = make_config("lenet_bn", dataset="digits", val_size=180, resize=28, batch_size=64, accelerator="cpu")
    data = ImageDataModule(config.dataset, **data_options(config))
    data.setup("fit")
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32 and labels.shape == (64,)
    assert len(data.train_dataloader()) == 1257 // 64  # drop_last in training
    assert sum(len(y) for _, y in data.test_dataloader()) == 360


def test_cli_data_stats_and_preview(capsys, tmp_path, no_data_root):
    assert main(["data", "stats", "digits", "--val-size", "180", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {name: entry["size"] for name, entry in info["splits"].items()} == SIZES
    assert info["classes"] == [str(k) for k in range(10)] and info["channels"] == 1 and info["image_size"] == 8
    assert 0.25 < info["mean"][0] < 0.35 and 0.3 < info["std"][0] < 0.45  # dark strokes on a black ground
    out = tmp_path / "grid.png"
    assert main(["data", "preview", "digits", "--resize", "28", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and not no_data_root.exists()


def test_demo_end_to_end_offline_reaches_095_test_accuracy(capsys, tmp_path, monkeypatch, no_data_root):
    """The demo as `make demo` runs it (through the CLI, seed 42), in a temporary folder with no data root."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    assert main(["demo", "--quiet", "--run-dir", "run"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "curves.png"):
        assert (run / name).is_file(), name
    assert (run / "confusion-test.png").stat().st_size > 0
    summary = re.search(r"^loss [\d.]+, train acc [\d.]+, test acc ([\d.]+), [\d.]+ examples/sec on cpu$", out, re.M)
    assert summary and float(summary.group(1)) >= 0.95  # the last epoch's network
    best = float(re.search(r"test accuracy of best\.ckpt: ([\d.]+) on 360 images", out).group(1))
    assert best >= 0.95  # the checkpoint predict and export use
    # Predicted from PNG files written from the test split (named by their class), and exported to ONNX.
    predicted = re.search(r"predicted (\d+) test images saved as PNG files: (\d+) right", out)
    assert predicted and int(predicted.group(1)) == 16 and int(predicted.group(2)) >= 14
    assert len(list((run / "samples").rglob("*.png"))) == 16 and (run / "predictions.png").is_file()
    assert (run / "export" / "lenet_bn.onnx").is_file() and "checked with onnxruntime" in out
    assert json.loads((run / "results.json").read_text())["dataset"] == "digits"
    assert "moderncnn reproduce d2l-ch7" in out and "--dataset fashion-mnist" in out
    assert len(list((run / "metrics.csv").read_text().splitlines())) == 1 + 15  # header + one row per epoch
    assert torch.get_num_threads() == threads  # the demo's single thread does not leak into the caller
    assert not (tmp_path / "runs").exists() and not no_data_root.exists()


def test_demo_errors_are_one_line(capsys, tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)  # never download in a test
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist is not in" in err and err.count("\n") == 1
    assert main(["demo", "--dataset", "cifar10"]) == 2
    assert "the demo runs on digits, fashion-mnist, mnist" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
