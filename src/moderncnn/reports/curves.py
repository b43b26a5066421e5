"""``curves.png``: train loss, train accuracy and validation accuracy per epoch on one figure, as the textbook plots."""

from __future__ import annotations

from pathlib import Path

from moderncnn.plotting import pyplot, save_figure
from moderncnn.rundir import RunDir


def plot_curves(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw ``run_dir/metrics.csv`` into ``out`` (default ``run_dir/curves.png``)."""
    plt = pyplot()

    run = RunDir(run_dir)
    rows = run.read_metrics()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for column, style, label in (
        ("train_loss", "-", "train loss"),
        ("train_acc", "--", "train acc"),
        ("val_acc", "-.", "val acc"),
    ):
        values = [float(r[column]) for r in rows if r[column] != ""]
        if values:
            ax.plot(epochs[: len(values)], values, style, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(run.path.name, fontsize=9)
    return save_figure(fig, out if out is not None else run.curves)
