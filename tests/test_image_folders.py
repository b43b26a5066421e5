"""Image folders as people leave them: symbolic-link loops, files reachable by two names (issue 25, cause 5)."""

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from moderncnn.data.folder import load_image_folder
from moderncnn.errors import DataError


def make_class(folder: Path, n: int, shade: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), shade + i, np.uint8)).save(folder / f"{i}.png")


def all_files(dataset) -> list[tuple[str, int]]:
    return [sample for split in dataset.splits.values() for sample in split.samples]


def test_a_symlink_loop_is_read_once_with_a_warning(tmp_path):
    photos = tmp_path / "photos"
    make_class(photos / "a", 20, 0)
    make_class(photos / "b", 20, 100)
    os.symlink(".", photos / "a" / "self")
    with pytest.warns(UserWarning, match=r"a/self: a link to .*/a, already read"):
        data = load_image_folder(photos, val_size=0.1)
    labels = [label for _, label in all_files(data)]
    assert (labels.count(0), labels.count(1)) == (20, 20)  # not 820 for class a


def test_two_loops_and_a_link_into_another_class_finish_at_once_and_keep_each_file_once(tmp_path):
    photos = tmp_path / "photos"
    make_class(photos / "a", 20, 0)
    make_class(photos / "b", 20, 100)
    os.symlink(".", photos / "a" / "self")
    os.symlink("..", photos / "a" / "up")  # the whole folder again, class b included
    os.symlink("../a", photos / "b" / "other")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_image_folder(photos, val_size=0.1)
    assert time.perf_counter() - start < 10
    assert len(caught) == 3 and all("already read" in str(w.message) for w in caught)
    samples = all_files(data)
    assert len(samples) == 40 and len({os.path.realpath(p) for p, _ in samples}) == 40
    assert all(label == (0 if Path(p).parent.name == "a" else 1) for p, label in samples)  # no image under b's label


def test_a_file_in_two_splits_stays_in_the_evaluation_split_only(tmp_path):
    photos = tmp_path / "photos"
    for split in ("train", "test"):
        make_class(photos / split / "a", 6 if split == "train" else 4, 0 if split == "train" else 50)
        make_class(photos / split / "b", 6 if split == "train" else 4, 100 if split == "train" else 150)
    make_class(photos / "train" / "b" / "sub", 2, 200)
    os.symlink(photos / "train" / "a" / "0.png", photos / "test" / "a" / "copy.png")
    os.symlink(photos / "train" / "b" / "sub", photos / "test" / "b" / "linked")  # a folder of train
    with pytest.warns(UserWarning, match="already in this dataset"):
        data = load_image_folder(photos, val_size=0.25)
    train = {os.path.realpath(p) for p, _ in data.splits["train"].samples + data.splits["val"].samples}
    test = {os.path.realpath(p) for p, _ in data.splits["test"].samples}
    assert not train & test and len(test) == 4 + 1 + 4 + 2 and len(train) == 5 + 6


def test_a_class_left_without_images_is_one_line(tmp_path):
    photos = tmp_path / "photos"
    make_class(photos / "a", 3, 0)
    (photos / "b").mkdir()
    (photos / "b" / "notes.txt").write_text("no image")
    with pytest.raises(DataError, match="no usable image for the classes b"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_image_folder(photos)
