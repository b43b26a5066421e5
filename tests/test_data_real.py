"""The real Fashion-MNIST and CIFAR-10, from a data root made by ../shared/data/prepare; skipped when absent."""

import pytest
import torch

from moderncnn.data import data_root, dataset_stats, load_dataset
from moderncnn.data.datasets import DataError


def load_or_skip(name: str, **kwargs):
    try:
        return load_dataset(name, download=False, **kwargs)
    except DataError as err:
        if "is not in" in str(err):
            pytest.skip(f"{name} not in {data_root()} (run ../shared/data/prepare {data_root()})")
        raise


@pytest.mark.parametrize(
    ("name", "sizes", "mean", "std"),
    [
        ("fashion-mnist", (60_000, 10_000), [0.2860], [0.3530]),
        ("cifar10", (50_000, 10_000), [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    ],
)
def test_real_dataset_counts_balance_and_statistics(name, sizes, mean, std):
    data = load_or_skip(name)  # loading verifies the content digests of both splits
    assert (len(data.splits["train"]), len(data.splits["test"])) == sizes
    for split, size in zip(("train", "test"), sizes, strict=True):
        assert torch.bincount(data.splits[split].labels).tolist() == [size // 10] * 10
    got_mean, got_std = dataset_stats(data, cache=False)
    assert [round(m, 4) for m in got_mean] == mean
    assert [round(s, 4) for s in got_std] == std


def test_uva_split_of_cifar10():
    data = load_or_skip("cifar10", val_size=5000, seed=42)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [45_000, 5_000, 10_000]
    # The statistics do not depend on the carved validation set: the UvA tutorial's values.
    mean, std = dataset_stats(data, cache=False)
    assert mean == pytest.approx([0.49139968, 0.48215841, 0.44653091], abs=1e-8)
    assert std == pytest.approx([0.24703223, 0.24348513, 0.26158784], abs=1e-8)


def test_auto_speed_settings_keep_the_accuracy_of_fp32(tmp_path):
    """Fast by default must not cost accuracy: BN-LeNet on the real Fashion-MNIST, same seed and epochs, with the
    `auto` choices (bf16 and channels-last on a CPU that computes bf16) and in plain fp32."""
    from moderncnn.engine import make_config, train
    from moderncnn.run.speed import detect_hardware

    if not detect_hardware().bf16:
        pytest.skip("this CPU has no native bf16: `auto` trains in fp32 here, so there is no bf16 run to compare")
    load_or_skip("fashion-mnist", val_size=0)

    settings = {"dataset": "fashion-mnist", "epochs": 2, "seed": 0}
    auto = train(make_config("lenet_bn", run_dir=str(tmp_path / "auto"), **settings), quiet=True)
    fp32 = train(make_config("lenet_bn", precision="32", run_dir=str(tmp_path / "fp32"), **settings), quiet=True)
    assert fp32.test_acc > 0.8  # both runs learned (10 classes: chance is 0.1)
    assert abs(auto.test_acc - fp32.test_acc) <= 0.01
