"""What every figure of the project does before and after drawing: a file-only backend, then lay out, write, close.

Where a figure goes follows one rule (:func:`figure_path`), so every command that takes an image path treats
``--out grid.png``, ``--out grid`` and ``--out folder/`` alike and prints the path it really wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from moderncnn.files import atomic_path, ensure_writable


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: figures go to files, no display is needed (or opened)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image_suffixes() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return {f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes()}


def figure_path(out: str | os.PathLike, default_name: str = "figure.png") -> Path:
    """The file a figure asked for as ``out`` is written to.

    - an existing folder, or a path ending in ``/``: ``out/default_name`` (the folder is made if missing);
    - a name ending in an image format matplotlib writes (``.png``, ``.jpg``, ``.pdf``, ``.svg``...): ``out``;
    - any other name: ``out`` with ``.png`` added (``grid`` → ``grid.png``, ``run.v2`` → ``run.v2.png``).
    """
    text = os.fspath(out)
    path = Path(text).expanduser()
    if text.endswith(("/", os.sep)) or path.is_dir():
        return path / default_name
    if path.suffix.lower() in _image_suffixes():
        return path
    return path.with_name(path.name + ".png")


def check_figure_path(out: str | os.PathLike, default_name: str = "figure.png") -> Path:
    """:func:`figure_path`, checked to be writable (:func:`moderncnn.files.ensure_writable`) before any work."""
    return ensure_writable(figure_path(out, default_name))


def save_figure(fig: Any, out: str | os.PathLike, *, default_name: str = "figure.png") -> Path:
    """Lay ``fig`` out, write it to :func:`figure_path` at 100 dpi, atomically (making the folder), and free it.

    Returns:
        The path written.

    Raises:
        OutputError: the location cannot be written; the message names it.
    """
    path = figure_path(out, default_name)
    try:
        fig.tight_layout()
        with atomic_path(path, sync=False) as tmp:
            fig.savefig(tmp, dpi=100, format=path.suffix[1:].lower())
    finally:
        pyplot().close(fig)
    return path
