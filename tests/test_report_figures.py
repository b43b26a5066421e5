"""The comparison report's figures stay readable where networks cluster: no label runs into another.

The cluster is the case seen on a `smoke` report of d2l-ch7: seven networks within a few points of accuracy and a
factor of about 1.5 in size and speed, so labels placed at a fixed offset from their points overlap; and the extreme
of seven networks on one spot.
"""

from itertools import combinations
from pathlib import Path

import pytest

from moderncnn.reports.compare import RunRecord
from moderncnn.reports.figures import comparison_figure, curves_figure

NAMES = ["alexnet_d2l", "vgg_d2l", "nin", "googlenet_d2l", "lenet_bn", "resnet18_d2l", "densenet_d2l"]


def _record(i: int, name: str, spread: int = 1) -> RunRecord:
    i *= spread
    acc = 0.10 + 0.002 * i
    return RunRecord(
        run_dir=Path(name), model=name, dataset="fashion-mnist", params=1_000_000 + 50_000 * i, flops=None,
        input_shape=None, epochs=3, best_val_acc=acc, test_acc=acc, examples_per_sec=500 + 20 * i,
        wall_seconds=10.0, device="cpu", curve=[acc - 0.02, acc - 0.01, acc],
        published={"book_test_acc": 0.88 + 0.005 * i, "book_examples_per_sec": 3000 + 300 * i},
    )  # fmt: skip


@pytest.fixture(params=[1, 0], ids=["clustered", "identical"])
def clustered(request):
    return [_record(i, name, spread=request.param) for i, name in enumerate(NAMES)]


def _boxes(fig, artists):
    fig.tight_layout()  # as save_figure lays the figure out again before writing it
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def test_comparison_labels_do_not_overlap_where_networks_cluster(clustered):
    fig = comparison_figure(clustered, "book_test_acc", "book_examples_per_sec")
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text() in NAMES]
        assert sorted(t.get_text() for t in labels) == sorted(NAMES)
        boxes = _boxes(fig, labels)
        pairs = combinations(zip(labels, boxes, strict=True), 2)
        clashes = [(a.get_text(), b.get_text()) for (a, ba), (b, bb) in pairs if ba.overlaps(bb)]
        assert not clashes, f"labels overlap on the {ax.get_xlabel()} panel: {clashes}"
        edge = fig.bbox
        cut = [t.get_text() for t, b in zip(labels, boxes, strict=True) if b.x0 < 0 or b.x1 > edge.x1 or b.y1 > edge.y1]
        assert not cut, f"labels cut off at the figure's edge: {cut}"


def test_validation_curves_keep_the_legend_off_the_curves(clustered):
    fig = curves_figure(clustered)
    ax = fig.axes[0]
    legend, axes_box = _boxes(fig, [ax.get_legend(), ax])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == NAMES
    assert not legend.overlaps(axes_box)
    assert legend.x1 <= fig.bbox.x1 + 1, "the legend is cut off at the figure's right edge"
