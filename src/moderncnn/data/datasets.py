"""Named datasets, read by torchvision (or scikit-learn), verified by content, held as uint8 tensors.

``load_dataset("fashion-mnist")`` returns a :class:`Dataset`: class names and ``train``/``val``/``test``
splits. The small named datasets come back in memory as :class:`Split` (uint8 images shaped
``(N, C, H, W)`` and int64 labels), ready for the device-resident loader; ``imagefolder:PATH`` comes back
as torchvision ``ImageFolder`` datasets for a ``DataLoader`` (see ``folder.py``).

Files are read by torchvision's own dataset classes. What we change is how a copy is judged: instead of
the md5 of the files (which rejects a faithful but re-packed copy such as the CIFAR-10 in
``../shared/data``), the md5 of the decoded arrays is compared with the official content's digest. Where we
know no such digest (MNIST), the files must match the official archives torchvision downloaded beside them.

``digits`` is the exception that needs no files: scikit-learn's bundled handwritten digits (1,797 real 8x8 grey
images, 10 classes) ship inside scikit-learn, so it works offline and with no data root; it is the dataset of
``moderncnn demo``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor
from torchvision.datasets.utils import check_integrity

from moderncnn.data.base import DEFAULT_ROOT, NAMED, DataError, Dataset, Split, carve_validation, data_root
from moderncnn.data.folder import load_image_folder
from moderncnn.data.synthetic import make_synthetic

# Re-exported: older code and tests import these names from here.
__all__ = ["DEFAULT_ROOT", "NAMED", "DataError", "Dataset", "Split", "carve_validation", "data_root", "load_dataset"]

# md5 of the decoded arrays in torchvision's `.data` layout (contiguous uint8, (N, H, W) or (N, H, W, C)) and of
# the labels as uint8, for the official content of each split; from ../shared/data/README.md.
CONTENT_DIGESTS = {
    ("fashion-mnist", "train"): ("f209073e486d5113ebe2cc431d4df862", "3236f6424fc25388b2834cb19942cf7e"),
    ("fashion-mnist", "test"): ("b7656a891b218fc13e45205c48a92cae", "8dea97a4e78c1bd1b5a6e8efbb870b6e"),
    ("cifar10", "train"): ("17e2cb5a4119d89a4a13e02b91701bff", "69c5f3349be54915edfca558b72ad888"),
    ("cifar10", "test"): ("6d2714505047e13831cd876923568712", "251f18ce75337ae9ca5d0dbd7ea62cf4"),
    # All 1,797 digits as scaled by `_load_digits` (values 0..16 → 0..255), in scikit-learn's order.
    ("digits", "all"): ("3882073453642be58b6586ccbbbf7eb2", "96ecbac7ce6c9c7e9f9f82160cffba40"),
}


def content_digest(data: np.ndarray | Tensor, labels) -> tuple[str, str]:
    """md5 of the images and of the labels (as uint8), as in ``CONTENT_DIGESTS``."""
    images = np.ascontiguousarray(data.numpy() if isinstance(data, Tensor) else data, dtype=np.uint8)
    targets = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels).astype(np.uint8)
    return hashlib.md5(images.tobytes()).hexdigest(), hashlib.md5(targets.tobytes()).hexdigest()


class CIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR-10 reader; file md5s are not checked here, the decoded content is (see ``_read``)."""

    def _check_integrity(self) -> bool:
        names = [name for name, _ in self.train_list + self.test_list] + [self.meta["filename"]]
        return all(Path(self.root, self.base_folder, name).is_file() for name in names)

    def _load_meta(self) -> None:
        import pickle

        with open(Path(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


_MNIST_FILES = [f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]

# name → (torchvision reader, folder under the root, the files torchvision reads there)
_READERS = {
    "fashion-mnist": (torchvision.datasets.FashionMNIST, "FashionMNIST/raw", _MNIST_FILES),
    "mnist": (torchvision.datasets.MNIST, "MNIST/raw", _MNIST_FILES),
    "cifar10": (
        CIFAR10,
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"],
    ),
    "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python", ["train", "test", "meta"]),
}


@contextlib.contextmanager
def _download_lock(root: Path):
    """An exclusive lock on ``root/.moderncnn-download.lock`` (none where the root cannot be written, or off POSIX)."""
    try:
        import fcntl

        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".moderncnn-download.lock", "a")  # noqa: SIM115 - held open for the lock's lifetime
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _read(name: str, split: str, root: Path, download: bool) -> tuple[Split, list[str]]:
    """Read one official split through torchvision, downloading if allowed, and verify its content."""
    reader, folder, files = _READERS[name]
    # Several processes (the ranks of a multi-process run, two runs at once) may find the files missing together:
    # one downloads while the others wait, then find them present.
    with _download_lock(root):
        missing = [f for f in files if not (root / folder / f).is_file()]
        if missing:
            if not download:
                raise DataError(_missing_message(name, folder, files, root, "downloading is switched off"))
            try:
                reader(str(root), train=True, download=True)
            except Exception as err:
                why = f"the download failed ({_first_line(err)})"
                raise DataError(_missing_message(name, folder, files, root, why)) from None
    try:
        ds = reader(str(root), train=split == "train", download=False)
    except Exception as err:  # present but unreadable: truncated, not a pickle, failing torchvision's own check
        raise DataError(
            f"{name}: the files in {root / folder} could not be read ({_first_line(err)}); they are corrupt or "
            f"truncated: delete the folder and run again to download a fresh copy"
        ) from None

    images = ds.data if isinstance(ds.data, Tensor) else torch.from_numpy(np.ascontiguousarray(ds.data))
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    expected = CONTENT_DIGESTS.get((name, split))
    if expected is None:
        _check_against_archives(name, split, reader, root / folder)
    elif content_digest(images, labels) != expected:
        raise DataError(
            f"{name} {split} split in {root / folder} is not the official content (the md5 of its decoded "
            f"images/labels differs): the copy is corrupt, truncated or another dataset; delete the folder and run "
            f"again to download a fresh copy"
        )
    # (N, H, W) grey or (N, H, W, C) RGB → (N, C, H, W)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return Split(images.contiguous(), labels), list(ds.classes)


def _check_against_archives(name: str, split: str, reader: type, folder: Path) -> None:
    """Verify a split whose content digest we do not know (MNIST) against the official archives torchvision keeps.

    torchvision leaves the ``.gz`` archives it downloaded beside the files it decompressed; where they are there, each
    archive must have the official md5 (torchvision's ``resources``) and decompress to exactly the file being read.
    Without archives (files copied in by hand) nothing can be checked, and a warning says so. CIFAR-100 needs none of
    this: torchvision's reader checks the md5 of its official files itself.
    """
    prefix = "train-" if split == "train" else "t10k-"
    archives = [(f, md5) for f, md5 in getattr(reader, "resources", []) if f.startswith(prefix) and f.endswith(".gz")]
    if not archives:
        return
    if not all((folder / archive).is_file() for archive, _ in archives):
        warnings.warn(
            f"{name} {split} split in {folder} is not verified: no content digest is known for it and the official "
            f"archives ({', '.join(a for a, _ in archives)}) are not there to compare with",
            stacklevel=3,
        )
        return
    for archive, md5 in archives:
        path = folder / archive
        decompressed = path.with_suffix("")  # the IDX file torchvision reads
        official = check_integrity(str(path), md5) and gzip.decompress(path.read_bytes()) == decompressed.read_bytes()
        if not official:
            raise DataError(
                f"{name} {split} split in {folder} is not the official content ({archive} does not have the official "
                f"md5, or {decompressed.name} is not what it decompresses to): delete the folder and run "
                f"again to download a fresh copy"
            )


def _first_line(err: BaseException) -> str:
    """The error's message on one line, shortened: torchvision's download errors span several lines."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _missing_message(name: str, folder: str, files: list[str], root: Path, why: str) -> str:
    return (
        f"{name} is not in {root} (expected {', '.join(files)} in {root / folder}) and {why}. Fix it either way: "
        f"connect to the network and run again (torchvision downloads it), or put the files there / point "
        f"--data-dir or $MODERNCNN_DATA at a folder that has them"
    )


DIGITS_TEST_PER_CLASS = 36  # 360 test images, 20 % of 1,797; the smallest class ("8") has 174
DIGITS_TEST_SEED = 0


def _load_digits(val_size: int | float, seed: int) -> Dataset:
    """scikit-learn's handwritten digits as a :class:`Dataset`: a fixed stratified test split of 360 images, the
    remaining 1,437 for training, ``val_size`` of them carved out for validation with ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise DataError(
            "the digits dataset ships with scikit-learn, which is not installed: pip install scikit-learn"
        ) from None
    bunch = load_digits()
    # The pixels are counts 0..16 (on-pixels of a 4x4 block of the 32x32 original); scale to 0..255, rounding half up.
    values = torch.as_tensor(bunch.images, dtype=torch.int64)
    images = ((values * 255 + 8) // 16).to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    if content_digest(images, labels) != CONTENT_DIGESTS[("digits", "all")]:
        raise DataError("scikit-learn's digits are not the expected 1,797 images (the md5 of the content differs)")
    generator = torch.Generator().manual_seed(DIGITS_TEST_SEED)
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for k in range(10):
        members = (labels == k).nonzero().flatten()
        is_test[members[torch.randperm(len(members), generator=generator)[:DIGITS_TEST_PER_CLASS]]] = True
    everything = Split(images.unsqueeze(1).contiguous(), labels)  # (N, 8, 8) → (N, 1, 8, 8)
    train, val = carve_validation(everything.subset((~is_test).nonzero().flatten()), val_size, seed)
    test = everything.subset(is_test.nonzero().flatten())
    splits = {"train": train, **({"val": val} if val is not None else {}), "test": test}
    classes = [str(k) for k in range(10)]
    # No root: nothing is read from the data root, and the statistics of 1,437 tiny images are not worth caching.
    return Dataset("digits", classes, splits, channels=1, image_size=8, info={"source": "sklearn.datasets.load_digits"})


def _parse_options(name: str) -> dict[str, int]:
    """``"synthetic:image_size=28,channels=3"`` → ``{"image_size": 28, "channels": 3}``."""
    _, _, text = name.partition(":")
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if not value.strip().lstrip("-").isdigit():
            raise DataError(
                f"dataset options are KEY=INTEGER joined by commas, e.g. synthetic:channels=3; got {item!r}"
            )
        options[key.strip()] = int(value)
    return options


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    val_size: int | float = 0,
    seed: int = 42,
    download: bool = True,
    **options,
) -> Dataset:
    """Load a dataset by name.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``digits`` (scikit-learn's 8x8 digits: a
            fixed test split of 360, the other 1,437 for train and val), ``imagefolder:PATH``, or ``synthetic``
            with options in the name or as keywords (``synthetic:image_size=28,channels=3``; ``num_train``,
            ``num_test``, ``image_size``, ``channels``, ``num_classes``, ``seed``).
        data_dir: data root (default: ``$MODERNCNN_DATA``, else ``~/.cache/moderncnn/data``).
        val_size: validation images carved from the training split (count or fraction); 0 for none, as the
            textbook does (it trains on all 60,000 Fashion-MNIST images and reports test accuracy).
        seed: seed of the validation split.
        download: let torchvision download missing files.

    Raises:
        DataError: unknown name, missing files that cannot be downloaded, or a corrupt copy.
    """
    if name.startswith("imagefolder:"):
        return load_image_folder(Path(name.split(":", 1)[1]), val_size=val_size or 0.1, seed=seed, **options)
    if name == "synthetic" or name.startswith("synthetic:"):
        options = {**_parse_options(name), **options}
        valid = ("num_train", "num_test", "image_size", "channels", "num_classes", "seed")
        if set(options) - set(valid):
            raise DataError(f"unknown synthetic options {sorted(set(options) - set(valid))}; valid: {', '.join(valid)}")
        return make_synthetic(val_size=val_size, split_seed=seed, **options)
    if name == "digits":
        if options:
            raise DataError(f"digits takes no options, got {', '.join(options)}")
        return _load_digits(val_size, seed)
    if name not in _READERS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(NAMED)}, imagefolder:PATH")
    if options:
        raise DataError(f"{name} takes no options, got {', '.join(options)}")
    root = data_root(data_dir)
    train, classes = _read(name, "train", root, download)
    test, _ = _read(name, "test", root, download)
    train, val = carve_validation(train, val_size, seed)
    splits = {"train": train, **({"val": val} if val is not None else {}), "test": test}
    return Dataset(name, classes, splits, channels=train.images.shape[1], image_size=train.images.shape[-1], root=root)
