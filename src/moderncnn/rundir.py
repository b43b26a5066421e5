"""The layout of a run directory, in one place.

A run directory holds everything about one training run::

    config.yaml            every setting (``moderncnn train --config`` repeats the run)
    metrics.csv            one row per epoch
    results.json           the finished run's figures (written last: its presence means "finished")
    curves.png             loss and accuracy per epoch
    checkpoints/last.ckpt  the end of the last finished epoch (``--resume`` continues from it)
    checkpoints/best.ckpt  the epoch with the best validation accuracy
    tensorboard/           TensorBoard event files
    reproduce.json         where a ``moderncnn reproduce`` run comes from (recipe, budget, published figures)

Everything that reads or writes a run goes through :class:`RunDir`; nothing else spells these names. A leaf
module: it imports no torch and nothing of moderncnn but the errors, so reports can read runs cheaply.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from moderncnn.constants import CHECKPOINTS
from moderncnn.errors import CheckpointError, UsageError

# What a run *is*: the entries of a run directory that only its own training writes. Any other command that would
# write over one of them (``export --out RUN/checkpoints/best.ckpt``) is refused, whoever's run it is; figures that
# commands draw from a run (``curves.png``, ``confusion-test.png``) are outputs and may be redrawn.
RECORD = ("config.yaml", "metrics.csv", "results.json", "reproduce.json", ".lock", "checkpoints", "tensorboard")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (nothing is created by building one)."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def new(cls, model: str, dataset: str, root: str | Path = "runs") -> RunDir:
        """``runs/<model>-<dataset>-<timestamp>``, the dataset name made safe for a folder name."""
        name = dataset.split(":", 1)[-1] if ":" in dataset else dataset
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path(root) / f"{model}-{safe}-{stamp}")

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir | None:
        """The run directory a checkpoint file lies in (``RUN/checkpoints/x.ckpt``), or ``None`` for a loose file."""
        checkpoint = Path(checkpoint)
        return cls(checkpoint.parent.parent) if checkpoint.parent.name == "checkpoints" else None

    @classmethod
    def record_holding(cls, path: str | Path) -> RunDir | None:
        """The run directory whose record (:data:`RECORD`: config, metrics, results, checkpoints, logs) ``path`` is
        part of, or ``None``. Folders on the way are resolved, so a symlink or ``..`` does not hide a run."""
        path = Path(path).expanduser()
        try:
            parent = path.parent.resolve()
        except (OSError, RuntimeError):  # a symlink loop: nothing there can be written anyway
            return None
        parts = (*parent.parts, path.name)
        for i in range(len(parts) - 1, 0, -1):
            run = cls(Path(*parts[:i]))
            # A run has its config and something training made beside it: a lone config.yaml or results.json in a
            # folder of other things is not taken for one.
            if parts[i] in RECORD and run.config.is_file() and any((run.path / e).exists() for e in RECORD[1:]):
                return run
        return None

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def origin(self) -> Path:
        return self.path / "reproduce.json"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    @contextlib.contextmanager
    def lock(self, warn: Callable[[str], None] | None = None) -> Iterator[RunDir]:
        """Hold this run directory exclusively while the block runs (one writer at a time).

        The lock is a file made atomically (``O_CREAT | O_EXCL``) holding the owner's PID and host. A lock left by a
        process of this host that no longer runs is taken over (with a warning); a live owner, or one on another
        host, is refused in one line naming it. The file is removed when the block ends, however it ends.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._lock_owner()
                if owner is not None and (owner.get("host") != mine["host"] or _known_and_alive(owner.get("pid"))):
                    where = "" if owner.get("host") == mine["host"] else f" on {owner.get('host')}"
                    raise RunLockedError(
                        f"{self.path} is in use by process {owner.get('pid')}{where} (lock file {self.lock_file}); "
                        "wait for it to finish, or use another run directory"
                    ) from None
                if warn is not None:
                    warn(
                        f"taking over the lock of {self.path} left by process {owner and owner.get('pid')}, "
                        "which no longer runs"
                    )
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock_file)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            break
        else:
            raise RunLockedError(f"could not take the lock of {self.path}; another process keeps taking it")
        try:
            yield self
        finally:
            if self._lock_owner() == mine:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock_file)

    def _lock_owner(self) -> dict | None:
        try:
            return json.loads(self.lock_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or half-written: treated as stale when its writer is gone

    def checkpoint(self, which: str) -> Path:
        """``checkpoints/<which>.ckpt`` for ``which`` in ``best``, ``last``."""
        if which not in CHECKPOINTS:
            raise CheckpointError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {which!r}")
        return self.checkpoints / f"{which}.ckpt"

    def confusion(self, split: str) -> Path:
        return self.path / f"confusion-{split}.png"

    @property
    def is_finished(self) -> bool:
        return self.results.is_file()

    @property
    def is_run(self) -> bool:
        """Whether this looks like a run directory (it has a config or results)."""
        return self.results.is_file() or self.config.is_file()

    def read_config(self) -> dict:
        """``config.yaml`` as a plain mapping (``yaml.safe_load``)."""
        try:
            values = yaml.safe_load(self.config.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise CheckpointError(f"cannot read {self.config}: {err}") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"{self.config} is not a mapping of settings")
        return values

    def read_results(self) -> dict:
        """``results.json``; a clear error for an unfinished run or a folder that is no run."""
        if not self.results.is_file():
            if self.config.is_file():
                raise CheckpointError(
                    f"{self.path} is an unfinished run (no results.json); finish it with "
                    f"`moderncnn train --resume {self.path}` or leave it out"
                )
            raise CheckpointError(f"{self.path} is not a run directory (no results.json, no config.yaml)")
        return json.loads(self.results.read_text())

    def read_metrics(self) -> list[dict[str, str]]:
        """The rows of ``metrics.csv`` (empty before the first epoch ends)."""
        return read_metrics(self.metrics)

    def read_origin(self) -> dict:
        """``reproduce.json`` (empty for a run not made by ``reproduce``)."""
        return json.loads(self.origin.read_text()) if self.origin.is_file() else {}


class RunLockedError(UsageError):
    """Another process is writing this run directory."""


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one owned by another user counts; 0 and below name no
    single process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _known_and_alive(pid) -> bool:
    return isinstance(pid, int) and process_alive(pid)


def _known_and_alive(pid) -> bool:
    return isinstance(pid, int) and process_alive(pid)


def read_metrics(path: Path) -> list[dict[str, str]]:
    """Rows of a ``metrics.csv`` file as dicts of strings; empty when the file does not exist yet."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def find_runs(paths: list[str | Path]) -> list[RunDir]:
    """Run directories; a folder of runs (such as a ``reproduce`` output) stands for the finished runs in it."""
    found = []
    for path in map(Path, paths):
        run = RunDir(path)
        inner = sorted(p.parent for p in path.glob("*/results.json"))
        if not run.is_run and inner:
            found += [RunDir(p) for p in inner]
        else:
            found.append(run)
    return found
