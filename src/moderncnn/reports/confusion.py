"""A confusion-matrix figure: rows are true classes, columns predicted ones, counts in the cells."""

from __future__ import annotations

from pathlib import Path

from moderncnn.plotting import pyplot, save_figure


def plot_confusion(matrix: list[list[int]], classes: list[str], out: str | Path, title: str = "") -> Path:
    plt = pyplot()

    k = len(classes)
    size = max(4.0, 0.55 * k + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:  # counts stay readable up to about twenty classes
        peak = max(max(row) for row in matrix) or 1
        for i in range(k):
            for j in range(k):
                colour = "white" if matrix[i][j] > peak / 2 else "black"
                ax.text(j, i, matrix[i][j], ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out, default_name="confusion.png")
