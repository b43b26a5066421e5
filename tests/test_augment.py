"""Augmentation: the batched presets against their definition and against torchvision's transforms."""

import math

import pytest
import torch
from torch.nn import functional as F

from moderncnn.data.augment import PRESETS, BatchAugment, reference_transform

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
IDENTITY = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}  # outputs stay pixel values / 255


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def coordinate_images(n: int, size: int = 32, step: int = 1, first: int = 1) -> torch.Tensor:
    """Images whose pixels encode where they are: channel 0 = first + step * row, channel 1 = first + step * column."""
    coords = first + step * torch.arange(size)
    rows, cols = coords.view(size, 1).expand(size, size), coords.view(1, size).expand(size, size)
    image = torch.stack([rows, cols, torch.full((size, size), 200)])
    return image.to(torch.uint8).expand(n, 3, size, size).contiguous()


def normalise(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """The definition: scale to [0, 1], subtract the mean, divide by the std, per channel."""
    return (x.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def chi2_critical(dof: int) -> float:
    """Chi-square value exceeded with probability 0.001 (Wilson-Hilferty approximation, within 1 % for dof >= 2)."""
    a = 2 / (9 * dof)
    return dof * (1 - a + 3.090 * math.sqrt(a)) ** 3


def assert_same_distribution(a: torch.Tensor, b: torch.Tensor) -> None:
    """Two equally large samples of small non-negative integers come from one distribution (chi-square, p = 0.001)."""
    assert len(a) == len(b)
    size = int(max(a.max(), b.max())) + 1
    ca, cb = torch.bincount(a, minlength=size).double(), torch.bincount(b, minlength=size).double()
    kept = ca + cb >= 10  # the test needs a few counts per bin
    chi2 = ((ca - cb)[kept] ** 2 / (ca + cb)[kept]).sum().item()
    assert chi2 < chi2_critical(int(kept.sum()) - 1), (ca.tolist(), cb.tolist())


@pytest.mark.parametrize(
    ("preset", "resize"), [(p, r) for p in PRESETS for r in (None, 16, 48) if (p, r) != ("d2l", None)]
)
@pytest.mark.parametrize("train", [True, False])
def test_shapes_dtype_and_the_plain_path(preset, resize, train):
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = BatchAugment(preset, mean=MEAN, std=STD, resize=resize, train=train, generator=gen())(x)
    side = resize or 32
    assert out.shape == (6, 3, side, side) and out.dtype == torch.float32 and out.device == x.device
    plain = normalise(x)
    if resize is not None:  # resize, then normalise, as torchvision orders it (the batched path normalises first)
        plain = normalise(F.interpolate(x.float(), size=(resize, resize), mode="bilinear", antialias=True))
    if train and preset in ("cifar", "uva", "airbench"):
        assert not torch.allclose(out, plain, atol=0.1)  # the random part ran
    else:  # no randomness in the preset or in evaluation: resize and normalise only, whatever the generator
        again = BatchAugment(preset, mean=MEAN, std=STD, resize=resize, train=train, generator=gen(1))(x)
        assert torch.equal(out, again)
        torch.testing.assert_close(out, plain, rtol=0, atol=1e-5)
        # torchvision resizes the uint8 image, rounding to grey levels: one level apart at most.
        reference = reference_transform(preset, mean=MEAN, std=STD, resize=resize, train=train)
        theirs = torch.stack([reference(image) for image in x])
        torch.testing.assert_close(out, theirs, rtol=0, atol=1 / 255 / min(STD) + 1e-5)


@pytest.mark.parametrize(
    ("height", "width", "size"), [(28, 28, 224), (28, 28, 65), (8, 8, 28), (32, 30, 96), (5, 7, 7)]
)
def test_enlarging_equals_torch_bilinear_interpolation(height, width, size):
    # Enlargement is done as two matrix products; it must be the bilinear resize itself (integer and fractional
    # factors, non-square inputs, the edges), with or without antialiasing, which changes nothing when enlarging.
    x = torch.randint(0, 256, (4, 3, height, width), dtype=torch.uint8)
    out = BatchAugment("none", **IDENTITY, resize=size, train=False)(x)
    for antialias in (False, True):
        expected = F.interpolate(x.float() / 255, size=(size, size), mode="bilinear", antialias=antialias)
        torch.testing.assert_close(out, expected, rtol=0, atol=2e-6)  # float rounding; a grey level is 4e-3


def test_none_preset_is_exactly_normalisation():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(BatchAugment("none", mean=MEAN, std=STD, generator=gen())(x), normalise(x))


def test_normalisation_of_a_constant_image():
    levels = [0, 153, 255]  # a different level per channel, so that swapped channels show
    x = torch.tensor(levels, dtype=torch.uint8)[None, :, None, None].expand(2, 3, 5, 5)
    out = BatchAugment("none", mean=MEAN, std=STD)(x)
    for c, v in enumerate(levels):
        expected = torch.full((2, 5, 5), (v / 255 - MEAN[c]) / STD[c])
        torch.testing.assert_close(out[:, c], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["cifar", "uva"])
def test_flip_rate_is_one_half(preset):
    n = 4000
    out = BatchAugment(preset, **IDENTITY, generator=gen(1))(coordinate_images(n))
    # Channel 1 encodes the column. Columns 4..27 never come from padding and lie inside every uva box, so each image
    # reads strictly left to right or right to left there.
    columns = out[:, 1, 16, 4:28]
    steps = columns[:, 1:] - columns[:, :-1]
    unflipped, flipped = (steps > 0).all(dim=1), (steps < 0).all(dim=1)
    assert (unflipped | flipped).all()
    rate = flipped.float().mean().item()
    assert abs(rate - 0.5) < 0.03  # the sampling error of 4,000 coin flips is 0.008


def test_cifar_crop_offsets_are_uniform_and_the_crop_is_exact():
    n, p = 9000, 4
    x = coordinate_images(n)
    out = (BatchAugment("cifar", **IDENTITY, generator=gen(2))(x) * 255).round().to(torch.uint8)
    flipped = out[:, 1, 16, 4] > out[:, 1, 16, 27]  # columns 4..27 are never padding
    out[flipped] = out[flipped].flip(-1)
    # Output pixel (16, 16) is input pixel (12 + dy, 12 + dx) for offsets dy, dx in 0..8, whose codes are 13 + offset.
    dy, dx = out[:, 0, 16, 16].long() - 13, out[:, 1, 16, 16].long() - 13
    assert dy.min() == 0 and dy.max() == 2 * p and dx.min() == 0 and dx.max() == 2 * p
    for counts, bins in ((torch.bincount(dy), 9), (torch.bincount(dx), 9), (torch.bincount(9 * dy + dx), 81)):
        chi2 = ((counts - n / bins) ** 2 / (n / bins)).sum().item()
        assert chi2 < chi2_critical(bins - 1)  # the joint histogram fails if dy and dx share their random numbers
    # Every image is exactly its window of the zero-padded original: padding appears where the offset puts it.
    padded = F.pad(x, (p, p, p, p))
    expected = torch.stack(
        [padded[i, :, y : y + 32, x_ : x_ + 32] for i, (y, x_) in enumerate(zip(dy, dx, strict=True))]
    )
    assert torch.equal(out, expected)


def smooth_asymmetric_images(n: int) -> torch.Tensor:
    """Smooth random images (upsampled noise) with a darker left half, so crops and flips move the statistics."""
    noise = torch.rand(n, 3, 4, 4) * 255
    x = F.interpolate(noise, size=(32, 32), mode="bilinear").round().to(torch.uint8)
    x[:, :, :, :16] //= 2
    return x


@pytest.mark.parametrize("preset", ["cifar", "uva"])
def test_batched_and_torchvision_outputs_have_the_same_statistics(preset):
    x = smooth_asymmetric_images(2000)
    batched = BatchAugment(preset, mean=MEAN, std=STD, generator=gen(3))(x)
    reference = reference_transform(preset, mean=MEAN, std=STD)
    theirs = torch.stack([reference(image) for image in x])
    # Same images, so only the augmentation's randomness differs: two torchvision runs with different seeds differ by
    # up to 0.0064 in these channel statistics, the batched path from torchvision by up to 0.011 (seeds 0-2). Without
    # padding the channel means move by 0.25.
    for stat in (lambda t: t.mean(dim=(0, 2, 3)), lambda t: t.std(dim=(0, 2, 3))):
        torch.testing.assert_close(stat(batched), stat(theirs), rtol=0, atol=0.02)
    # Per-position means check where pixels come from (offsets, flips). One position's difference is noisy: two
    # torchvision runs differ by 0.013-0.024 on average and 0.1 at most, the batched path by up to 0.028 and 0.135.
    # Offsets 0..7 instead of 0..8 give 0.068 on average, missing flips 0.39.
    difference = (batched.mean(0) - theirs.mean(0)).abs()
    assert difference.mean() < 0.04 and difference.max() < 0.2


UVA_CODES = {"step": 8, "first": 4}  # codes 4..252: fit in uint8


def uva_boxes(out: torch.Tensor, size: int = 32) -> tuple[torch.Tensor, ...]:
    """Recover each image's crop box (width, height, left, top) and flip from uva outputs of ``UVA_CODES`` images.

    Bilinear resampling of a linear ramp is the ramp: output pixel j shows input coordinate left + (j + 0.5) * box /
    size - 0.5. Pixels 1 and size - 2 never reach the border clamp; a step of 8 grey levels per pixel keeps uint8
    rounding (torchvision's path) below a tenth of a pixel.
    """
    coords = (out[:, :2] * 255 - UVA_CODES["first"]) / UVA_CODES["step"]
    flipped = coords[:, 1, 16, 1] > coords[:, 1, 16, -2]
    coords[flipped] = coords[flipped].flip(-1)
    boxes = []
    for ramp in (coords[:, 1, 16, :], coords[:, 0, :, 16]):  # along a row: width, left; along a column: height, top
        box = (ramp[:, -2] - ramp[:, 1]) / (size - 3) * size
        boxes.append((box, ramp[:, 1] + 0.5 - 1.5 * box / size))
    (width, left), (height, top) = boxes
    return *(v.round().long() for v in (width, height, left, top)), flipped


def test_uva_boxes_follow_torchvision():
    n = 3000
    x = coordinate_images(n, **UVA_CODES)
    ours = uva_boxes(BatchAugment("uva", **IDENTITY, generator=gen(4))(x))
    reference = reference_transform("uva", **IDENTITY)
    theirs = uva_boxes(torch.stack([reference(image) for image in x]))
    width, height, left, top, _ = ours
    # Area in [0.8, 1] of 32 x 32 with ratio in [0.9, 1.1]: sides of 27 to 32 pixels, inside the image.
    assert width.min() >= 27 and width.max() <= 32 and height.min() >= 27 and height.max() <= 32
    assert (left >= 0).all() and (left + width <= 32).all() and (top >= 0).all() and (top + height <= 32).all()
    for a, b in zip(ours, theirs, strict=True):  # box sides, corners and flips
        assert_same_distribution(a.long(), b.long())
    # Box areas. Clamping oversized boxes instead of redrawing them, a tempting shortcut, gives 39 % of the boxes a
    # full side instead of 31 % and raises the mean area from 0.889 to 0.896 of the image.
    assert_same_distribution(width * height, theirs[0] * theirs[1])


@pytest.mark.parametrize("preset", ["cifar", "uva"])
def test_seeded_augmentation_is_reproducible(preset):
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    a = BatchAugment(preset, mean=MEAN, std=STD, generator=gen(5))(x)
    b = BatchAugment(preset, mean=MEAN, std=STD, generator=gen(5))(x)
    c = BatchAugment(preset, mean=MEAN, std=STD, generator=gen(6))(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Without a generator the global RNG decides, and its seed reproduces the run.
    unseeded = BatchAugment(preset, mean=MEAN, std=STD)
    torch.manual_seed(7)
    d = unseeded(x)
    torch.manual_seed(7)
    assert torch.equal(d, unseeded(x)) and not torch.equal(d, unseeded(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("preset", ["cifar", "uva"])
def test_gpu_batches_match_cpu_batches(preset):
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    on_cpu = BatchAugment(preset, mean=MEAN, std=STD, resize=40, generator=gen(8))(x)
    # A CPU generator may serve GPU images: the same draws, so the same augmentation, computed on the GPU.
    on_gpu = BatchAugment(preset, mean=MEAN, std=STD, resize=40, generator=gen(8))(x.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)
    a, b = (
        BatchAugment(preset, mean=MEAN, std=STD, generator=torch.Generator("cuda").manual_seed(8))(x.cuda())
        for _ in range(2)
    )
    assert torch.equal(a, b)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown augmentation preset 'autoaugment'; valid: none, d2l, cifar, uva"):
        BatchAugment("autoaugment", mean=[0], std=[1])
    with pytest.raises(ValueError, match="unknown augmentation preset 'flip'"):
        reference_transform("flip", mean=[0], std=[1])
    for build in (BatchAugment, reference_transform):
        with pytest.raises(ValueError, match="the d2l preset resizes to the model's input; give resize=N"):
            build("d2l", mean=[0], std=[1])
    with pytest.raises(ValueError, match="resize must be a positive number of pixels, got 0"):
        BatchAugment("none", mean=[0], std=[1], resize=0)
    rgb = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"mean and std need 3 values, one per channel; got 1 and 1"):
        BatchAugment("none", mean=[0], std=[1])(rgb)
    with pytest.raises(ValueError, match=r"mean and std need 3 values, one per channel; got 3 and 2"):
        BatchAugment("none", mean=[0, 0, 0], std=[1, 1])(rgb)
    with pytest.raises(ValueError, match=r"expected a uint8 batch \(N, C, H, W\), got torch.float32 \(1, 3, 4, 4\)"):
        BatchAugment("none", **IDENTITY)(rgb.float())
    with pytest.raises(ValueError, match=r"expected a uint8 batch \(N, C, H, W\), got torch.uint8 \(3, 4, 4\)"):
        BatchAugment("none", **IDENTITY)(rgb[0])
