"""Augmentation: the batched presets against their definition and against torchvision's transforms."""

import pytest
import torch

from moderncnn.data.augment import PRESETS, BatchAugment, reference_transform

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def coordinate_images(n: int, size: int = 32) -> torch.Tensor:
    """Images whose pixel values encode their coordinates: channel 0 = row + 1, channel 1 = column + 1."""
    rows = torch.arange(1, size + 1).view(size, 1).expand(size, size)
    cols = torch.arange(1, size + 1).view(1, size).expand(size, size)
    image = torch.stack([rows, cols, torch.full((size, size), 200)])
    return image.to(torch.uint8).expand(n, 3, size, size).contiguous()


@pytest.mark.parametrize(("preset", "resize"), [(p, r) for p in PRESETS for r in (None, 48) if (p, r) != ("d2l", None)])
@pytest.mark.parametrize("train", [True, False])
def test_shapes_dtype_and_eval_mode(preset, resize, train):
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = BatchAugment(preset, mean=MEAN, std=STD, resize=resize, train=train, generator=gen())(x)
    side = resize or 32
    assert out.shape == (5, 3, side, side) and out.dtype == torch.float32
    if not train:  # evaluation: resize and normalise only, whatever the preset
        plain = BatchAugment("none", mean=MEAN, std=STD, resize=resize, train=False)(x)
        torch.testing.assert_close(out, plain, rtol=0, atol=0)


def test_normalisation_is_exact():
    x = torch.full((2, 3, 4, 4), 153, dtype=torch.uint8)
    out = BatchAugment("none", mean=MEAN, std=STD)(x)
    for c in range(3):
        assert torch.allclose(out[:, c], torch.tensor((153 / 255 - MEAN[c]) / STD[c]))


def test_flip_rate_is_one_half():
    x = coordinate_images(4000)
    out = BatchAugment("uva", mean=[0, 0, 0], std=[1, 1, 1], generator=gen(1))(x)
    # Columns are encoded in channel 1: a flipped image's values decrease from left to right.
    flipped = (out[:, 1, :, -1] < out[:, 1, :, 0]).all(dim=1).float().mean().item()
    assert abs(flipped - 0.5) < 0.03


def test_cifar_crop_offsets_are_uniform_and_padding_is_zero():
    n = 9000
    x = coordinate_images(n)
    out = BatchAugment("cifar", mean=[0, 0, 0], std=[1, 1, 1], generator=gen(2))(x) * 255
    out = out.round().long()
    # Undo the flip, then read the offset from the pixel that has a valid (non-padding) coordinate.
    flipped = out[:, 1, 16, 10] > out[:, 1, 16, 20]  # columns 10 and 20 are never padding
    out[flipped] = out[flipped].flip(-1)
    row = out[:, 0, 16, 16]  # = 16 + offset_y - 4 + 1 for every offset in 0..8
    col = out[:, 1, 16, 16]
    dy, dx = row - 13, col - 13
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9 and offsets.min() == 0
        chi2 = ((counts - n / 9) ** 2 / (n / 9)).sum().item()
        assert chi2 < 26.1  # chi-square with 8 degrees of freedom, p = 0.001
    # An image shifted by 4 down has 4 rows of zero padding at the top, in every channel.
    shifted = dy == 0
    assert (out[shifted][:, :, :4, :] == 0).all()


@pytest.mark.parametrize("preset", ["cifar", "uva"])
def test_batched_and_torchvision_outputs_have_the_same_statistics(preset):
    torch.manual_seed(0)
    # Smooth random images (bilinear upsampling of noise) so that crops and flips change the statistics.
    noise = torch.rand(2000, 3, 4, 4) * 255
    x = torch.nn.functional.interpolate(noise, size=(32, 32), mode="bilinear").round().to(torch.uint8)
    x[:, :, :, :16] //= 2  # a left/right asymmetry that flips move around
    batched = BatchAugment(preset, mean=MEAN, std=STD, generator=gen(3))(x)
    reference_fn = reference_transform(preset, mean=MEAN, std=STD)
    reference = torch.stack([reference_fn(img) for img in x])
    for stat in (lambda t: t.mean(dim=(0, 2, 3)), lambda t: t.std(dim=(0, 2, 3))):
        torch.testing.assert_close(stat(batched), stat(reference), rtol=0, atol=0.02)
    # Per-position means: where pixels come from (crop offsets, flips) matches, not just global averages. With 2,000
    # images the sampling noise of one position's mean difference is about 0.04, so compare the average over positions.
    difference = (batched.mean(0) - reference.mean(0)).abs()
    assert difference.mean() < 0.05 and difference.max() < 0.2


def test_uva_crop_area_matches_torchvision():
    # Each image is one bright 2x2 square in the middle: its size after the crop measures the zoom.
    x = torch.zeros(3000, 1, 32, 32, dtype=torch.uint8)
    x[:, :, 15:17, 15:17] = 255
    batched = BatchAugment("uva", mean=[0], std=[1], generator=gen(4))(x).sum(dim=(1, 2, 3))
    reference_fn = reference_transform("uva", mean=[0], std=[1])
    reference = torch.stack([reference_fn(img) for img in x]).sum(dim=(1, 2, 3))
    # Zoom 1/sqrt(area) for area in [0.8, 1]: the square grows by 0-25 %; the mean mass agrees within 2 %.
    assert abs(batched.mean() / reference.mean() - 1) < 0.02
    assert batched.min() >= 4 * 0.98 and batched.max() <= 4 / 0.8 * 1.1  # bilinear sampling spreads some mass


def test_seeded_augmentation_is_reproducible():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    a = BatchAugment("cifar", mean=MEAN, std=STD, generator=gen(5))(x)
    b = BatchAugment("cifar", mean=MEAN, std=STD, generator=gen(5))(x)
    c = BatchAugment("cifar", mean=MEAN, std=STD, generator=gen(6))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resize_matches_torchvision():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    ours = BatchAugment("d2l", mean=[0.3], std=[0.4], resize=96)(x)
    theirs = torch.stack([reference_transform("d2l", mean=[0.3], std=[0.4], resize=96)(img) for img in x])
    # torchvision resizes the uint8 image (rounding to grey levels); we resize floats: one level apart at most.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1 / 255 / 0.4 + 1e-6)


def test_errors():
    with pytest.raises(ValueError, match="unknown augmentation preset 'autoaugment'; valid: none, d2l, cifar, uva"):
        BatchAugment("autoaugment", mean=[0], std=[1])
    with pytest.raises(ValueError, match="d2l preset resizes to the network's input; give resize=N"):
        BatchAugment("d2l", mean=[0], std=[1])
    with pytest.raises(ValueError, match="mean/std have 1 values but the images have 3 channels"):
        BatchAugment("none", mean=[0], std=[1])(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected a uint8 batch"):
        BatchAugment("none", mean=[0], std=[1])(torch.zeros(1, 1, 4, 4))
