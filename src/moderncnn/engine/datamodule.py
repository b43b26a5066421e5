"""``ImageDataModule``: a dataset's splits as loaders for the Trainer, sharded per DDP rank.

In-memory datasets get the device-resident loader on the training device, and so do image folders that fit
in memory (decoded once, ``data.cache``); larger folders get a ``DataLoader`` with workers and
torchvision transforms. Both use the same augmentation presets and the same seeded epoch order
(``data.loader.epoch_indices``).
"""

from __future__ import annotations

import lightning as L
import torch

from moderncnn.data import Dataset, DeviceLoader, Split, dataset_stats, load_dataset
from moderncnn.data.augment import BatchAugment, reference_transform
from moderncnn.data.cache import open_dataset
from moderncnn.data.folder import FolderSplit
from moderncnn.data.loader import ResumableDataLoader, ShardSampler
from moderncnn.errors import ConfigError


class ImageDataModule(L.LightningDataModule):
    """A dataset's splits as loaders for the Trainer, one per split for this process's rank.

    Typed, explicit arguments, as a plan gives them (``Plan.data_options()``; ``run.plan.data_options(config)`` for
    a config's own values): nothing here reads a whole config or decides a size.

    Args:
        dataset: the dataset's name (loaded in ``setup``), or a dataset already loaded (``run.plan.open_dataset``).
        batch_size: images per step (per process).
        data_dir, val_size, seed: where the data lives, the validation split carved from train, and the seed of the
            split, the epoch order and the augmentation.
        augment: the augmentation preset (in evaluation a preset only resizes and normalises).
        resize: the size images are resized to (``None``: their own), as the plan decided it.
        mean, std: the normalisation (``None``: the data's own statistics).
        cache: whether an image folder is decoded once into memory (``data.cache``): ``None`` when it fits the
            memory budget, ``True`` always (an error when it cannot be), ``False`` never.
        folder_size: the side a folder of images of mixed sizes is resized to once, when it is cached and no
            ``resize`` is given.
        cutout, jpeg, jpeg_quality, flip: the augmentation's options (``TrainConfig``'s fields of those names).
        num_workers: DataLoader workers for image folders.
    """

    def __init__(
        self,
        dataset: str | Dataset,
        *,
        batch_size: int = 256,
        data_dir: str | None = None,
        val_size: int | float = 0,
        seed: int = 42,
        augment: str = "none",
        resize: int | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        cache: bool | None = None,
        folder_size: int | None = None,
        cutout: int = 0,
        jpeg: float = 0.0,
        jpeg_quality: tuple[int, int] = (50, 95),
        flip: str = "random",
        num_workers: int = 2,
    ):
        super().__init__()
        self.dataset_name = dataset if isinstance(dataset, str) else None
        self.dataset: Dataset | None = None if isinstance(dataset, str) else dataset
        self.batch_size, self.data_dir, self.val_size, self.seed = batch_size, data_dir, val_size, seed
        self.augment, self.resize, self.cache, self.folder_size = augment, resize, cache, folder_size
        self.cutout, self.jpeg, self.jpeg_quality, self.flip = cutout, jpeg, tuple(jpeg_quality), flip
        self.num_workers = num_workers
        self.mean: list[float] = list(mean) if mean is not None else []
        self.std: list[float] = list(std) if std is not None else []

    def prepare_data(self) -> None:
        # Once per node, before the ranks start: downloads missing files (and verifies them). `train` has loaded
        # the dataset already, to plan the run; then there is nothing left to do.
        if self.dataset is None:
            load_dataset(self.dataset_name, data_dir=self.data_dir, val_size=0)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = open_dataset(
                self.dataset_name,
                data_dir=self.data_dir,
                val_size=self.val_size,
                seed=self.seed,
                cache=self.cache,
                size=self.folder_size if self.resize is None else self.resize,  # a cached folder: resized once
            )
        if not self.mean:
            self.mean, self.std = dataset_stats(self.dataset)

    def loader(self, split_name: str, train: bool, device: torch.device | None = None):
        """A loader over one split for this process's rank: shuffled and augmented when ``train``."""
        split = self.dataset.splits[split_name]
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        if device is None:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        preset = self.augment  # in evaluation (train=False) a preset only resizes and normalises
        seed = self.seed + (0 if train else 1)
        if isinstance(split, Split):
            augment = BatchAugment(
                preset,
                mean=self.mean,
                std=self.std,
                resize=self.resize,
                train=train,
                generator=torch.Generator(device=device),
                cutout=self.cutout,
                jpeg=self.jpeg,
                jpeg_quality=self.jpeg_quality,
                flip=self.flip,
                flip_seed=self.seed,
            )
            return DeviceLoader(
                split,
                self.batch_size,
                transform=augment,
                shuffle=train,
                drop_last=train,
                seed=seed,
                device=device,
                rank=rank,
                world_size=world,
            )
        assert isinstance(split, FolderSplit)
        if train and self.flip == "alternate":
            raise ConfigError(
                "flip alternate needs the device-resident loader (named datasets, or image folders cached in memory); "
                "use --flip random, or --cache for this folder"
            )
        transform = reference_transform(
            preset,
            mean=self.mean,
            std=self.std,
            resize=self.resize,
            train=train,
            cutout=self.cutout,
            jpeg=self.jpeg,
            jpeg_quality=self.jpeg_quality,
        )
        split = FolderSplit(split.samples, split.channels, transform)
        sampler = ShardSampler(len(split), shuffle=train, seed=seed, rank=rank, world_size=world, even=train)
        # The sampler shards per rank itself, so the Trainer is told not to swap in a DistributedSampler.
        return ResumableDataLoader(
            split,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def first_images(self, count: int) -> torch.Tensor:
        """The first ``count`` training images (in split order) as the network sees them in evaluation: resized and
        normalised, on the CPU."""
        batches, have = [], 0
        for x, _ in self.loader("train", train=False, device=torch.device("cpu")):
            batches.append(x[: count - have])
            have += len(batches[-1])
            if have >= count:
                break
        return torch.cat(batches)

    def train_dataloader(self):
        return self.loader("train", train=True)

    def val_dataloader(self):
        # Without a validation split (the textbook's setting), the test split is the one monitored each epoch.
        return self.loader("val" if "val" in self.dataset.splits else "test", train=False)

    def test_dataloader(self):
        return self.loader("test", train=False)
