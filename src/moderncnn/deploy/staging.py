"""Where an export is written before it is verified: a staging folder beside the output, owned by its process.

An export is written and checked in a hidden ``.moderncnn-export-*`` folder on the output's file system, then
moved into place (a rename), so a failed or killed export never leaves a half-written model where a server would
load it. For a Triton model repository the staging folder is beside the repository, never inside it (Triton tries
to load every folder there). Each staging folder records the pid and host of its process
(:func:`moderncnn.files.mark_owner`); one whose process has died (SIGKILL, a power cut) is removed by the next
export into the same place. The export removes its own staging folder when it fails.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from moderncnn.files import abandoned, mark_owner

PREFIX = ".moderncnn-export-"


def remove_abandoned(folder: Path) -> list[Path]:
    """Remove the staging folders in ``folder`` of exports whose process died; return them.

    A staging folder of a live export, or of another host (see :func:`moderncnn.files.abandoned`), is kept.
    """
    removed = []
    for staged in folder.glob(f"{PREFIX}*") if folder.is_dir() else []:
        if staged.is_dir() and abandoned(staged):
            shutil.rmtree(staged, ignore_errors=True)
            removed.append(staged)
    return removed


def make(places: list[Path]) -> Path:
    """A new staging folder, marked with this process, in the first of ``places`` that takes one.

    Raises:
        OSError: of the last place, when none takes one.
    """
    failure: OSError | None = None
    for place in places:
        try:
            folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=place))
        except OSError as err:
            failure = err
            continue
        try:
            mark_owner(folder)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder
    raise failure or OSError(errno.ENOENT, "no place to stage the export")


def move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; copy, then delete, when ``target`` is on another file system (a Triton
    repository that is a mount point, staged beside it on its parent's file system or in the temporary folder)."""
    try:
        os.replace(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.copytree(source, target)
        shutil.rmtree(source, ignore_errors=True)
