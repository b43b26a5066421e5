"""What a run leaves on disk each epoch: a row of ``metrics.csv``, ``curves.png``, ``last.ckpt`` and ``best.ckpt``;
and ``last.ckpt`` again inside long epochs (``checkpoint_every``), holding what the rest of the epoch needs.

Checkpoints and ``metrics.csv`` are written to a temporary file and renamed over the old one (:func:`written_whole`),
so a process killed at any moment leaves either the previous file or the new one, never half of one; a write that
fails (a full disk) removes its temporary file, keeps the previous one and ends the run in one line naming the file.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from moderncnn.files import MIN_FREE_BYTES, output_error
from moderncnn.rundir import RunDir, read_metrics

COLUMNS = [
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "examples_per_sec",
    "epoch_seconds",
]
TIMING_COLUMNS = ("examples_per_sec", "epoch_seconds")


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """``<path>.tmp`` to write, renamed onto ``path`` when the block succeeds and removed however it ends.

    A write that fails for an ``OSError`` (a full disk: ``[Errno 28]``), or a ``RuntimeError`` from ``torch.save``
    on a disk with no space left (``enforce fail at inline_container.cc``), becomes one line naming ``path``
    (:class:`~moderncnn.errors.OutputError`); ``path`` keeps its previous content.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if not isinstance(err, OSError):  # torch reports a failed write without its errno: judge by the space left
            if shutil.disk_usage(path.parent).free >= MIN_FREE_BYTES:  # measured before the temporary file goes
                raise
            err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        advice = "the files written before are kept: free some space, then resume the run with --resume"
        raise output_error(path, err, advice) from None
    finally:
        tmp.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to ``<path>.tmp``, flush to disk, then ``os.replace`` onto ``<path>`` (:func:`written_whole`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(path) as tmp, open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())


class RunRecorder(Checkpoint):
    """Writes the per-epoch record of a run (a ``Checkpoint`` callback, so it runs after the module's hooks).

    Args:
        run: the run directory.
        seed: the run's seed; the global RNG (dropout) is reseeded from it at every epoch start, so a run
            resumed from ``last.ckpt`` continues exactly as the uninterrupted run would have.
        on_epoch_end: called with the run directory after each epoch's files are written (draws the curves).
        checkpoint_every: (steps, seconds) between the checkpoints written inside an epoch (``config.
            checkpoint_interval``); (0, 0) writes them at epoch ends only. A run of several processes does too: each
            rank's position, random state and partial sums would have to be gathered into the one file.
    """

    def __init__(self, run: RunDir, seed: int, on_epoch_end=None, checkpoint_every: tuple[int, float] = (0, 0.0)):
        self.run = RunDir(run)
        self.seed = seed
        self.on_epoch_end = on_epoch_end
        self.every_steps, self.every_seconds = checkpoint_every
        self._saved_at = 0.0
        self._within_epoch: dict | None = None  # saved with a checkpoint taken inside an epoch
        self._resumed: dict | None = None  # loaded from one, applied when training starts
        self._last_saved = "the run as it was last saved"
        self.best_acc = -1.0
        self.epoch_metrics: dict[str, float] = {}  # what the last finished epoch logged (results.json reports it)
        self.train_seconds = 0.0
        self.train_examples = 0
        self._start = 0.0
        self._examples = 0
        self._val_start = 0.0
        self._val_seconds = 0.0
        self._lr = 0.0

    @property
    def metrics_path(self) -> Path:
        return self.run.metrics

    def state_dict(self) -> dict:
        state = {"best_acc": self.best_acc, "train_seconds": self.train_seconds, "train_examples": self.train_examples}
        state["epoch_metrics"] = self.epoch_metrics  # for a run resumed with only its final test left
        if self._within_epoch is not None:
            state["within_epoch"] = self._within_epoch
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best_acc = state["best_acc"]
        self.train_seconds = state["train_seconds"]
        self.train_examples = state["train_examples"]
        self.epoch_metrics = state.get("epoch_metrics", {})
        self._resumed = state.get("within_epoch")

    def on_train_start(self, trainer, pl_module) -> None:
        # A resumed run may have written rows after its last checkpoint: drop them, they will be redone.
        rows = [r for r in read_metrics(self.metrics_path) if int(r["epoch"]) < trainer.current_epoch]
        if trainer.is_global_zero:
            self._write_rows(rows)
        self._saved_at = time.monotonic()
        state, self._resumed = self._resumed, None
        if state is not None:
            # Resumed inside an epoch, where on_train_epoch_start is not called again: the loader continues at the
            # next batch (applied here: Lightning 2.6 drops the loader states it saved when configure_optimizers
            # asks for estimated_stepping_batches, Lightning issue #20550), dropout's RNG where it was.
            trainer.train_dataloader.load_state_dict(state["loader"])
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self._lr, self._examples = state["lr"], state["examples"]
            self._start, self._val_seconds = time.perf_counter() - state["seconds"], 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        torch.manual_seed(self.seed * 1_000_003 + trainer.current_epoch * 1009 + trainer.global_rank)
        loader = trainer.train_dataloader
        for part in (loader, getattr(loader, "sampler", None)):  # DeviceLoader, or a DataLoader's ShardSampler
            if hasattr(part, "set_epoch"):
                part.set_epoch(trainer.current_epoch)
        self._examples = 0
        self._val_seconds = 0.0
        self._lr = trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch starts with
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._examples += len(batch[1])
        if self._checkpoint_due(trainer, batch_idx):
            self._save_within_epoch(trainer)

    def _checkpoint_due(self, trainer, batch_idx: int) -> bool:
        if trainer.world_size > 1 or batch_idx + 1 >= trainer.num_training_batches:
            return False  # the epoch's own checkpoint follows at its end
        if self.every_steps:
            return trainer.global_step % self.every_steps == 0
        return bool(self.every_seconds) and time.monotonic() - self._saved_at >= self.every_seconds

    def _save_within_epoch(self, trainer) -> None:
        """``last.ckpt`` now, with what the rest of the epoch needs beside what Lightning saves (the weights, the
        optimiser, the loops' progress) and the module's partial sums: the loader's position, the RNG, this epoch's
        rate and timing so far."""
        self._within_epoch = {
            "loader": trainer.train_dataloader.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "lr": self._lr,
            "examples": self._examples,
            "seconds": time.perf_counter() - self._start,
        }
        try:
            trainer.save_checkpoint(self.run.last, weights_only=False)
        finally:
            self._within_epoch = None
        self._saved_at = time.monotonic()
        self._last_saved = f"epoch {trainer.current_epoch + 1} up to step {trainer.global_step}"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._start  # training only: the validation pass ran before this hook
        seconds -= self._val_seconds
        self.train_seconds += seconds
        examples = self._examples * trainer.world_size
        self.train_examples += examples
        m = trainer.callback_metrics
        self.epoch_metrics = {k: v.item() for k, v in m.items()}
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": f"{m['train_loss'].item():.6f}",
            "train_acc": f"{m['train_acc'].item():.6f}",
            "val_loss": f"{m['val_loss'].item():.6f}" if "val_loss" in m else "",
            "val_acc": f"{m['val_acc'].item():.6f}" if "val_acc" in m else "",
            "lr": f"{self._lr:.6g}",
            "examples_per_sec": f"{examples / seconds:.1f}",
            "epoch_seconds": f"{seconds:.2f}",
        }
        val_acc = m["val_acc"].item() if "val_acc" in m else m["train_acc"].item()
        if trainer.is_global_zero:
            self._write_rows([*read_metrics(self.metrics_path), row])
        # Order matters for resuming: the row first, then the checkpoints that say the epoch is done.
        if val_acc > self.best_acc:
            self.best_acc = val_acc
            trainer.save_checkpoint(self.run.best, weights_only=False)
        trainer.save_checkpoint(self.run.last, weights_only=False)
        self._saved_at = time.monotonic()
        self._last_saved = f"the end of epoch {trainer.current_epoch + 1}"
        if trainer.is_global_zero and self.on_epoch_end is not None:
            self.on_epoch_end(self.run)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._val_seconds += time.perf_counter() - self._val_start

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # SIGTERM (a scheduler stopping the job, a SLURM preemption) ends a run as Ctrl-C does.
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not trainer.is_global_zero:
            return
        how = "stopped by SIGTERM" if isinstance(exception, SIGTERMException) else "interrupted"
        # last.ckpt is left as it was last written (the end of an epoch, or a step inside this one): the state
        # at this moment may be half a step, and resuming from the checkpoint reproduces the uninterrupted run.
        last = self.run.last
        if last.is_file():
            print(
                f"{how} in epoch {trainer.current_epoch + 1}; {last} holds {self._last_saved}. "
                f"Resume with: moderncnn train --resume {self.run}",
                file=sys.stderr,
            )
        else:
            print(f"{how} in epoch 1, before any checkpoint; nothing to resume in {self.run}", file=sys.stderr)

    def _write_rows(self, rows: list[dict]) -> None:
        with written_whole(self.metrics_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
