"""Recipes: published experiments as data, one YAML file each.

A recipe names a dataset, the settings its source trains every network with, each network's own settings and
published figures, and budgets (``full``: the published settings; ``quick``: fewer epochs at native
resolution; ``fast``: the same networks with a modern recipe, aiming at the published accuracy in the least
time; ``smoke``: a few batches per network). The settings of one run are layered, later ones winning: the
network's defaults (``moderncnn train --help``), the recipe's ``settings``, the network's ``settings``, the
budget's settings, the budget's own entry for the network (``networks: {MODEL: {...}}`` inside a budget), then
the caller's overrides. The bundled recipes live next to this file (``recipes/*.yaml``); a user's recipe is any
file of the same form, passed by path.

``moderncnn train MODEL --recipe fast`` trains one network with a recipe's budget (:func:`recipe_settings`),
whether or not the recipe lists it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moderncnn.constants import BUDGETS
from moderncnn.errors import UsageError
from moderncnn.registry import get_model_info
from moderncnn.reports.compare import RecipeHeading
from moderncnn.run.config import TrainConfig, make_config
from moderncnn.run.plan import native_resize

BUNDLED = Path(__file__).parent / "recipes"
# The bundled recipes in the order a learner meets them: the book, the tutorial, then the speed-run paper. A budget
# alone (``train --recipe fast``) takes the first recipe in this order that fits.
BUNDLED_ORDER = ("d2l-ch7", "uva-tutorial5", "airbench")
COMPARISONS = ("diff", "ratio")
# A recipe's name and its networks' names become folder names (runs/reproduce/<name>-<budget>/<network>): one plain
# name each, never a path (a recipe from someone else must not write outside the output folder).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Network:
    """One network of a recipe: its settings and the figures its source published for it."""

    model: str
    settings: dict = field(default_factory=dict)
    published: dict = field(default_factory=dict)


@dataclass
class Recipe:
    """A published experiment: the networks, how they are trained, and what the source reported.

    ``published_columns`` says how a published figure lines up with ours: each entry has ``key`` (in the
    networks' ``published``), ``label``, ``ours`` (the results field it is compared with: ``test_acc``,
    ``best_val_acc``, ``examples_per_sec``, ``params``, ``wall_minutes``) and ``compare`` (``diff``: ours
    minus theirs; ``ratio``: ours over theirs).
    """

    name: str
    title: str
    source: str
    dataset: str
    networks: list[Network]
    settings: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=lambda: {"full": {}})
    published_columns: list[dict] = field(default_factory=list)
    notes: str = ""
    path: Path | None = None

    def configs(self, budget: str = "full", only: list[str] | None = None, **overrides) -> list[TrainConfig]:
        """One validated config per network (those in ``only``, if given) for ``budget``.

        ``resize: native`` in a budget means the dataset's own image size, raised to the smallest size the
        network accepts; a budget that changes ``epochs`` scales the multistep milestones with them.
        """
        if budget not in self.budgets:
            raise UsageError(f"recipe {self.name} has no budget {budget!r}; it has {', '.join(self.budgets)}")
        networks = self.networks
        if only:
            known = [n.model for n in networks]
            missing = [m for m in only if m not in known]
            if missing:
                raise UsageError(f"recipe {self.name} has no network {', '.join(missing)}; it has {', '.join(known)}")
            networks = [n for n in networks if n.model in only]
        return [make_config(network.model, **self.settings_for(network, budget, **overrides)) for network in networks]

    def settings_for(self, network: Network | str, budget: str = "full", **overrides) -> dict:
        """The layered settings of one network (any registered network, listed here or not) for ``budget``."""
        if budget not in self.budgets:
            raise UsageError(f"recipe {self.name} has no budget {budget!r}; it has {', '.join(self.budgets)}")
        if isinstance(network, str):
            network = self.network(network) or Network(network)
        dataset = overrides.get("dataset") or self.dataset
        values = {"dataset": self.dataset, **self.settings, **network.settings}
        scheduled_epochs = values.get("epochs")
        budget_values = dict(self.budgets[budget])
        budget_values.update(budget_values.pop("networks", {}).get(network.model, {}))
        if budget_values.get("resize") == "native":
            native = dataset_image_size(dataset, overrides.get("data_dir"))
            budget_values["resize"] = native_resize(network.model, native)
        values.update(budget_values)
        if scheduled_epochs and "epochs" in budget_values and "milestones" not in budget_values:
            ratio = values["epochs"] / scheduled_epochs
            values["milestones"] = sorted({max(1, round(m * ratio)) for m in values.get("milestones", [])})
        values.update({k: v for k, v in overrides.items() if v is not None})
        return values

    def network(self, model: str) -> Network | None:
        return next((n for n in self.networks if n.model == model), None)

    def heading(self) -> RecipeHeading:
        """What a comparison report says about this recipe."""
        return RecipeHeading(
            name=self.name,
            title=self.title,
            source=self.source,
            dataset=self.dataset,
            order=[n.model for n in self.networks],
            published_columns=self.published_columns,
            notes=self.notes,
        )


@functools.lru_cache(maxsize=8)
def dataset_image_size(dataset: str, data_dir: str | None) -> int | None:
    """Side of a dataset's images (``None`` when they vary), loaded once per dataset, not once per network."""
    from moderncnn.data import load_dataset

    return load_dataset(dataset, data_dir=data_dir, val_size=0).image_size


def _check_name(where, what: str, name) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"recipe {where}: {what} must be a plain name (letters, digits, '_', '.' and '-'; no '/' or '..'), "
            f"got {name!r}"
        )


def _check(recipe: Recipe) -> Recipe:
    where = recipe.path or recipe.name
    _check_name(where, "name", recipe.name)
    for network in recipe.networks:
        _check_name(where, "a network's model", network.model)
    mappings = {"settings": recipe.settings, "budgets": recipe.budgets}
    mappings.update({f"networks.{n.model}.settings": n.settings for n in recipe.networks})
    mappings.update({f"networks.{n.model}.published": n.published for n in recipe.networks})
    if isinstance(recipe.budgets, dict):
        for name, budget in recipe.budgets.items():
            entries = budget.get("networks", {}) if isinstance(budget, dict) else {}
            if isinstance(entries, dict):
                mappings.update({f"budgets.{name}.networks.{model}": value for model, value in entries.items()})
    for key, value in mappings.items():
        if not isinstance(value, dict):
            raise UsageError(
                f"recipe {where}: {key} must be a mapping of names to values (e.g. {{epochs: 10}}), got {value!r}"
            )
    for name in recipe.budgets:
        if name not in BUDGETS:
            raise UsageError(f"recipe {where}: unknown budget {name!r}; valid: {', '.join(BUDGETS)}")
    for column in recipe.published_columns:
        missing = {"key", "label", "ours", "compare"} - set(column)
        if missing or column["compare"] not in COMPARISONS:
            raise UsageError(
                f"recipe {where}: a published column needs key, label, ours and compare ({' or '.join(COMPARISONS)}); "
                f"got {column}"
            )
    for network in recipe.networks:
        get_model_info(network.model)  # unknown names fail here, with the closest valid ones
    listed = {n.model for n in recipe.networks}
    for name, budget in recipe.budgets.items():
        if not isinstance(budget, dict) or not isinstance(budget.get("networks", {}), dict):
            raise UsageError(f"recipe {where}: budget {name} must map settings (and `networks: {{MODEL: {{...}}}}`)")
        strays = sorted(set(budget.get("networks", {})) - listed)
        if strays:
            raise UsageError(
                f"recipe {where}: budget {name} sets networks the recipe does not list: {', '.join(strays)}"
            )
    return recipe


def read_recipe(path: str | Path) -> Recipe:
    """Read a recipe file (``yaml.safe_load``: data only)."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read recipe {path}: {err}") from None
    if not isinstance(values, dict):
        raise UsageError(f"recipe {path} must be a mapping (name, dataset, settings, networks, ...)")
    try:
        networks = [Network(**entry) for entry in values.pop("networks")]
        return _check(Recipe(**values, networks=networks, path=path))
    except (KeyError, TypeError) as err:
        raise UsageError(f"recipe {path} is malformed ({err}); see {BUNDLED} for the form") from None


def list_recipes() -> list[Recipe]:
    """The bundled recipes."""
    paths = sorted(BUNDLED.glob("*.yaml"), key=lambda p: (BUNDLED_ORDER + (p.stem,)).index(p.stem))
    return [read_recipe(path) for path in paths]


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A bundled recipe by name (``d2l-ch7``), or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return read_recipe(path)
    bundled = BUNDLED / f"{name_or_path}.yaml"
    if bundled.is_file():
        return read_recipe(bundled)
    names = ", ".join(r.name for r in list_recipes())
    raise UsageError(f"unknown recipe {name_or_path!r}; bundled recipes: {names} (or give a recipe file's path)")


def recipe_settings(spec: str, model: str, dataset: str | None = None, data_dir: str | None = None) -> dict:
    """The settings ``moderncnn train MODEL --recipe SPEC`` starts from (the caller's flags then win).

    ``SPEC`` is ``RECIPE:BUDGET`` (a bundled recipe's name or a recipe file, e.g. ``d2l-ch7:fast``) or a budget
    alone (``fast``): then the bundled recipe that lists ``model`` for this dataset, else the one for this dataset,
    else one that lists ``model``.

    Args:
        spec: ``RECIPE:BUDGET`` or ``BUDGET``.
        model: the network to train.
        dataset: the run's dataset (``None``: the recipe's).
        data_dir: data root, to read the dataset's image size for ``resize: native``.
    """
    name, _, budget = spec.rpartition(":")
    recipe = load_recipe(name) if name else _recipe_for(model, dataset, budget)
    overrides = {"dataset": dataset, "data_dir": data_dir}
    return recipe.settings_for(model, budget, **overrides)


def _recipe_for(model: str, dataset: str | None, budget: str) -> Recipe:
    recipes = [r for r in list_recipes() if budget in r.budgets]
    if not recipes:
        valid = sorted({b for r in list_recipes() for b in r.budgets})
        raise UsageError(f"no bundled recipe has a budget {budget!r}; budgets: {', '.join(valid)} (or RECIPE:BUDGET)")
    same_data = [r for r in recipes if dataset in (None, r.dataset)]
    for candidates in ([r for r in same_data if r.network(model)], same_data, [r for r in recipes if r.network(model)]):
        if candidates:
            return candidates[0]
    raise UsageError(
        f"no bundled recipe trains {model} or {dataset}; name one as RECIPE:{budget} "
        f"({', '.join(r.name for r in recipes)}, or a recipe file)"
    )
