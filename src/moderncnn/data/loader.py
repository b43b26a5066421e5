"""The device-resident loader: the fast path for datasets that fit in memory.

The whole split lives once on the training device as uint8 (Fashion-MNIST is 47 MB, CIFAR-10 150 MB).
An epoch is a permutation drawn on the CPU from a seeded generator; each batch is an index slice, and
its augmentation and normalisation run on the whole batch at once on the device (``augment.py``). No
worker processes, no PIL, no per-sample Python: what a DataLoader spends on collating thousands of small
tensors goes to the model instead (the idea of Keller Jordan's airbench).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from moderncnn.data.augment import BatchAugment
from moderncnn.data.base import Split


def shard(order: Tensor, rank: int, world_size: int, even: bool) -> Tensor:
    """This rank's part of an epoch's ``order``: every ``world_size``-th index starting at ``rank``.

    Args:
        even: drop the last ``len(order) % world_size`` indices first, so every rank gets the same number
            (training under DDP, where ranks must take the same number of steps). Otherwise the shards
            cover every index exactly once and differ in size by at most one (evaluation, where each
            image must count once).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if even:
        order = order[: len(order) // world_size * world_size]
    return order[rank::world_size]


def epoch_indices(
    n: int, epoch: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1, even: bool = False
) -> Tensor:
    """This rank's indices into ``n`` images for ``epoch``: a permutation seeded by (seed, epoch), sharded."""
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    else:
        order = torch.arange(n)
    return shard(order, rank, world_size, even)


class ShardSampler(torch.utils.data.Sampler):
    """This rank's indices of each epoch (:func:`epoch_indices`); a ``DataLoader`` sampler, and the order of
    :class:`DeviceLoader`."""

    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1, even: bool = False):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size, self.even = rank, world_size, even
        self.epoch = 0
        self.start = 0  # indices of the epoch to skip (a resumed epoch, see ResumableDataLoader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        return epoch_indices(
            self.n,
            self.epoch,
            shuffle=self.shuffle,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            even=self.even,
        )

    def __iter__(self):
        return iter(self.indices()[self.start :].tolist())

    def __len__(self) -> int:
        # The shard size does not depend on the permutation.
        return len(shard(torch.arange(self.n), self.rank, self.world_size, self.even))


class ResumableDataLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` over a :class:`ShardSampler` that can continue an epoch where a checkpoint left it: the same
    images in the same order (random augmentation in the worker processes is drawn afresh from there on).

    Its :meth:`state_dict` is the epoch and the batches yielded so far; :meth:`load_state_dict` makes the next
    iteration start at the next batch. The iteration starts at the first batch asked for, not at ``iter()``, so
    that the epoch and position set between the two (Lightning creates the iterator early) are the ones used.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._batches = 0
        self._resume_at = 0

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self._resume_at = state["batches"]

    def __iter__(self):
        return self._batches_from_position()

    def _batches_from_position(self):
        self._batches, self._resume_at = self._resume_at, 0
        self.sampler.start = self._batches * self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch


class DeviceLoader:
    """Batches ``(images, labels)`` of a :class:`Split` kept on ``device``.

    Args:
        split: the images (uint8) and labels.
        batch_size: images per batch (per rank).
        transform: batched uint8 → float transform (e.g. ``BatchAugment``); ``None`` scales to [0, 1].
            If it has a ``generator`` attribute (a ``torch.Generator``), the loader reseeds it every epoch
            from ``seed``, epoch and rank, so augmentation is reproducible and differs between ranks.
        shuffle: a new seeded permutation every epoch (else the split's order).
        drop_last: drop the last incomplete batch of the epoch.
        seed: seed of the permutations and of the augmentation.
        device: where the split is held and the batches are made.
        rank: this process's rank under DDP; ``world_size``: number of processes.
        even_shards: equal-sized shards per rank (see :func:`shard`); default: same as ``shuffle``.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        transform: Callable[[Tensor], Tensor] | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        even_shards: bool | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.transform = transform
        self.drop_last = drop_last
        even = shuffle if even_shards is None else even_shards
        # Not called `sampler`: Lightning takes any object with a `sampler` attribute for a DataLoader.
        self._order = ShardSampler(
            len(self.labels), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, even=even
        )
        self._batches = 0  # yielded so far in this epoch
        self._resume: dict | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentation the next iteration uses, from its first batch."""
        self._order.set_epoch(epoch)
        self._resume = None

    def state_dict(self) -> dict:
        """Where this epoch's iteration stands: the epoch, the batches yielded so far, and the augmentation
        generator's state after them (Lightning saves it in checkpoints taken inside an epoch)."""
        generator = self._generator()
        state = generator.get_state() if generator is not None else None
        return {"epoch": self._order.epoch, "batches": self._batches, "generator": state}

    def load_state_dict(self, state: dict) -> None:
        """Continue an epoch where :meth:`state_dict` left it: the next iteration yields the batches that would have
        followed, with the same augmentation."""
        self._order.set_epoch(state["epoch"])
        self._resume = state

    def _generator(self) -> torch.Generator | None:
        generator = getattr(self.transform, "generator", None)
        return generator if isinstance(generator, torch.Generator) else None

    def indices(self) -> Tensor:
        """This rank's image indices for the current epoch, in batch order."""
        return self._order.indices()

    def __len__(self) -> int:
        n = len(self._order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: epoch, position and seed are read at the first batch, not at iter() (see ResumableDataLoader).
        resume, self._resume = self._resume, None
        generator = self._generator()
        if generator is not None and resume is not None and resume["generator"] is not None:
            generator.set_state(resume["generator"])
        elif generator is not None:
            s = self._order
            generator.manual_seed((s.seed * 1_000_003 + s.epoch) * 1009 + s.rank)
        order = self.indices().to(self.device)
        self._batches = resume["batches"] if resume is not None else 0
        for b in range(self._batches, len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            images = self.images[index]
            if isinstance(self.transform, BatchAugment):  # the alternating flip needs the images' indices and epoch
                images = self.transform(images, index=index, epoch=self._order.epoch)
            elif self.transform is not None:
                images = self.transform(images)
            else:
                images = images.float().div_(255)
            self._batches = b + 1
            yield images, self.labels[index]
