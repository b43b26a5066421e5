"""Image folders decoded once (``data/cache.py``): decoded once, rebuilt when a file changes, refused over budget."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moderncnn.data import Split, dataset_stats, load_dataset
from moderncnn.data import folder as folder_module
from moderncnn.data.cache import cache_folder
from moderncnn.errors import DataError


def make_folder(root: Path, per_class: int = 6, sizes=((10, 12),), fmt: str = "png") -> None:
    """Two classes of random RGB images; ``sizes`` (height, width) are used in turn."""
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.{fmt}")


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts the images decoded (in this process: ``workers=1``)."""
    calls = []
    real = folder_module.decode

    def counting(path, channels=3):
        calls.append(path)
        return real(path, channels)

    monkeypatch.setattr(folder_module, "decode", counting)
    return calls


def cached(tmp_path, **kwargs):
    data = load_dataset(f"imagefolder:{tmp_path / 'photos'}")
    kwargs = {"workers": 1, "progress": False, "log": lambda line: None, **kwargs}
    return cache_folder(data, tmp_path / "cache", **kwargs)


def test_decoded_once_then_read_from_the_cache(tmp_path, count_decodes):
    make_folder(tmp_path / "photos")
    first = cached(tmp_path)
    assert len(count_decodes) == 12  # every image once
    assert first.in_memory and all(isinstance(s, Split) for s in first.splits.values())
    assert [len(first.splits[s]) for s in ("train", "val", "test")] == [8, 2, 2]  # 80/10/10 of each class, rounded
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = cached(tmp_path)
    assert len(count_decodes) == 12  # nothing decoded again
    for name in first.splits:
        assert torch.equal(first.splits[name].images, second.splits[name].images)
        assert torch.equal(first.splits[name].labels, second.splits[name].labels)


def test_same_pixels_and_labels_as_the_dataloader_path(tmp_path):
    make_folder(tmp_path / "photos", fmt="jpg")
    plain = load_dataset(f"imagefolder:{tmp_path / 'photos'}")
    memory = cached(tmp_path)
    assert memory.classes == plain.classes and memory.image_size is None  # the network's input still decides
    for name, split in plain.splits.items():
        images = torch.stack([split[i][0] for i in range(len(split))])
        assert torch.equal(memory.splits[name].images, images)
        assert memory.splits[name].labels.tolist() == split.targets


def test_rebuilt_after_a_file_changes_or_is_added(tmp_path, count_decodes):
    make_folder(tmp_path / "photos")
    cached(tmp_path)
    changed = tmp_path / "photos" / "cat" / "0.png"
    Image.fromarray(np.full((10, 12, 3), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # even a rewrite that kept the size is seen through the modification time
    count_decodes.clear()
    data = cached(tmp_path)
    assert len(count_decodes) == 12
    everything = torch.cat([s.images for s in data.splits.values()])
    assert (everything == 7).flatten(1).all(dim=1).sum() == 1  # the new pixels are in
    make_folder(tmp_path / "photos", per_class=7)  # one more image per class
    count_decodes.clear()
    assert sum(len(s) for s in cached(tmp_path).splits.values()) == 14
    assert len(count_decodes) == 14


def test_refused_over_budget_and_kept_on_the_dataloader_path(tmp_path, count_decodes):
    make_folder(tmp_path / "photos")  # 12 images of 3x10x12 bytes
    need = 12 * 3 * 10 * 12
    lines = []
    data = cached(tmp_path, budget=need - 1, log=lines.append)
    assert not data.in_memory and not count_decodes and "over the cache budget" in lines[0]
    with pytest.raises(DataError, match=r"12 decoded images take .* over the cache budget"):
        cached(tmp_path, budget=need - 1, force=True)
    assert cached(tmp_path, budget=need).in_memory
    assert not cached(tmp_path, force=False).in_memory


def test_mixed_sizes_are_resized_once_and_the_log_says_so(tmp_path):
    make_folder(tmp_path / "photos", sizes=((10, 12), (16, 16), (9, 20)))
    lines = []
    data = cached(tmp_path, size=14, log=lines.append)
    assert data.splits["train"].images.shape[1:] == (3, 14, 14)
    assert "3 different sizes, resized once to 14x14" in lines[0]
    # Without a size to resize to, such a folder stays on the DataLoader path (or is refused when forced).
    assert not cached(tmp_path).in_memory
    with pytest.raises(DataError, match="3 sizes"):
        cached(tmp_path, force=True)


def test_parallel_workers_decode_the_same_pixels(tmp_path):
    make_folder(tmp_path / "photos", per_class=300, sizes=((6, 5),))  # 600 images: 3 tasks for 2 workers
    one = cached(tmp_path)
    (cache_file,) = (tmp_path / "cache").glob("*.npy")
    cache_file.unlink()
    two = cached(tmp_path, workers=2)
    assert torch.equal(one.splits["train"].images, two.splits["train"].images)
    assert [p.name for p in (tmp_path / "cache").iterdir() if "tmp" in p.name] == []  # no half-written file left


def test_statistics_follow_the_files_of_a_cached_folder(tmp_path):
    make_folder(tmp_path / "photos")
    data = cached(tmp_path)
    pixels = data.splits["train"].images.double() / 255
    mean, _ = dataset_stats(data)
    assert mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)  # train only, as for folders
    first_train_image = load_dataset(f"imagefolder:{tmp_path / 'photos'}").splits["train"].samples[0][0]
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(first_train_image)
    darker, _ = dataset_stats(cached(tmp_path))  # not the statistics stored for the old files
    assert all(new < old for new, old in zip(darker, mean, strict=True))


@pytest.mark.xfail(
    strict=True, reason="known defect: cached folder + bf16 tests at chance; caching is opt-in until fixed"
)
def test_cached_folder_in_bf16_tests_like_the_dataloader_path(tmp_path):
    import warnings

    import numpy as np
    from PIL import Image

    from moderncnn.engine import make_config, train

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 6), ("test", 6)):
        for c, shade in (("dark", 40), ("light", 215)):
            folder = tmp_path / "photos" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.clip(rng.normal(shade, 20, (20, 24, 3)), 0, 255).astype(np.uint8)).save(
                    folder / f"{i}.png"
                )
    (tmp_path / "photos" / "train" / "dark" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    settings = dict(
        dataset=f"imagefolder:{tmp_path / 'photos'}", epochs=2, batch_size=8, lr=0.05, schedule="none",
        augment="cifar", resize=16, num_workers=1, data_dir=str(tmp_path / "data"), precision="bf16-mixed",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cached = train(make_config("resnet20", cache=True, run_dir=str(tmp_path / "c"), **settings), quiet=True)
        loader = train(make_config("resnet20", cache=False, run_dir=str(tmp_path / "l"), **settings), quiet=True)
    assert loader.test_acc >= 0.9 and cached.test_acc >= 0.9
