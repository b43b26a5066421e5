"""What every figure of the project does before and after drawing: a file-only backend, then lay out, write, close."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: figures go to files, no display is needed (or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay ``fig`` out, write it to ``out`` as a 100 dpi image (creating the folder) and free it; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    pyplot().close(fig)
    return out
