"""Image folders decoded once: a uint8 cache file, then the device-resident loader like the named datasets.

Decoding JPEGs is what makes an image folder slow: a ``DataLoader`` decodes every image again each epoch (CIFAR-10
as 50,000 JPEG files: 343 examples/sec against 722 in memory, same network, two cores). A folder whose decoded
images fit the memory budget (default a quarter of the RAM) is decoded once instead, in worker processes with a
progress bar, into ``<data root>/cache/<digest>.npy``; later runs read that file in a second. The digest covers
each file's path relative to the folder, size and modification time, the channel count and (when resizing) the
target size, so a changed, added or removed file means a new cache. The file is written under a temporary name and
renamed, so a reader never sees half of one. Beside it, ``<digest>.json`` records the array's shape and the sha256 of
its pixels; a cache whose file is truncated, of another shape, unreadable or changed since (all zeros, say) is
rebuilt with a one-line warning naming it, never trained on.

Images of one size are kept as they are (the same pixels the ``DataLoader`` path decodes). Images of different
sizes are resized once to ``size`` (the network's input), antialiased, as ``torchvision.transforms.v2.Resize``;
random augmentation then happens at that size instead of at each image's own.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import torch

from moderncnn.data.datasets import Dataset, Split, _download_lock
from moderncnn.errors import DataError

BUDGET_FRACTION = 0.25
_FORMAT = 2  # bump when the file's layout changes: older caches are then simply not found
_CHUNK = 256  # images per task handed to a worker: progress updates often enough, tasks stay cheap to send


def memory_budget() -> int:
    """Bytes a cache may take: a quarter of the machine's RAM (the whole of it where the size is unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * BUDGET_FRACTION)
    except (ValueError, OSError, AttributeError):
        return sys.maxsize


def files_digest(root: Path, paths: list[str], channels: int, size: int | None) -> str:
    """Digest of the files (relative path, size, modification time) and of the decoding settings."""
    h = hashlib.sha256(f"moderncnn-cache {_FORMAT} channels={channels} size={size}\n".encode())
    for path in paths:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _image_sizes(paths: list[str]) -> set[tuple[int, int]]:
    """The distinct ``(height, width)`` of the images, from their headers (nothing decoded)."""
    from PIL import Image

    sizes = set()
    for path in paths:
        with Image.open(path) as im:
            sizes.add((im.height, im.width))
    return sizes


def _human(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _over_budget(name: str, need: int, allowed: int) -> str:
    return f"{name}: {_human(need)} decoded, over the cache budget of {_human(allowed)}; read per epoch"


class _Damaged(Exception):
    """A cache file that cannot be trusted; the message says why."""


def _record(out: Path) -> Path:
    """The file beside a cache that records its shape and checksum."""
    return out.with_suffix(".json")


def _checksum(array: np.ndarray) -> str:
    h = hashlib.sha256()
    flat = array.reshape(-1)
    for start in range(0, flat.size, 1 << 26):  # 64 MB at a time: a memory-mapped cache is not read whole
        h.update(np.ascontiguousarray(flat[start : start + (1 << 26)]).data)
    return h.hexdigest()


def _checked_shape(out: Path, n: int, channels: int) -> tuple[tuple[int, ...], str]:
    """The shape and checksum recorded for ``out``, checked against its header and the folder (``n`` images of
    ``channels``); nothing but headers is read."""
    try:
        record = json.loads(_record(out).read_text())
        shape, digest = tuple(int(d) for d in record["shape"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        raise _Damaged(f"its record {_record(out).name} is missing or unreadable") from None
    try:
        header = np.load(out, mmap_mode="r")
    except (OSError, ValueError) as err:  # truncated, random bytes, not an .npy at all
        raise _Damaged(f"it cannot be read: {err}") from None
    if header.dtype != np.uint8 or header.shape != shape or len(shape) != 4 or shape[:2] != (n, channels):
        raise _Damaged(
            f"it holds {header.dtype} {tuple(header.shape)} where {n} images of {channels} channels were recorded as "
            f"uint8 {shape}"
        )
    return shape, digest


def _checked_load(out: Path, digest: str) -> np.ndarray:
    """The cache's pixels in memory, refused when their checksum differs from the recorded one."""
    try:
        images = np.load(out)
    except (OSError, ValueError) as err:
        raise _Damaged(f"it cannot be read: {err}") from None
    if _checksum(images) != digest:
        raise _Damaged("its pixels changed since it was written (the sha256 differs)")
    return images


def _discard(out: Path) -> None:
    for path in (out, _record(out)):
        path.unlink(missing_ok=True)


def _decode_chunk(task: tuple[str, int, list[str], int, int | None]) -> int:
    """Decode ``paths`` into rows ``start...`` of the ``.npy`` file being written (runs in a worker process)."""
    out, start, paths, channels, size = task
    from torchvision.transforms.v2.functional import resize

    from moderncnn.data.folder import decode

    torch.set_num_threads(1)  # the parallelism is the processes
    array = np.lib.format.open_memmap(out, mode="r+")
    for i, path in enumerate(paths):
        try:
            image = decode(path, channels)
        except Exception as err:
            raise DataError(f"cannot decode {path} ({type(err).__name__}: {err}); remove or replace it") from None
        if size is not None and tuple(image.shape[-2:]) != (size, size):
            image = resize(image, [size, size], antialias=True)
        if tuple(image.shape) != array.shape[1:]:  # its header said another size when the folder was scanned
            raise DataError(
                f"{path} is {image.shape[-1]}x{image.shape[-2]} now but was {array.shape[-1]}x{array.shape[-2]} when "
                "the folder was scanned: it changed while the folder was being cached; run again once it is settled"
            )
        array[start + i] = image.numpy()
    array.flush()
    return len(paths)


def _write_cache(
    out: Path,
    paths: list[str],
    shape: tuple[int, ...],
    channels: int,
    size: int | None,
    *,
    workers: int,
    progress: bool,
) -> None:
    tmp = out.with_name(f"{out.stem}.tmp{os.getpid()}.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
    tasks = [(str(tmp), s, paths[s : s + _CHUNK], channels, size) for s in range(0, len(paths), _CHUNK)]
    try:
        from rich.console import Console
        from rich.progress import Progress

        console = Console(stderr=True)
        with Progress(console=console, transient=True, disable=not progress or not console.is_terminal) as bar:
            job = bar.add_task(f"decoding {len(paths):,} images once", total=len(paths))
            if workers > 1 and len(tasks) > 1:
                # forkserver: a clean process to fork workers from (this one may run threads); spawn off POSIX.
                method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
                with multiprocessing.get_context(method).Pool(min(workers, len(tasks))) as pool:
                    for done in pool.imap_unordered(_decode_chunk, tasks):
                        bar.advance(job, done)
            else:
                for task in tasks:
                    bar.advance(job, _decode_chunk(task))
        record = {"shape": list(shape), "sha256": _checksum(np.load(tmp, mmap_mode="r"))}
        tmp_record = _record(tmp)
        try:
            tmp_record.write_text(json.dumps(record))
            os.replace(tmp_record, _record(out))  # the record first: a cache without its record is rebuilt
        finally:
            tmp_record.unlink(missing_ok=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def cache_folder(
    dataset: Dataset,
    cache_dir: Path,
    *,
    size: int | None = None,
    force: bool | None = None,
    budget: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    log=print,
) -> Dataset:
    """``dataset`` (an image folder) with its splits decoded into memory, or unchanged when they do not fit.

    Args:
        dataset: what ``load_image_folder`` returned (splits of ``FolderSplit``).
        cache_dir: where the ``.npy`` files go (``<data root>/cache``).
        size: side to resize images of different sizes to (the network's input); ``None``: such a folder is not
            cached.
        force: ``True`` to require the cache (an error when it cannot be made), ``False`` to skip it, ``None``
            to cache when it fits ``budget``.
        budget: bytes the decoded images may take (default :func:`memory_budget`).
        workers: decoding processes (default: one per CPU).
        progress: show a progress bar while decoding.
        log: where the one-line notes go (resizing, over budget).

    Raises:
        DataError: with ``force=True``, when the folder is over the budget or its sizes differ and no size is given.
    """
    if force is False:
        return dataset
    splits = dataset.splits
    paths = sorted({p for split in splits.values() for p, _ in split.samples})
    channels, root = dataset.channels, Path(dataset.root)
    cache_dir = Path(cache_dir)
    found = [cache_dir / f"{files_digest(root, paths, channels, s)}.npy" for s in (None, size)]
    out = next((f for f in found if f.is_file()), None)
    allowed = memory_budget() if budget is None else budget
    array = None
    if out is not None:
        try:
            shape, digest = _checked_shape(out, len(paths), channels)
            need = int(np.prod(shape))
            if force is None and need > allowed:  # made with force=True, or on a machine with more RAM
                log(_over_budget(dataset.name, need, allowed))
                return dataset
            array = _checked_load(out, digest)
        except _Damaged as err:
            log(f"{dataset.name}: the cache {out} is damaged ({err}); rebuilding it")
            _discard(out)
            out = None
    if out is None:
        if not force:
            # Automatic for every folder, so a large one is refused from one header (reading them all takes minutes):
            # cached, it would take n images of the first one's size (all alike) or of size x size (mixed) at least.
            ((height, width),) = _image_sizes(paths[:1])
            least = len(paths) * channels * min(height * width, size * size if size else height * width)
            if least > allowed:
                log(_over_budget(dataset.name, least, allowed))
                return dataset
        sizes = _image_sizes(paths)
        target = None
        if len(sizes) > 1:
            if size is None:
                if force:
                    raise DataError(f"{dataset.name}: images of {len(sizes)} sizes and no size to resize them to")
                return dataset
            target = size
        height, width = (target, target) if target else next(iter(sizes))
        shape = (len(paths), channels, height, width)
        need = int(np.prod(shape))
        if need > allowed:
            if force:
                raise DataError(
                    f"{dataset.name}: its {len(paths):,} decoded images take {_human(need)}, over the cache budget of "
                    f"{_human(allowed)} (a quarter of the RAM); leave the cache off to read them with a DataLoader"
                )
            log(_over_budget(dataset.name, need, allowed))
            return dataset
        if target:
            log(f"{dataset.name}: images of {len(sizes)} different sizes, resized once to {size}x{size} for the cache")
        out = found[1] if target else found[0]
        # Several processes (the ranks of a multi-process run) may start together: one decodes, the others wait.
        with _download_lock(cache_dir):
            if not out.is_file():
                workers = workers or os.cpu_count() or 1
                try:
                    _write_cache(out, paths, shape, channels, target, workers=workers, progress=progress)
                except OSError as err:
                    if force:
                        raise DataError(f"{dataset.name}: cannot write the cache in {cache_dir} ({err})") from None
                    log(f"{dataset.name}: cannot write the cache in {cache_dir} ({err}); read per epoch")
                    return dataset
    elif out != found[0]:  # found the cache of a folder of mixed sizes: say what this run trains on
        log(f"{dataset.name}: images of different sizes, resized once to {size}x{size} (cached)")
    if array is None:
        try:
            array = _checked_load(out, _checked_shape(out, len(paths), channels)[1])
        except _Damaged as err:  # just written (here or by another process) and already wrong: the disk is failing
            raise DataError(f"{dataset.name}: the cache {out} was written but cannot be read back ({err})") from None
    images = torch.from_numpy(array)
    row = {p: i for i, p in enumerate(paths)}
    in_memory = {}
    for name, split in splits.items():
        index = torch.tensor([row[p] for p, _ in split.samples], dtype=torch.int64)
        in_memory[name] = Split(images[index], torch.tensor(split.targets, dtype=torch.int64))
    # What the statistics cache is keyed by (data.stats): the files' contents and which of them are for training.
    train_files = "\n".join(p for p, _ in splits["train"].samples)
    train_digest = hashlib.sha256(f"{out.stem}\n{train_files}".encode()).hexdigest()[:24]
    info = {**dataset.info, "cache": str(out), "files_digest": train_digest}
    # image_size stays None: as on the DataLoader path, the network's input size decides the resize.
    return Dataset(dataset.name, dataset.classes, in_memory, dataset.channels, dataset.image_size, dataset.root, info)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def open_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    val_size: int | float = 0,
    seed: int = 42,
    cache: bool | None = None,
    size: int | None = None,
    log=_stderr,
) -> Dataset:
    """The dataset ``name`` with its validation split, an image folder decoded once into memory when it fits the
    budget (``cache=None``), always (``True``) or never (``False``): its images resized once to ``size`` when given
    (folders of mixed sizes need one). Notes (resized, over budget) go to ``log``, by default stderr: stdout may be
    ``evaluate --json``'s."""
    from moderncnn.data.base import data_root
    from moderncnn.data.datasets import load_dataset

    dataset = load_dataset(name, data_dir=data_dir, val_size=val_size, seed=seed)
    if name.startswith("imagefolder:") and cache is not False:
        dataset = cache_folder(dataset, data_root(data_dir) / "cache", size=size, force=cache, log=log)
    return dataset
