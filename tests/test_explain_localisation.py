"""The pointing game: Grad-CAM's hottest pixel falls on the object the class is about.

Images of small shapes (filled square, ring, plus, X; 9 px) at random places on noise, with two brighter 3x3 dots
elsewhere as distractors: the class is the shape, never the place, and the brightest thing in the image is not the
evidence. A small network with global average pooling learns the shapes in a few epochs; for the test images it
classifies correctly, the hottest pixel of Grad-CAM's map for the true class must lie in the shape's box (with a
2 px margin) for at least 90 % of them. Pointing at the brightest pixel instead scores about 6 %, so the check can
tell a map that follows the class evidence from one that does not.
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from moderncnn.inspect import attribute, default_layer

SIZE, SHAPE, MARGIN, DOTS = 48, 9, 2, 2
CLASSES = ("square", "ring", "plus", "cross")


def shape_masks() -> torch.Tensor:
    """The four 9x9 shapes as boolean masks, in the order of :data:`CLASSES`."""
    i, j = torch.meshgrid(torch.arange(SHAPE), torch.arange(SHAPE), indexing="ij")
    centre = (SHAPE - 1) / 2
    radius = ((i - centre) ** 2 + (j - centre) ** 2).sqrt()
    square = torch.ones(SHAPE, SHAPE, dtype=torch.bool)
    ring = (radius >= 2.6) & (radius <= 4.4)
    plus = ((i - centre).abs() <= 1) | ((j - centre).abs() <= 1)
    cross = ((i - j).abs() <= 1) | ((i + j - (SHAPE - 1)).abs() <= 1)
    return torch.stack([square, ring, plus, cross])


def make_shapes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` grey images in [0, 1] ``(n, 1, SIZE, SIZE)``, their classes and the top-left corner of each shape."""
    g = torch.Generator().manual_seed(seed)
    masks = shape_masks()
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)
    corners = torch.randint(0, SIZE - SHAPE + 1, (n, 2), generator=g)
    dots = torch.randint(0, SIZE - 3 + 1, (n, DOTS, 2), generator=g)
    images = 0.3 + 0.15 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    level = 0.6 + 0.25 * torch.rand(n, generator=g)  # the shape is dimmer than the distractors (1.0)
    for k in range(n):
        for top, left in dots[k].tolist():
            images[k, 0, top : top + 3, left : left + 3] = 1.0
        top, left = corners[k].tolist()
        mask = masks[labels[k]]
        noise = 0.05 * torch.randn(int(mask.sum()), generator=g)
        images[k, 0, top : top + SHAPE, left : left + SHAPE][mask] = level[k] + noise
    return images.clamp(0, 1), labels, corners


def small_cnn() -> nn.Sequential:
    """Three conv-BN-ReLU stages (48 → 24 → 12 px), global average pooling, a linear classifier."""

    def stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
        layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

    return nn.Sequential(
        stage(1, 16, True), stage(16, 32, True), stage(32, 64, False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, len(CLASSES)),
    )  # fmt: skip


def trained(seed: int, epochs: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    x, y, _ = make_shapes(2000, seed)
    net = small_cnn()
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    batches = -(-len(x) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-2, total_steps=epochs * batches)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(net(normalise(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def normalise(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.3) / 0.2


def pointing_rate(maps: torch.Tensor, corners: torch.Tensor) -> float:
    """Share of maps whose largest value lies in the shape's box, widened by ``MARGIN`` pixels on each side."""
    hottest = maps.flatten(1).argmax(dim=1)
    row, col = hottest // SIZE, hottest % SIZE
    top, left = corners[:, 0], corners[:, 1]
    rows_in = (row >= top - MARGIN) & (row < top + SHAPE + MARGIN)
    cols_in = (col >= left - MARGIN) & (col < left + SHAPE + MARGIN)
    return float((rows_in & cols_in).float().mean())


pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradcam_points_at_the_shape_not_at_the_brightest_spot():
    net = trained(seed=0)
    x, y, corners = make_shapes(400, seed=1000)
    with torch.no_grad():
        correct = net(normalise(x)).argmax(dim=1) == y
    assert correct.float().mean() >= 0.9, "the network must learn the shapes for the game to mean anything"
    assert default_layer(net) == "2"  # the last conv stage: 12x12 maps
    x, y, corners = x[correct], y[correct], corners[correct]
    for method in ("gradcam", "gradcam++"):
        result = attribute(net, normalise(x), method=method, target=y.tolist())
        assert result.maps.shape == (len(x), SIZE, SIZE)
        assert pointing_rate(result.maps, corners) >= 0.9, method
    # The control: the brightest pixel points at a distractor, so a map that followed brightness would fail.
    assert pointing_rate(x[:, 0], corners) < 0.3
