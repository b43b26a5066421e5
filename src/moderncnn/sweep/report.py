"""What a sweep found: its trials, the best ones as a table, Optuna's figures, and the best trial's full-length run."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moderncnn.errors import UsageError
from moderncnn.files import write_text
from moderncnn.rundir import RunDir
from moderncnn.sweep.worker import SWEEP_FILE

# Optuna's matplotlib figures: file name, function in optuna.visualization.matplotlib.
FIGURES = {
    "history": "plot_optimization_history",
    "importances": "plot_param_importances",
    "parallel": "plot_parallel_coordinate",
    "intermediate": "plot_intermediate_values",
}


@dataclass
class SweepReport:
    """A study's trials as plain data (``trials``: number, state, params, value, run_dir, epochs, note)."""

    out: Path
    study: str
    direction: str
    objective: str
    trials: list[dict]
    retrain: dict = field(default_factory=dict)
    base: dict = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ranked(self) -> list[dict]:
        """The finished trials, best first."""
        done = [t for t in self.trials if t["state"] == "COMPLETE"]
        return sorted(done, key=lambda t: t["value"], reverse=self.direction == "maximize")

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.trials:
            state = "REJECTED" if t.get("note", "").startswith("rejected") else t["state"]
            counts[state] = counts.get(state, 0) + 1
        return counts

    def to_dict(self) -> dict:
        best = self.ranked[0]["number"] if self.ranked else None
        return {
            "study": self.study,
            "objective": self.objective,
            "direction": self.direction,
            "best": best,
            "counts": self.counts(),
            "trials": self.trials,
            "figures": self.figures,
        }


def _sweep_file(out: Path) -> dict:
    path = out / SWEEP_FILE
    if not path.is_file():
        raise UsageError(f"{out} holds no sweep (no {SWEEP_FILE}); give the folder `moderncnn sweep` wrote")
    return yaml.safe_load(path.read_text()) or {}


def load_study(out: str | Path, storage: str | None = None):
    """The study of the sweep in ``out`` (its storage from ``sweep.yaml`` unless ``storage``) and its spec."""
    import optuna

    from moderncnn.sweep.spec import parse_spec
    from moderncnn.sweep.storage import open_storage

    out = Path(out)
    recorded = _sweep_file(out)
    spec = parse_spec(recorded["spec"], name=recorded["study"], check=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=recorded["study"], storage=open_storage(storage or recorded["storage"], 60))
    return study, spec


def sweep_report(out: str | Path, storage: str | None = None, figures: bool = True) -> SweepReport:
    """Read a sweep's trials and (with ``figures``) write Optuna's figures into its folder."""
    out = Path(out)
    study, spec = load_study(out, storage)
    trials = []
    for t in study.get_trials(deepcopy=False):
        note = t.user_attrs.get("rejected")
        note = f"rejected: {note}" if note else ""
        if "retry_of" in t.user_attrs:
            note = f"retry of trial {t.user_attrs['retry_of']}"
        if t.state.name == "PRUNED" and not note:
            note = f"pruned after {len(t.intermediate_values)} epochs"
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "params": dict(t.params),
                "value": t.value,
                "run_dir": str(out / t.user_attrs["run_dir"]) if "run_dir" in t.user_attrs else None,
                "epochs": len(t.intermediate_values),
                "note": note,
            }
        )
    direction = study.direction.name.lower()
    report = SweepReport(out, study.study_name, direction, spec.objective, trials, spec.retrain, spec.base)
    if figures:
        _figures(study, out, report)
    return report


def _figures(study, out: Path, report: SweepReport) -> None:
    """Optuna's matplotlib figures; one a study cannot draw yet (too few finished trials) is skipped with why."""
    import optuna
    import optuna.visualization.matplotlib as vis

    from moderncnn.plotting import pyplot, save_figure

    plt = pyplot()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name, function in FIGURES.items():
        # Optuna's figure functions switch the whole process to matplotlib's ggplot style (larger text, among
        # others); the context puts every setting back, so later figures (our comparison's labels) are unchanged.
        with plt.rc_context():
            try:
                axes = getattr(vis, function)(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                report.skipped[name] = str(err).splitlines()[0] if str(err) else type(err).__name__
                continue
            fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            report.figures[name] = str(save_figure(fig, out / f"{name}.png"))
            plt.close(fig)


_SPEED = ("threads", "precision", "channels_last", "compile")


def best_config(report: SweepReport) -> Path:
    """Write ``best.yaml`` beside the trials: the best trial's ``config.yaml`` with the sweep's ``retrain`` settings
    over it (no batch limit), for ``moderncnn train --config``. Returns its path."""
    from moderncnn.run.config import TrainConfig

    if not report.ranked:
        raise UsageError(f"{report.out} has no finished trial yet; run the sweep first (or let it finish one)")
    best = report.ranked[0]
    values = TrainConfig.load(RunDir(best["run_dir"]).config).to_dict()
    # The speed choices resolved for the trial's worker (a share of the threads) go back to the base's settings or
    # the defaults; the batch limit that kept trials short goes; the retrain's settings win.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in _SPEED}
    values.update({**defaults, **{k: v for k, v in report.base.items() if k in _SPEED}})
    values.update(limit_batches=None, run_dir=None)
    values.update(report.retrain)
    config = TrainConfig.from_dict(values).validate()
    path = report.out / "best.yaml"
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
