"""``ImageDataModule``: a dataset's splits as loaders for the Trainer, sharded per DDP rank.

In-memory datasets get the device-resident loader on the training device, and so do image folders that fit
in memory (decoded once, ``data.cache``; ``config.cache``); larger folders get a ``DataLoader`` with workers and
torchvision transforms. Both use the same augmentation presets and the same seeded epoch order
(``data.loader.epoch_indices``).
"""

from __future__ import annotations

import sys

import lightning as L
import torch

from moderncnn.constants import IMAGENET_MEAN, IMAGENET_STD
from moderncnn.data import Dataset, DeviceLoader, Split, data_root, dataset_stats, load_dataset
from moderncnn.data.augment import BatchAugment, reference_transform
from moderncnn.data.cache import cache_folder
from moderncnn.data.folder import FolderSplit
from moderncnn.data.loader import ResumableDataLoader, ShardSampler
from moderncnn.engine.config import TrainConfig
from moderncnn.errors import ConfigError
from moderncnn.weights import get_weights_info


def _note(line: str) -> None:
    """The cache's one-line notes (resized, over budget) go to stderr: stdout may be ``evaluate --json``'s."""
    print(line, file=sys.stderr)


class ImageDataModule(L.LightningDataModule):
    """Loads the dataset once (``setup``) and builds a loader per split for this process's rank.

    Args:
        config: the run's settings (dataset, data_dir, val_size, batch_size, augment, resize, seed, ...);
            ``config.resize`` is the size images are resized to (``None``: their own), as
            :func:`~moderncnn.engine.config.resolve_resize` decided it before the run started; ``config.cache``
            whether an image folder is decoded once into memory (``data.cache``): ``None`` when it fits the memory
            budget, ``True`` always (an error when it cannot be), ``False`` never.
        folder_size: the side a folder of images of mixed sizes is resized to once, when it is cached (the same
            rule's answer for images of no single size).
    """

    def __init__(self, config: TrainConfig, folder_size: int | None = None):
        super().__init__()
        self.cfg = config
        self.folder_size = folder_size
        self.dataset: Dataset | None = None
        self.mean: list[float] = []
        self.std: list[float] = []

    def prepare_data(self) -> None:
        # Once per node, before the ranks start: downloads missing files (and verifies them). `train` has
        # usually loaded the dataset already, to size the network; then there is nothing left to do.
        if self.dataset is None:
            load_dataset(self.cfg.dataset, data_dir=self.cfg.data_dir, val_size=0)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = load_dataset(
                self.cfg.dataset, data_dir=self.cfg.data_dir, val_size=self.cfg.val_size, seed=self.cfg.seed
            )
            if self.cfg.dataset.startswith("imagefolder:") and self.cfg.cache is not False:
                cache_dir = data_root(self.cfg.data_dir) / "cache"
                size = self.cfg.resize or self.folder_size  # for folders of mixed sizes, resized once
                self.dataset = cache_folder(self.dataset, cache_dir, size=size, force=self.cfg.cache, log=_note)
            native = self.dataset.image_size
            if native is not None and self.cfg.cutout >= native:
                raise ConfigError(
                    f"cutout {self.cfg.cutout} px blanks the whole {native} px image; give a smaller side (e.g. "
                    f"{max(1, native // 2)}) or 0"
                )
            if self.cfg.mean is not None:  # a recipe's published normalisation
                if len(self.cfg.mean) != self.dataset.channels:
                    raise ConfigError(
                        f"mean/std give {len(self.cfg.mean)} channel(s) but {self.cfg.dataset} has "
                        f"{self.dataset.channels}; give one value per channel or leave them out"
                    )
                self.mean, self.std = list(self.cfg.mean), list(self.cfg.std)
            elif self.cfg.init_from and get_weights_info(self.cfg.init_from).in_channels == self.dataset.channels:
                # Fine-tuning our weights: the first layer expects the normalisation they were trained with.
                weights = get_weights_info(self.cfg.init_from)
                self.mean, self.std = list(weights.mean), list(weights.std)
            elif self.cfg.pretrained and self.dataset.channels == 3:
                # ImageNet weights expect ImageNet's normalisation (as torchvision's weights' transforms apply it).
                self.mean, self.std = list(IMAGENET_MEAN), list(IMAGENET_STD)
            else:
                self.mean, self.std = dataset_stats(self.dataset)

    @property
    def resize(self) -> int | None:
        """The size images are resized to (``None``: their own size)."""
        return self.cfg.resize

    @property
    def image_size(self) -> int:
        """Side of the images the network sees."""
        return self.resize or self.dataset.image_size

    def loader(self, split_name: str, train: bool, device: torch.device | None = None):
        """A loader over one split for this process's rank: shuffled and augmented when ``train``."""
        split = self.dataset.splits[split_name]
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        if device is None:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        preset = self.cfg.augment  # in evaluation (train=False) a preset only resizes and normalises
        seed = self.cfg.seed + (0 if train else 1)
        if isinstance(split, Split):
            augment = BatchAugment(
                preset,
                mean=self.mean,
                std=self.std,
                resize=self.resize,
                train=train,
                generator=torch.Generator(device=device),
                cutout=self.cfg.cutout,
                jpeg=self.cfg.jpeg,
                jpeg_quality=self.cfg.jpeg_quality,
                flip=self.cfg.flip,
                flip_seed=self.cfg.seed,
            )
            return DeviceLoader(
                split,
                self.cfg.batch_size,
                transform=augment,
                shuffle=train,
                drop_last=train,
                seed=seed,
                device=device,
                rank=rank,
                world_size=world,
            )
        assert isinstance(split, FolderSplit)
        if train and self.cfg.flip == "alternate":
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
            cutout=self.cfg.cutout,
            jpeg=self.cfg.jpeg,
            jpeg_quality=self.cfg.jpeg_quality,
        )
        split = FolderSplit(split.samples, split.channels, transform)
        sampler = ShardSampler(len(split), shuffle=train, seed=seed, rank=rank, world_size=world, even=train)
        # The sampler shards per rank itself, so the Trainer is told not to swap in a DistributedSampler.
        return ResumableDataLoader(
            split,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
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
