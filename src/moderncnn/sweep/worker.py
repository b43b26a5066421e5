"""Running a sweep: one Optuna study shared by any number of worker processes, each trial a normal run directory.

Every worker runs the same loop against the storage: fail what a dead worker left running (Optuna's heartbeat does
it for database storages, and :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` queues the trial again),
take a queued trial or ask the sampler for a new one, train it with Optuna's Lightning pruning callback, and stop
when the study holds its number of trials. The same command on other machines against the same storage adds workers.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from moderncnn.errors import ConfigError, TrainingError, UsageError
from moderncnn.files import ensure_writable, write_text
from moderncnn.rundir import RunDir
from moderncnn.sweep.spec import SweepSpec
from moderncnn.sweep.storage import default_storage, fail_dead_trials, open_storage, owner

SWEEP_FILE = "sweep.yaml"
# Trials rejected in a row by the constraints before a worker gives up on the space.
MAX_REJECTED = 200


def trial_dir(out: Path, number: int) -> Path:
    return out / f"trial-{number:04d}"


def default_out(spec: SweepSpec) -> Path:
    return Path("runs") / "sweeps" / spec.name


def run_sweep(
    spec: SweepSpec,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    storage: str | None = None,
    trials: int | None = None,
    quiet: bool = False,
) -> dict:
    """Run (or resume) ``spec``'s study until it holds its trials; returns where it lives (``out``, ``storage``,
    ``study``).

    Args:
        spec: the checked sweep file.
        out: the sweep's folder, holding ``sweep.yaml``, the default SQLite storage and one run directory per trial
            (default ``runs/sweeps/<file name>``).
        workers: local worker processes; the CPU threads are split among them.
        storage: an Optuna storage URL (``sqlite:///``, ``postgresql://``, ``mysql://``) or ``journal:PATH``.
        trials: the study's number of trials, over the file's.
        quiet: no line per trial.
    """
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if trials is not None:
        if trials < 1:
            raise UsageError(f"--trials must be at least 1, got {trials}")
        spec.trials = trials
    out = Path(out) if out is not None else default_out(spec)
    ensure_writable(out, folder=True)
    url = storage or default_storage(out)
    if url.startswith("journal:"):  # recorded in sweep.yaml: it must name the same file from any folder
        url = f"journal:{Path(url.removeprefix('journal:')).expanduser().resolve()}"
    log = _silent if quiet else _print
    _record(out, spec, url)
    log(f"sweep {spec.name}: {spec.trials} trials of {spec.objective} ({spec.direction}) in {out}, storage {url}")
    threads = _threads_per_worker(workers)
    if workers == 1:
        run_worker(spec, out, url, threads, 0, log)
    else:
        open_study(spec, url)  # created here, once, before the workers race to create it
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=run_worker, args=(spec, out, url, threads, index, log), daemon=False)
            for index in range(workers)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        failed = [p.exitcode for p in processes if p.exitcode]
        if failed:
            raise TrainingError(f"{len(failed)} of {workers} workers failed (exit codes {failed}); see their output")
    return {"out": out, "storage": url, "study": spec.name}


def _threads_per_worker(workers: int) -> int | None:
    """Each worker's share of the CPU cores (``None`` for one worker: the engine's own adaptive choice)."""
    if workers == 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def _record(out: Path, spec: SweepSpec, url: str) -> None:
    """Write ``sweep.yaml`` (the file, the storage, the study); refuse a folder that holds another sweep."""
    path = out / SWEEP_FILE
    mine = {"study": spec.name, "storage": url, "spec": spec.raw}
    if path.is_file():
        theirs = yaml.safe_load(path.read_text()) or {}
        same = {k: v for k, v in (theirs.get("spec") or {}).items() if k != "trials"} == {
            k: v for k, v in spec.raw.items() if k != "trials"
        }
        if not same or theirs.get("study") != spec.name:
            raise ConfigError(f"{out} holds another sweep ({path} differs from this file); give another --out")
        if theirs.get("storage") != url:
            raise ConfigError(
                f"{out}'s study lives in {theirs.get('storage')}; give --storage with it, or another --out"
            )
    write_text(path, yaml.safe_dump(mine, sort_keys=False))


def open_study(spec: SweepSpec, url: str, index: int = 0):
    """The study of ``spec`` in ``url`` (created when missing), with this worker's sampler and pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seed = None if spec.seed is None else spec.seed + index  # workers sampling in step would repeat each other
    if spec.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        # constant_liar: a worker treats the others' running trials as bad, so parallel workers spread out.
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.create_study(
        storage=open_storage(url, spec.heartbeat),
        study_name=spec.name,
        direction=spec.direction,
        sampler=sampler,
        pruner=_pruner(spec),
        load_if_exists=True,
    )


def _pruner(spec: SweepSpec):
    import optuna

    name = spec.pruner["name"]
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        epochs = spec.config({}).epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner.get("startup_trials", 3), n_warmup_steps=spec.pruner.get("warmup_epochs", 0)
    )


def run_worker(spec: SweepSpec, out: Path, url: str, threads: int | None, index: int, log=None) -> None:
    """One worker's loop: run trials until the study holds ``spec.trials`` that trained (rejected ones do not
    count) and none is queued or running elsewhere (a dead worker's trial is failed when its heartbeat goes stale,
    and retried). ``log`` takes its one-line messages (module-level, so that a spawned worker can take it)."""
    import optuna
    from optuna.trial import TrialState

    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    log = log or _print
    study = open_study(spec, url, index)
    objective = Objective(spec, out, threads, log)
    while True:
        fail_dead_trials(study)
        optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        queued = any(t.state == TrialState.WAITING for t in trials)
        live = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        counted = sum(t.state in live and "rejected" not in t.user_attrs for t in trials)
        if queued or counted < spec.trials:
            try:
                study.optimize(objective, n_trials=1, catch=(TrainingError,), gc_after_trial=True)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
                if not objective.failed_elsewhere(study):
                    raise
                # Another worker found this one's heartbeat stale (a machine too busy to beat in time), failed the
                # trial and queued it again; the work is lost, not the trial.
                log(f"trial {objective.number}: failed by another worker's heartbeat check; it runs again")
            if objective.rejected_in_a_row >= MAX_REJECTED:
                raise ConfigError(
                    f"the last {MAX_REJECTED} networks sampled all broke the constraints {spec.constraints}; few "
                    "points of the space meet them: narrow the space or widen the constraints"
                )
        elif any(t.state == TrialState.RUNNING for t in trials):
            time.sleep(min(spec.heartbeat, 5.0))  # another worker's, or a dead one's until its heartbeat is stale
        else:
            return


def _print(message: str) -> None:
    print(message, flush=True)


def _silent(message: str) -> None:
    pass


@dataclass
class Objective:
    """One trial: its settings from the space, the constraints checked, then a normal run in ``out/trial-NNNN``."""

    spec: SweepSpec
    out: Path
    threads: int | None
    log: object
    rejected_in_a_row: int = 0
    number: int | None = None  # the trial this worker ran last
    trial_id: int | None = None

    def failed_elsewhere(self, study) -> bool:
        """Whether the last trial was marked failed while this worker ran it (its heartbeat judged stale)."""
        from optuna.trial import TrialState

        return self.trial_id is not None and study._storage.get_trial(self.trial_id).state == TrialState.FAIL

    def __call__(self, trial) -> float:
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        from moderncnn.engine import train
        from moderncnn.sweep.constraints import violations

        self.number, self.trial_id = trial.number, trial._trial_id
        values = {p.name: _suggest(trial, p) for p in self.spec.space}
        described = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        config = self.spec.config(values)
        if self.threads is not None and "threads" not in self.spec.base:
            config = dataclasses.replace(config, threads=self.threads)
        trial.set_user_attr("owner", owner())
        retried = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial.storage.get_trial(trial._trial_id))
        if retried is not None:
            trial.set_user_attr("retry_of", retried)
        broken = violations(self.spec, config)
        if broken:
            self.rejected_in_a_row += 1
            trial.set_user_attr("rejected", "; ".join(broken))
            raise optuna.TrialPruned(f"rejected before training: {'; '.join(broken)}")
        self.rejected_in_a_row = 0
        run = trial_dir(self.out, trial.number)
        config = dataclasses.replace(config, run_dir=str(run))
        trial.set_user_attr("run_dir", run.name)
        again = f" (retry of trial {retried})" if retried is not None else ""
        self.log(f"trial {trial.number}{again}: {described}")
        started = time.perf_counter()
        pruning = _pruning_callback(trial, self.spec)
        try:
            train(config, quiet=True, callbacks=(pruning,))
            if pruning.pruned is not None:  # at its last epoch
                raise pruning.pruned
        except optuna.TrialPruned:
            epochs = len(trial.storage.get_trial(trial._trial_id).intermediate_values)
            self.log(f"trial {trial.number}: pruned after {epochs} epochs ({time.perf_counter() - started:.0f} s)")
            raise
        except TrainingError as err:
            self.log(f"trial {trial.number}: failed: {err}")
            raise
        results = RunDir(run).read_results()
        value = float(results[self.spec.objective])
        self.log(f"trial {trial.number}: {self.spec.objective} {value:.4f} ({time.perf_counter() - started:.0f} s)")
        return value


def _suggest(trial, param):
    if param.kind == "categorical":
        return trial.suggest_categorical(param.name, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(param.name, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(param.name, param.low, param.high, step=param.step, log=param.log)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pruning_callback(trial, spec: SweepSpec):
    """optuna-integration's Lightning pruning callback, its verdict carried out once the run wrote the epoch's row and
    checkpoint (at the next epoch's start, or after the last): a pruned trial is a run directory ``--resume`` can
    continue."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    class PruneAtEpochEnd(PyTorchLightningPruningCallback):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pruned: optuna.TrialPruned | None = None

        def on_validation_end(self, trainer, pl_module) -> None:
            try:
                super().on_validation_end(trainer, pl_module)
            except optuna.TrialPruned as pruned:
                self.pruned = pruned

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            # Here rather than at the epoch's end, where Lightning calls the run's recorder (a Checkpoint) last.
            if self.pruned is not None:
                raise self.pruned

    return PruneAtEpochEnd(trial, monitor="val_loss" if spec.objective == "val_loss" else "val_acc")
