"""``compare(runs)``: finished runs side by side, with the published figures where a recipe has them.

Writes ``comparison.md`` and ``comparison.csv`` (one row per run: network, parameters, FLOPs, epochs, best val
acc, test acc, training examples/sec, wall time, device, and each published figure with our difference to
it), ``comparison.png`` (test accuracy against parameters and against examples/sec) and ``val_curves.png``
(every run's validation accuracy per epoch).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from moderncnn.errors import UsageError
from moderncnn.plotting import save_figure
from moderncnn.rundir import RunDir, find_runs

# What each budget means for the published figures, said in the report's header.
BUDGET_NOTES = {
    "full": "the published settings",
    "quick": "fewer epochs (and native resolution where the recipe says so): "
    "accuracies are NOT comparable with the published ones",
    "fast": "the same networks trained with a modern recipe for the least time (native resolution, one-cycle "
    "schedule, augmentation, label smoothing, test-time augmentation; see the recipe's `fast` budget), not the "
    "source's settings: the accuracies compare what each network reaches, not how the source trained it",
    "smoke": "a few batches per network, to check that everything runs: "
    "accuracies are NOT comparable with the published ones",
}


@dataclass
class RunRecord:
    """What one finished run contributes to a comparison."""

    run_dir: Path
    model: str
    dataset: str
    params: int
    flops: int | None
    input_shape: list[int] | None
    epochs: int
    best_val_acc: float
    test_acc: float
    examples_per_sec: float
    wall_seconds: float
    device: str
    curve: list[float] = field(default_factory=list)
    published: dict = field(default_factory=dict)
    published_columns: list[dict] = field(default_factory=list)
    recipe: str | None = None
    budget: str | None = None
    heading: RecipeHeading | None = None
    device_name: str | None = None
    train_pflops: float | None = None

    @property
    def wall_minutes(self) -> float:
        return self.wall_seconds / 60

    @classmethod
    def read(cls, run_dir: str | Path) -> RunRecord:
        """Read a run directory written by ``train`` (and ``reproduce``)."""
        run = RunDir(run_dir)
        results = run.read_results()
        origin = run.read_origin()
        curve = [float(r["val_acc"]) for r in run.read_metrics() if r.get("val_acc")]
        return cls(
            run_dir=run.path,
            model=results["model"],
            dataset=results["dataset"],
            params=results["params"],
            flops=results.get("flops"),  # runs written before results.json carried FLOPs have none
            input_shape=results.get("input_shape"),
            epochs=results["epochs"],
            best_val_acc=results["best_val_acc"],
            test_acc=results["test_acc"],
            examples_per_sec=results["examples_per_sec"],
            wall_seconds=results["wall_seconds"],
            device=results["device"],
            curve=curve,
            published=origin.get("published", {}),
            published_columns=origin.get("published_columns", []),
            recipe=origin.get("recipe"),
            budget=origin.get("budget"),
            heading=RecipeHeading.from_dict(origin["heading"]) if "heading" in origin else None,
            device_name=results.get("device_name"),
            train_pflops=results.get("train_pflops"),  # counted since the speed-run recipe; None before
        )


@dataclass
class RecipeHeading:
    """What a report says about the experiment its runs reproduce: written into each run's ``reproduce.json`` by
    ``moderncnn reproduce``, so that ``compare`` needs neither the recipe file nor the reproduce package."""

    name: str
    title: str
    source: str
    dataset: str
    order: list[str] = field(default_factory=list)
    published_columns: list[dict] = field(default_factory=list)
    notes: str = ""

    @classmethod
    def from_dict(cls, values: dict) -> RecipeHeading:
        return cls(**values)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _published_cells(record: RunRecord, columns: list[dict]) -> list[tuple[str, float | None, float | None]]:
    """Per published column: (label, their figure, our difference or ratio to it)."""
    cells = []
    for column in columns:
        theirs = record.published.get(column["key"])
        ours = getattr(record, column["ours"], None)
        if theirs is None or ours is None:
            cells.append((column["label"], theirs, None))
        elif column["compare"] == "diff":
            cells.append((column["label"], theirs, ours - theirs))
        else:
            cells.append((column["label"], theirs, ours / theirs if theirs else None))
    return cells


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return ""
    if kind == "acc":
        return f"{value:.3f}" if round(value, 3) == value else f"{value:.4f}"  # as published: 0.883, 0.9106
    if kind == "diff":  # of accuracies
        return f"{value:+.3f}"
    if kind == "count_diff":
        return f"{value:+,.0f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    return f"{value:,.0f}" if value >= 100 else f"{value:.4g}"


@dataclass
class Comparison:
    """A comparison table and the files it was written to."""

    records: list[RunRecord]
    markdown: str
    files: dict[str, Path]
    failures: dict[str, str] = field(default_factory=dict)


def compare(
    runs: list[str | Path],
    out: str | Path,
    *,
    recipe: RecipeHeading | None = None,
    budget: str | None = None,
    failures: dict[str, str] | None = None,
) -> Comparison:
    """Compare finished runs; write the report into ``out``.

    Args:
        runs: run directories with ``results.json``.
        out: folder for ``comparison.md``, ``comparison.csv``, ``comparison.png`` and ``val_curves.png``.
        recipe: the experiment the runs reproduce, for its published figures, source and notes (``reproduce``
            passes it; otherwise it is read from the runs' ``reproduce.json`` when they all carry the same one).
        budget: the budget the runs were trained with (default: the one recorded in the runs).
        failures: networks that did not finish, with the reason, listed under the table.
    """
    if not runs and not failures:
        raise UsageError("nothing to compare: give at least one run directory")
    records = [RunRecord.read(r) for r in find_runs(runs)]
    if recipe is None:
        headings = {json.dumps(r.heading.to_dict(), sort_keys=True) for r in records if r.heading}
        if len(headings) == 1 and all(r.heading for r in records):
            recipe = records[0].heading
    budgets = {r.budget for r in records if r.budget}
    budget = budget or (budgets.pop() if len(budgets) == 1 else None)
    if recipe is not None:
        columns = recipe.published_columns
        if any(not RunDir(run).is_run for run in runs):
            # A folder of runs lists them in the recipe's (the chapter's) order, not by name; runs named one by one
            # keep the order they were given in.
            order = {model: i for i, model in enumerate(recipe.order)}
            records.sort(key=lambda r: order.get(r.model, len(order)))
    else:  # runs of one user's recipe carry its columns; runs of several recipes get none
        layouts = {json.dumps(r.published_columns) for r in records}
        columns = records[0].published_columns if records and len(layouts) == 1 else []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": out / "comparison.md",
        "csv": out / "comparison.csv",
        "plot": out / "comparison.png",
        "curves": out / "val_curves.png",
    }
    markdown = _markdown(records, columns, recipe, budget, failures or {})
    files["markdown"].write_text(markdown)
    _write_csv(records, columns, files["csv"])
    if records:
        _plot(records, columns, files["plot"], files["curves"])
    else:
        del files["plot"], files["curves"]
    return Comparison(records, markdown, files, failures or {})


def _rows(records: list[RunRecord], columns: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = [
        "network",
        "params",
        "GFLOPs",
        "input",
        "epochs",
        "best val acc",
        "test acc",
        "examples/sec",
        "wall time",
        "train PFLOPs",
        "device",
    ]
    header += [c["label"] for c in columns]
    rows = []
    for r in records:
        row = [
            r.model,
            f"{r.params:,}",
            "?" if r.flops is None else f"{r.flops / 1e9:.3g}",
            "x".join(map(str, r.input_shape or ["?"])),
            str(r.epochs),
            f"{r.best_val_acc:.4f}",
            f"{r.test_acc:.4f}",
            f"{r.examples_per_sec:,.0f}",
            f"{r.wall_seconds:.0f} s" if r.wall_seconds < 120 else f"{r.wall_minutes:.1f} min",
            "?" if r.train_pflops is None else f"{r.train_pflops:.3g}",
            r.device,
        ]
        for (_, theirs, delta), column in zip(_published_cells(r, columns), columns, strict=True):
            if theirs is None:
                row.append("")
                continue
            kind = "acc" if column["ours"].endswith("acc") else "count"
            compare = column["compare"] if column["compare"] == "ratio" or kind == "acc" else "count_diff"
            row.append(f"{_fmt(theirs, kind)} ({_fmt(delta, compare)})")
        rows.append(row)
    return header, rows


def _describe_devices(records: list[RunRecord]) -> str:
    """The runs' devices as each run described its own (GPU name, CPU cores and threads, versions)."""
    return ", ".join(sorted({r.device_name or r.device for r in records})) or "none"


def _markdown(records: list[RunRecord], columns: list[dict], recipe, budget: str | None, failures: dict) -> str:
    title = recipe.title if recipe is not None else "runs side by side"
    lines = [f"# Comparison: {title}", ""]
    if recipe is not None:
        lines += [f"Recipe `{recipe.name}`; source: {recipe.source}.", ""]
    lines.append(
        f"Budget: **{budget or 'not recorded'}**" + (f" ({BUDGET_NOTES[budget]})." if budget in BUDGET_NOTES else ".")
    )
    lines.append(f"Device: {_describe_devices(records)}; written {datetime.now():%Y-%m-%d %H:%M}.")
    if recipe is not None and any(r.dataset != recipe.dataset for r in records):
        lines.append(
            f"Some runs used another dataset than the recipe's {recipe.dataset}: "
            "their accuracies are NOT comparable with the published ones."
        )
    lines += [
        "",
        "examples/sec: training images per second over the training epochs, end to end (loading, augmentation, "
        "forward, backward, update; validation excluded). Wall time: the whole run, start-up and test included.",
        "",
    ]
    header, rows = _rows(records, columns)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i == 0 or i == 9 else "--:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if columns:
        lines += [
            "",
            "Published columns: their figure, then in brackets ours minus theirs (accuracies, counts) or ours "
            "over theirs (x: examples/sec, minutes).",
        ]
    if failures:
        lines += ["", "Did not finish:"] + [f"- {model}: {why}" for model, why in failures.items()]
    if recipe is not None and recipe.notes:
        lines += ["", recipe.notes.strip()]
    return "\n".join(lines) + "\n"


def _write_csv(records: list[RunRecord], columns: list[dict], path: Path) -> None:
    fields = [
        "model",
        "dataset",
        "params",
        "flops",
        "input_shape",
        "epochs",
        "best_val_acc",
        "test_acc",
        "examples_per_sec",
        "wall_seconds",
        "train_pflops",
        "device",
        "budget",
        "run_dir",
    ]
    plain = len(fields)
    for column in columns:
        fields += [column["key"], f"{column['key']}_{column['compare']}"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for r in records:
            row = [getattr(r, name) for name in fields[:plain]]
            row[4] = "x".join(map(str, r.input_shape or []))
            for _, theirs, delta in _published_cells(r, columns):
                row += ["" if theirs is None else theirs, "" if delta is None else round(delta, 6)]
            writer.writerow(row)


def _published_key(columns: list[dict], ours: str) -> str | None:
    return next((c["key"] for c in columns if c["ours"] == ours), None)


def _plot(records: list[RunRecord], columns: list[dict], plot_path: Path, curves_path: Path) -> None:
    from moderncnn.reports.figures import comparison_figure, curves_figure

    # The first published test accuracy and examples/sec of the recipe, drawn as hollow markers beside ours.
    their_acc, their_speed = _published_key(columns, "test_acc"), _published_key(columns, "examples_per_sec")
    save_figure(comparison_figure(records, their_acc, their_speed), plot_path)
    save_figure(curves_figure(records), curves_path)
