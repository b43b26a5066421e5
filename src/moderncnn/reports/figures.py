"""The comparison report's figures: test accuracy against size and speed, and the validation curves.

Networks of one recipe often sit close together (the chapter's seven at a `smoke` budget differ by a few points of
accuracy and a factor of two in size), so the point labels are placed by adjustText, which moves each label until
none overlaps another or a point, and draws a thin line back to its point when it had to move far.
"""

from __future__ import annotations

from typing import Any

from moderncnn.plotting import pyplot

# Markers cycle with the colours, so networks stay apart in print and for readers who do not tell colours apart.
MARKERS = "osD^vP*Xh<>p"


def comparison_figure(records: list, their_acc: str | None, their_speed: str | None) -> Any:
    """Test accuracy against parameters and against training examples/sec, ours filled, published hollow.

    Args:
        records: the runs (``reports.compare.RunRecord``).
        their_acc: the published test accuracy's key in each record's ``published`` (``None``: none drawn).
        their_speed: the published examples/sec key (``None``: published points only on the parameters panel).
    """
    plt = pyplot()
    from adjustText import adjust_text
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    panels = []
    for ax, attr, label in (
        (axes[0], "params", "parameters"),
        (axes[1], "examples_per_sec", "training examples/sec"),
    ):
        xs, ys, texts = [], [], []
        for i, r in enumerate(records):
            color, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
            x = getattr(r, attr)
            ax.scatter(x, r.test_acc, color=color, marker=marker, label="ours" if i == 0 else None)
            xs.append(x)
            ys.append(r.test_acc)
            texts.append(ax.text(x, r.test_acc, r.model, fontsize=8, color=color))
            acc = r.published.get(their_acc) if their_acc else None
            theirs_x = x if attr == "params" else (r.published.get(their_speed) if their_speed else None)
            if acc is not None and theirs_x is not None:
                ax.scatter(theirs_x, acc, facecolors="none", edgecolors=color, marker=marker,
                           label="published" if i == 0 else None)  # fmt: skip
                xs.append(theirs_x)
                ys.append(acc)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label + " (log scale)")
        ax.grid(True, alpha=0.3)
        ax.margins(0.15)  # room at the edges for the labels that move outwards
        panels.append((ax, texts, xs, ys))
    axes[0].set_ylabel("test accuracy")
    if their_acc:  # above the axes, where no point or label can be
        axes[1].legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, borderaxespad=0.2)
    devices = ", ".join(sorted({r.device for r in records}))
    fig.suptitle(f"test accuracy vs size and speed ({devices})", fontsize=10)
    fig.tight_layout()  # the final layout first: adjustText works in display coordinates
    for ax, texts, xs, ys in panels:
        adjust_text(  # the points too are kept clear of labels
            texts,
            x=xs,
            y=ys,
            ax=ax,
            # Stronger repulsion than adjustText's defaults: seven labels on one spot still come apart.
            force_text=(0.3, 0.6),
            force_static=(0.3, 0.6),
            expand=(1.2, 1.6),
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5},
            # A step count, not adjustText's default of one second: the same figure on a busy machine as on an idle
            # one (it stops as soon as no label overlaps; the clusters in tests/test_report_figures.py need a few
            # hundred steps).
            iter_lim=2000,
        )
    return fig


def curves_figure(records: list) -> Any:
    """Validation accuracy per epoch, one line (colour and marker) per network, the legend beside the axes."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, r in enumerate(records):
        if r.curve:
            ax.plot(range(1, len(r.curve) + 1), r.curve, marker=MARKERS[i % len(MARKERS)], markersize=4,
                    color=f"C{i % 10}", label=r.model)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # Outside the axes: inside, it covers the curves' ends, where the interesting part is.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return fig
