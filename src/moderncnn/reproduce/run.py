"""``reproduce(recipe)``: train every network of a recipe, one run directory each, then compare them.

Runs go to ``OUT/<network>`` (default ``OUT = runs/reproduce/<recipe>-<budget>``). Running the same command
again continues where it stopped: finished networks are kept, an interrupted one resumes from its
``last.ckpt``. A network that fails (a non-finite loss, say) is reported and the others still run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from moderncnn.engine.training import train
from moderncnn.errors import ModernCNNError, UsageError
from moderncnn.reports.compare import Comparison, compare
from moderncnn.run.config import TrainConfig
from moderncnn.run.plan import RESOLVED
from moderncnn.run.recipes import Recipe, load_recipe
from moderncnn.rundir import RunDir


def _same_settings(run: RunDir, config: TrainConfig) -> None:
    """Refuse to mix runs of other settings into this reproduction: the settings asked for, compared with those the
    earlier run was asked for (``reproduce.json`` keeps them; its ``config.yaml`` records what its plan decided)."""
    earlier = run.read_origin().get("settings")
    skip = {"run_dir"}  # where the run lives is not a setting: a moved or copied folder keeps its runs
    if earlier is None:  # a reproduction started before the settings were kept: compare what was not planned
        earlier = TrainConfig.load(run.config).to_dict()
        skip |= set(RESOLVED)
    ours = config.to_dict()
    differs = sorted(k for k in ours.keys() - skip if earlier.get(k) != ours[k])
    if differs:
        raise UsageError(
            f"{run} holds a run with other settings (differs in {', '.join(differs)}); "
            "give another --out, or delete that run"
        )


def reproduce(
    recipe: str | Path | Recipe,
    budget: str = "full",
    *,
    out: str | Path | None = None,
    only: list[str] | None = None,
    overrides: dict | None = None,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> Comparison | None:
    """Train the networks of ``recipe`` at ``budget`` and write the comparison into ``out``.

    Args:
        recipe: a bundled recipe's name (``d2l-ch7``, ``uva-tutorial5``), a recipe file, or a :class:`Recipe`.
        budget: ``full`` (the published settings), ``quick`` or ``smoke``.
        out: the folder for the run directories and the report (default: ``runs/reproduce/RECIPE-BUDGET``, with
            ``-seedN`` when ``overrides`` sets the seed).
        only: train only these networks of the recipe.
        overrides: settings that win over the recipe's (``data_dir``, ``accelerator``, ``devices``, ...).
        quiet: no progress bars.
        log: where progress lines go.

    Returns:
        The comparison (``None`` in the non-zero ranks of a multi-process run).
    """
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    seed = (overrides or {}).get("seed")
    default_out = f"{recipe.name}-{budget}" + (f"-seed{seed}" if seed is not None else "")
    out = Path(out) if out is not None else Path("runs") / "reproduce" / default_out
    configs = recipe.configs(budget, only, **(overrides or {}))
    finished: list[Path] = []
    failures: dict[str, str] = {}
    rank = 0
    for i, config in enumerate(configs, 1):
        run = RunDir(out / config.model)
        config = dataclasses.replace(config, run_dir=str(run))
        step = f"[{i}/{len(configs)}] {config.model}"
        if run.is_finished:
            _same_settings(run, config)
            log(f"{step}: finished earlier in {run}; kept")
            finished.append(run.path)
            continue
        resume = run.last.is_file()
        if resume:
            _same_settings(run, config)
        else:
            run.path.mkdir(parents=True, exist_ok=True)
            origin = {
                "recipe": recipe.name,
                "budget": budget,
                "published": recipe.network(config.model).published,
                "published_columns": recipe.published_columns,
                "heading": recipe.heading().to_dict(),  # so `compare` needs no recipe file
                "settings": config.to_dict(),  # as asked for, before the run's plan resolves them
            }
            run.origin.write_text(json.dumps(origin, indent=2))
        log(f"{step}: {'resuming' if resume else 'training'} in {run}")
        try:
            result = train(None, resume=run.path, quiet=quiet) if resume else train(config, quiet=quiet)
        except ModernCNNError as err:
            failures[config.model] = str(err)
            log(f"{step}: failed: {err}")
            continue
        rank = result.rank
        if rank == 0:
            log(f"{step}: {result}")
        finished.append(run.path)
    if rank != 0:
        return None
    return compare(finished, out, recipe=recipe.heading(), budget=budget, failures=failures)
