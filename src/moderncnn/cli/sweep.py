"""``moderncnn sweep SPEC.yaml`` and ``moderncnn sweep report DIR``: hyper-parameter sweeps on Optuna."""

from __future__ import annotations

import argparse
import json
import sys

USAGE = (
    "moderncnn sweep SPEC.yaml [--out DIR] [--workers N] [--storage URL] [--trials N] [--quiet]\n"
    "       moderncnn sweep report DIR [--json] [--best] [--storage URL]"
)


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="search hyper-parameters with Optuna: many short trials, pruned early, on one machine or many",
        usage=USAGE,
        description="Run the study a sweep file describes (a base run, the search space, the objective, the number "
        "of trials), each trial a run directory in the sweep's folder. Running the same command again resumes the "
        "study; the same command on several machines against one --storage shares it. `moderncnn sweep report DIR` "
        "prints the best trials and writes Optuna's figures.",
    )
    p.add_argument("target", metavar="SPEC.yaml", help="a sweep file, or a bundled example's name (googlenet_uva)")
    p.add_argument("dir", nargs="?", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--out", help="the sweep's folder (default: runs/sweeps/<file name>)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes, splitting the CPU threads (1)")
    p.add_argument(
        "--storage",
        help="Optuna storage: sqlite:///PATH (default: DIR/study.db), postgresql://USER@HOST/DB, mysql://... or "
        "journal:PATH (a file on a shared file system)",
    )
    p.add_argument("--trials", type=int, help="trials in the study (default: the file's)")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.add_argument("--json", action="store_true", help="report: print the trials as JSON (no figures)")
    p.add_argument(
        "--best", action="store_true", help="report: write DIR/best.yaml and print the command to retrain it"
    )
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from moderncnn.errors import UsageError

    if args.target == "report":
        if not args.dir:
            raise UsageError("sweep report needs the sweep's folder: moderncnn sweep report DIR")
        if args.out or args.workers != 1 or args.trials:
            raise UsageError("--out, --workers and --trials go with running a sweep, not with report")
        return _report(args)
    if args.dir:
        raise UsageError(f"unexpected {args.dir!r}; usage: {USAGE}")
    if args.json or args.best:
        raise UsageError("--json and --best go with `moderncnn sweep report DIR`")
    from moderncnn.sweep import load_spec, run_sweep

    spec = load_spec(args.target)
    try:
        where = run_sweep(
            spec, args.out, workers=args.workers, storage=args.storage, trials=args.trials, quiet=args.quiet
        )
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume the study", file=sys.stderr)
        return 130
    args.dir, args.json, args.best = str(where["out"]), False, False
    return _report(args)


def _report(args: argparse.Namespace) -> int:
    from moderncnn.sweep import best_config, sweep_report

    report = sweep_report(args.dir, storage=args.storage, figures=not args.json)
    best = best_config(report) if args.best else None
    command = f"moderncnn train --config {best}" if best else None
    if args.json:
        print(json.dumps({**report.to_dict(), **({"retrain": command} if command else {})}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(report.counts().items()))
    console.print(f"study {report.study}: {counts}; {report.objective}, {report.direction}")
    table = Table()
    for column in ("trial", report.objective, "parameters", "run directory"):
        table.add_column(column, justify="right" if column != "parameters" else "left")
    for trial in report.ranked[:10]:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items())
        table.add_row(str(trial["number"]), f"{trial['value']:.4f}", params, trial["run_dir"])
    console.print(table)
    if report.figures:
        console.print("figures: " + ", ".join(report.figures.values()))
    for name, why in report.skipped.items():
        console.print(f"no {name} figure yet: {why}")
    if command:
        print(f"the best trial at full length: {command}")
    return 0
