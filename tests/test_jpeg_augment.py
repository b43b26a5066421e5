"""JPEG compression as an augmentation setting (``--jpeg FRACTION``, ``--jpeg-quality LOW HIGH``): a fraction of
the training batches re-encoded with torchvision's ``v2.JPEG`` operation at a random quality."""

import pytest
import torch
from torchvision.transforms import v2

from moderncnn.data.augment import BatchAugment, reference_transform
from moderncnn.engine import make_config
from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.errors import ConfigError
from moderncnn.run.plan import data_options


def noise(n=8, channels=3, size=32):
    return torch.randint(
        0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def augment(**kwargs):
    defaults = {"mean": [0.0] * 3, "std": [1.0] * 3, "generator": torch.Generator().manual_seed(0)}
    return BatchAugment("none", **{**defaults, **kwargs})


def test_a_training_batch_is_the_jpeg_of_itself_at_a_quality_in_range():
    images = noise()
    out = augment(jpeg=1.0, jpeg_quality=(60, 70))(images)
    matches = [q for q in range(1, 101) if torch.equal(out, v2.functional.jpeg(images, q).float() / 255)]
    assert matches and all(60 <= q <= 70 for q in matches)
    assert not torch.equal(out, images.float() / 255)


def test_evaluation_and_jpeg_zero_leave_the_pixels_alone():
    images = noise()
    plain = images.float() / 255
    assert torch.equal(augment(jpeg=1.0, train=False)(images), plain)
    assert torch.equal(augment(jpeg=0.0)(images), plain)


def test_the_fraction_of_batches_re_encoded():
    images, step = noise(n=2, size=8), augment(jpeg=0.3)
    changed = sum(not torch.equal(step(images), images.float() / 255) for _ in range(300))
    assert 60 <= changed <= 120  # 90 expected; binomial sd about 8


def test_the_dataloader_path_has_it_too():
    torch.manual_seed(0)
    image = noise(n=1)[0]
    transform = reference_transform("none", mean=[0.0] * 3, std=[1.0] * 3, jpeg=1.0, jpeg_quality=(50, 50))
    torch.testing.assert_close(transform(image), v2.functional.jpeg(image, 50).float() / 255)


def first_training_batch(**settings):
    config = make_config(
        "lenet_bn", dataset="synthetic:image_size=28,channels=1,num_train=64,num_test=8", batch_size=16, **settings
    )
    data = ImageDataModule(config.dataset, **data_options(config))
    data.setup("fit")
    return next(iter(data.loader("train", train=True)))[0]


def test_smoke_the_setting_reaches_the_training_batches():
    """The setting goes from TrainConfig through the data module to the batches: with it they change."""
    plain, compressed = first_training_batch(), first_training_batch(jpeg=1.0, jpeg_quality=[10, 20])
    assert plain.shape == compressed.shape
    assert (plain - compressed).abs().mean() > 0.01


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"jpeg": 1.5}, "jpeg must be a fraction"), ({"jpeg_quality": [90, 50]}, "jpeg_quality must be two")],
)
def test_bad_values_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_config("lenet_bn", **settings)
