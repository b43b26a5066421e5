"""Datasets on tiny files made here: torchvision's readers, content verification, splits, errors, stats, loader."""

import contextlib
import gzip
import hashlib
import pickle
import struct
import time
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from moderncnn.data import DataError, DeviceLoader, Split, carve_validation, dataset_stats, load_dataset, shard
from moderncnn.data import datasets as ds_module
from moderncnn.data.datasets import content_digest
from moderncnn.data.stats import describe


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write MNIST-format IDX files, as the official archives decompress to."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def make_fashion(root: Path, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / "FashionMNIST" / "raw", prefix, images, labels)
        arrays[prefix] = (images, labels)
    return arrays


def make_cifar(root: Path, per_batch=12, seed=0):
    """CIFAR-10 python batches re-packed without the `filenames` key, as in ../shared/data."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    arrays = {}
    for name in names:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        arrays[name] = (data, labels)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)
    return arrays


def digest_of(images_nhw: np.ndarray, labels) -> tuple[str, str]:
    return content_digest(images_nhw, np.asarray(labels))


@pytest.fixture
def fashion_root(tmp_path, monkeypatch):
    arrays = make_fashion(tmp_path)
    monkeypatch.setitem(ds_module.CONTENT_DIGESTS, ("fashion-mnist", "train"), digest_of(*arrays["train"]))
    monkeypatch.setitem(ds_module.CONTENT_DIGESTS, ("fashion-mnist", "test"), digest_of(*arrays["t10k"]))
    return tmp_path


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    arrays = make_cifar(tmp_path)
    train = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    train_labels = sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    test = arrays["test_batch"][0].reshape(-1, 3, 32, 32)
    monkeypatch.setitem(
        ds_module.CONTENT_DIGESTS, ("cifar10", "train"), digest_of(train.transpose(0, 2, 3, 1), train_labels)
    )
    monkeypatch.setitem(
        ds_module.CONTENT_DIGESTS, ("cifar10", "test"), digest_of(test.transpose(0, 2, 3, 1), arrays["test_batch"][1])
    )
    return tmp_path, train, train_labels


def test_fashion_mnist_is_read_by_torchvision_with_its_class_names(fashion_root):
    data = load_dataset("fashion-mnist", data_dir=fashion_root, download=False)
    assert set(data.splits) == {"train", "test"}
    train = data.splits["train"]
    assert train.images.shape == (60, 1, 28, 28) and train.images.dtype == torch.uint8
    reference = torchvision.datasets.FashionMNIST(str(fashion_root), train=True)
    assert torch.equal(train.images[:, 0], reference.data) and torch.equal(train.labels, reference.targets)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot" and len(data.classes) == 10


def test_a_repacked_cifar10_is_accepted_by_content(cifar_root):
    root, train, labels = cifar_root
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(root), train=True)  # the stock reader checks file md5s
    data = load_dataset("cifar10", data_dir=root, download=False)
    assert torch.equal(data.splits["train"].images, torch.from_numpy(train))
    assert data.splits["train"].labels.tolist() == labels
    assert len(data.splits["test"]) == 12 and data.classes[0] == "airplane" and data.channels == 3


def test_a_copy_with_one_changed_pixel_is_rejected(cifar_root):
    root, _, _ = cifar_root
    path = root / "cifar-10-batches-py" / "data_batch_3"
    entry = pickle.loads(path.read_bytes())
    entry["data"][5, 100] ^= 1
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataError, match="cifar10 train split in .* is not the official content"):
        load_dataset("cifar10", data_dir=root, download=False)


def test_a_truncated_file_is_rejected_clearly(cifar_root):
    root, _, _ = cifar_root
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="could not be read .* corrupt or truncated"):
        load_dataset("cifar10", data_dir=root, download=False)


def test_content_that_is_not_the_official_one_is_rejected(tmp_path):
    make_fashion(tmp_path)  # random pixels: torchvision reads them, the digest check does not accept them
    with pytest.raises(DataError, match="fashion-mnist train split .* not the official content"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


def test_missing_and_offline_names_dataset_files_folder_and_both_fixes(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(ds_module.CIFAR10, "download", offline)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message
    expected = [
        "cifar10 is not in",
        "data_batch_1",
        "test_batch",
        str(tmp_path / "empty" / "cifar-10-batches-py"),
        "download failed",
        "Name or service not known",
        "connect to the network",
        "--data-dir",
        "$MODERNCNN_DATA",
    ]
    for part in expected:
        assert part in message
    with pytest.raises(DataError, match="downloading is switched off"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty", download=False)


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    """Tiny MNIST files with the .gz archives torchvision leaves beside them, whose md5s stand in for the official."""
    raw = tmp_path / "MNIST" / "raw"
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(raw, prefix, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8))
    resources = []
    for idx in sorted(raw.iterdir()):
        archive = idx.with_name(idx.name + ".gz")
        archive.write_bytes(gzip.compress(idx.read_bytes()))
        resources.append((archive.name, hashlib.md5(archive.read_bytes()).hexdigest()))
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    return tmp_path


def test_mnist_is_verified_against_the_official_archives_beside_it(mnist_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no "not verified" warning
        data = load_dataset("mnist", data_dir=mnist_root, download=False)
    assert len(data.splits["train"]) == 30 and len(data.splits["test"]) == 10 and data.classes[3].startswith("3")


def test_mnist_file_that_differs_from_its_archive_is_rejected(mnist_root):
    path = mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    content = bytearray(path.read_bytes())
    content[500] ^= 1
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match="mnist test split in .* is not the official content .*t10k-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=mnist_root, download=False)


def test_mnist_archive_without_the_official_md5_is_rejected(mnist_root, monkeypatch):
    resources = [
        (name, "0" * 32 if name.startswith("train-labels") else md5)
        for name, md5 in torchvision.datasets.MNIST.resources
    ]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz does not have the official md5"):
        load_dataset("mnist", data_dir=mnist_root, download=False)


def test_mnist_without_archives_loads_with_a_warning_that_it_is_not_verified(mnist_root):
    for archive in (mnist_root / "MNIST" / "raw").glob("*.gz"):
        archive.unlink()
    with pytest.warns(UserWarning, match=r"mnist \w+ split in .* is not verified"):
        data = load_dataset("mnist", data_dir=mnist_root, download=False)
    assert len(data.splits["train"]) == 30


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MODERNCNN_DATA", str(tmp_path / "env"))
    assert ds_module.data_root(tmp_path / "flag") == tmp_path / "flag"
    assert ds_module.data_root() == tmp_path / "env"
    monkeypatch.delenv("MODERNCNN_DATA")
    assert ds_module.data_root() == Path("~/.cache/moderncnn/data").expanduser()


def test_unknown_dataset_and_bad_options():
    with pytest.raises(DataError, match="unknown dataset 'cifar11'; valid: fashion-mnist, mnist, cifar10"):
        load_dataset("cifar11")
    with pytest.raises(DataError, match="unknown synthetic options \\['colour'\\]"):
        load_dataset("synthetic:colour=3")
    with pytest.raises(DataError, match="KEY=INTEGER"):
        load_dataset("synthetic:channels=three")


def test_validation_split_is_seeded_and_equals_random_split():
    train = Split(torch.zeros(50, 1, 2, 2, dtype=torch.uint8), torch.arange(50))
    kept, val = carve_validation(train, 5, seed=42)
    ref_train, ref_val = torch.utils.data.random_split(range(50), [45, 5], generator=torch.Generator().manual_seed(42))
    assert kept.labels.tolist() == list(ref_train) and val.labels.tolist() == list(ref_val)
    assert carve_validation(train, 0.1, seed=42)[1].labels.tolist() == val.labels.tolist()
    assert carve_validation(train, 5, seed=1)[1].labels.tolist() != val.labels.tolist()
    assert carve_validation(train, 0, seed=42) == (train, None)
    with pytest.raises(DataError, match="val_size must be in"):
        carve_validation(train, 50, seed=42)


def test_val_size_on_a_named_dataset(fashion_root):
    data = load_dataset("fashion-mnist", data_dir=fashion_root, val_size=10, download=False)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [50, 10, 20]


def test_synthetic_is_learnable_deterministic_and_configurable():
    a = load_dataset("synthetic:image_size=16,channels=3,num_classes=4", val_size=0.1)
    b = load_dataset("synthetic", image_size=16, channels=3, num_classes=4, val_size=0.1)
    assert a.splits["train"].images.shape == (1800, 3, 16, 16) and len(a.splits["val"]) == 200
    assert torch.equal(a.splits["train"].images, b.splits["train"].images)
    assert torch.bincount(a.splits["test"].labels).tolist() == [125] * 4
    # The signal is learnable: a few steps of logistic regression on the 2D Fourier magnitudes separate the classes.
    x = torch.fft.rfft2(a.splits["train"].images.float().mean(1)).abs().flatten(1)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    w = torch.zeros(x.shape[1], 4, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x @ w, a.splits["train"].labels).backward()
        opt.step()
    accuracy = ((x @ w).argmax(1) == a.splits["train"].labels).float().mean().item()
    assert accuracy > 0.9


def make_folder(root: Path, classes=("cat", "dog"), per_class=10, size=12) -> None:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_skips_a_corrupt_and_a_non_image_file_with_one_warning_each(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as record:
        data = load_dataset(f"imagefolder:{tmp_path}")
    messages = [str(w.message) for w in record]
    assert sum("broken.png" in m for m in messages) == 1 and sum("notes.txt" in m for m in messages) == 1
    assert data.classes == ["cat", "dog"]
    assert sum(len(s) for s in data.splits.values()) == 20  # 80/10/10 of the 20 good images
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    image, label = data.splits["train"][0]
    assert image.dtype == torch.uint8 and image.shape == (3, 12, 12) and label in (0, 1)


def test_image_folder_uses_train_val_test_subfolders(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        make_folder(tmp_path / split, per_class=n)
    data = load_dataset(f"imagefolder:{tmp_path}", channels=1)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [12, 4, 6]
    assert data.splits["test"][0][0].shape == (1, 12, 12)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_statistics_are_exact_and_cached_next_to_the_data(fashion_root):
    data = load_dataset("fashion-mnist", data_dir=fashion_root, val_size=10, download=False)
    everything = torch.cat([data.splits["train"].images, data.splits["val"].images]).double() / 255
    mean, std = dataset_stats(data)
    # The official training split (train + the carved validation images), population std.
    assert mean == pytest.approx([everything.mean().item()], abs=1e-12)
    assert std == pytest.approx([everything.std(unbiased=False).item()], abs=1e-12)
    cache = fashion_root / "moderncnn-stats.json"
    assert cache.is_file()
    cache.write_text(cache.read_text().replace(str(mean[0])[:8], "0.123456"))
    assert dataset_stats(data)[0][0] == pytest.approx(float("0.123456" + str(mean[0])[8:]))  # read from the cache


def test_folder_statistics_per_channel(tmp_path):
    make_folder(tmp_path)
    data = load_dataset(f"imagefolder:{tmp_path}")
    pixels = torch.stack([data.splits["train"][i][0] for i in range(len(data.splits["train"]))]).double() / 255
    mean, std = dataset_stats(data)
    assert mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(pixels.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-12)


def test_describe_counts_classes_per_split(fashion_root):
    info = describe(load_dataset("fashion-mnist", data_dir=fashion_root, download=False))
    assert info["splits"]["train"] == {"size": 60, "class_counts": [6] * 10}
    assert info["splits"]["test"]["class_counts"] == [2] * 10
    assert {"splits", "classes", "mean", "std"} <= set(info)


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("n", [10, 11, 12])
def test_shards_are_disjoint_and_cover_the_epoch(world_size, n):
    order = torch.randperm(n)
    parts = [shard(order, r, world_size, even=False) for r in range(world_size)]
    assert sorted(torch.cat(parts).tolist()) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    even = [shard(order, r, world_size, even=True) for r in range(world_size)]
    assert len({len(p) for p in even}) == 1 and len(torch.cat(even).unique()) == n // world_size * world_size


def test_loader_shards_under_a_simulated_world_of_three():
    split = Split(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), torch.arange(100))
    loaders = [DeviceLoader(split, 8, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    for loader in loaders:
        loader.set_epoch(2)
    seen = [torch.cat([y for _, y in loader]) for loader in loaders]
    assert [len(s) for s in seen] == [33, 33, 33] and len(torch.cat(seen).unique()) == 99
    assert all(len(loader) == 5 for loader in loaders)


def test_loader_epochs_are_seeded_permutations():
    split = Split(torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1), torch.arange(40))
    loader = DeviceLoader(split, 16, shuffle=True, seed=7)
    first = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(40)) and first.tolist() != list(range(40))
    assert torch.equal(first, torch.cat([y for _, y in DeviceLoader(split, 16, shuffle=True, seed=7)]))
    loader.set_epoch(1)
    assert not torch.equal(first, torch.cat([y for _, y in loader]))
    x, y = next(iter(DeviceLoader(split, 16)))
    assert x.dtype == torch.float32 and torch.equal(x.flatten() * 255, y.float())  # default: scale to [0, 1]
    assert len(DeviceLoader(split, 16, drop_last=True)) == 2 and len(DeviceLoader(split, 16)) == 3


class _SlowDownload:
    """Stands in for a torchvision reader: a 'download' that takes a while and writes the files; reading fails."""

    files = ["a", "b"]

    def __init__(self, root: str, train: bool, download: bool):
        if download:
            with open(Path(root) / "downloads.log", "a") as log:
                log.write("download\n")
            time.sleep(0.5)
            for name in self.files:
                (Path(root) / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(root) / "raw" / name).write_text("x")
        else:
            raise RuntimeError("not a real dataset")


def _read_with_slow_download(root: Path) -> None:
    ds_module._READERS["fake"] = (_SlowDownload, "raw", _SlowDownload.files)
    with contextlib.suppress(DataError):  # the fake files cannot be read; only the number of downloads matters
        ds_module._read("fake", "train", root, download=True)


def test_processes_that_find_files_missing_together_download_once(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")  # the children inherit the fake reader
    processes = [context.Process(target=_read_with_slow_download, args=(tmp_path,)) for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    assert (tmp_path / "downloads.log").read_text() == "download\n"


def test_image_folder_split_holds_every_class_in_each_part(tmp_path):
    make_folder(tmp_path, classes=("a", "b", "c"), per_class=10)
    data = load_dataset(f"imagefolder:{tmp_path}")
    for split in ("val", "test"):
        assert sorted(data.splits[split].targets) == [0, 1, 2]  # stratified: one of each class
    again = load_dataset(f"imagefolder:{tmp_path}")
    assert data.splits["val"].samples == again.splits["val"].samples  # seeded
    other = load_dataset(f"imagefolder:{tmp_path}", seed=7)
    assert data.splits["val"].samples != other.splits["val"].samples
