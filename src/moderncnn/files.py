"""Writing files without losing anything: check the location first, write atomically, name the path on failure.

Every command that writes (figures, previews, exports, prediction grids) goes through these helpers, so an
unwritable, missing or full location is reported before the work starts, in one line that names the path
(:class:`~moderncnn.errors.OutputError`), and a write that fails half-way leaves neither a truncated file nor a
temporary one behind. Two kinds of target are refused outright: a file of a run directory's record (its config,
metrics, results or checkpoints: :data:`moderncnn.rundir.RECORD`), and anything that is not a regular file (a device
such as ``/dev/null``, a FIFO, a socket), which writing to a temporary name and renaming would replace. A low module:
it imports nothing of moderncnn but the errors and the run directory's layout.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moderncnn.errors import OutputError
from moderncnn.rundir import RunDir, process_alive

# Below this much free space a location counts as full: the smallest file we write (a figure) takes tens of KB, and
# a disk with less than this left fails somewhere in the middle of the work instead of before it.
MIN_FREE_BYTES = 1 << 20

_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "disk full (no space left on the device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENOENT: "the folder does not accept new files",
    errno.ENAMETOOLONG: "the name is too long",
}


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def output_error(
    path: str | os.PathLike, err: OSError, advice: str = "choose a location you can write to, with free space"
) -> OutputError:
    """``err`` (raised while writing ``path``) as one line naming the path and the reason, with what to do."""
    reason = _REASONS.get(err.errno or -1, err.strerror or str(err))
    return OutputError(f"cannot write {path}: {reason}; {advice}")


def _existing_base(path: Path, start: Path) -> Path:
    """The nearest existing folder from ``start`` up (``start`` itself if it exists), to write ``path``."""
    base = start
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise OutputError(f"cannot write {path}: {base} is a file, not a folder; choose another location")
    return base


_NOT_REGULAR = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def refuse_protected(path: str | os.PathLike) -> None:
    """Refuse, in one line naming ``path``, a target that writing would damage: part of a run's record, or an
    existing device, FIFO or socket (a rename would turn ``/dev/null`` into a regular file).

    Raises:
        OutputError: ``path`` is such a target.
    """
    path = Path(path).expanduser()
    try:
        kind = _NOT_REGULAR.get(stat.S_IFMT(path.stat().st_mode))
    except OSError:  # missing (the usual case), or unreadable: the write itself will say
        kind = None
    if kind is not None:
        raise OutputError(f"cannot write {path}: it is {kind}, not a regular file; give the name of a file to write")
    run = RunDir.record_holding(path)
    if run is not None:
        raise OutputError(
            f"cannot write {path}: it belongs to the run directory {run.path} (its config, metrics, results and "
            "checkpoints are written by its training only); choose a path outside them"
        )


def ensure_writable(path: str | os.PathLike, *, folder: bool = False, need_bytes: int = 0) -> Path:
    """Check, before any work, that ``path`` can be written; return it as a ``Path``.

    The nearest existing folder on the way to ``path`` must accept a new file (tried for real: permission bits say
    nothing for root, read-only mounts or ``/proc``) and have ``need_bytes`` (at least ``MIN_FREE_BYTES``) free.
    Folders that do not exist yet are not created here.

    Args:
        path: the file to write; with ``folder=True``, a folder to write files into.
        folder: ``path`` is a folder (may exist) rather than a file (must not be an existing folder).
        need_bytes: the space the output is expected to take.

    Raises:
        OutputError: (an ``OSError``) the location cannot be written, is full, or is a target
            :func:`refuse_protected` refuses; the message names ``path``.
    """
    path = Path(path).expanduser()
    refuse_protected(path)
    if not folder and path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name (e.g. {path / 'out.png'})")
    base = _existing_base(path, path if folder else path.parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=".moderncnn-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(base).free
    except OSError as err:
        raise output_error(path, err) from None
    need = max(need_bytes, MIN_FREE_BYTES)
    if free < need:
        raise OutputError(
            f"cannot write {path}: the device holding {base} has {_size(free)} free and this needs about "
            f"{_size(need)}; free some space or choose another location"
        )
    return path


def make_folder(path: str | os.PathLike, *, target: str | os.PathLike | None = None) -> Path:
    """``mkdir -p path``, with a failure reported as an :class:`OutputError` naming ``target`` (default: ``path``),
    the file the folder is made for."""
    path = Path(path)
    target = Path(target) if target is not None else path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if isinstance(err, FileExistsError) or err.errno == errno.ENOTDIR:
            _existing_base(target, path)  # raises, naming the file in the way
        raise output_error(target, err) from None
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, *, sync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffix (writers that pick a format by extension still work) and is hidden.
    On any error it is removed, so ``path`` holds either its earlier content or the complete new one; an
    ``OSError`` in the block becomes an :class:`OutputError` naming ``path``. Missing folders are created. Targets
    that :func:`refuse_protected` refuses are refused before anything is written.

    Args:
        sync: flush the new file to disk before it replaces ``path`` (a crash then cannot leave it empty).
    """
    path = Path(path)
    refuse_protected(path)
    make_folder(path.parent, target=path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        if sync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# ---------------------------------------------------------------------------------- folders owned by a process

OWNER_FILE = "moderncnn-owner.json"


def mark_owner(folder: str | os.PathLike) -> None:
    """Record in ``folder`` which process (pid and host) uses it, for :func:`abandoned` to judge later."""
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    (Path(folder) / OWNER_FILE).write_text(json.dumps(owner))


def abandoned(folder: str | os.PathLike, *, unmarked_after: float = 3600.0) -> bool:
    """Whether a folder marked by :func:`mark_owner` was left by a process that has died on this host.

    A folder of another host is never judged (its process may be alive there). One without a readable mark (its
    process died before writing it, or an older version made it) counts as abandoned once it is ``unmarked_after``
    seconds old.
    """
    folder = Path(folder)
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - folder.stat().st_mtime > unmarked_after
        except OSError:
            return False
    return host == socket.gethostname() and not process_alive(pid)
