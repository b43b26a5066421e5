"""A sweep file, read and checked in one place before any trial trains.

The smallest sweep file::

    base: {model: lenet_bn, dataset: digits, resize: 28, epochs: 2}
    space:
      lr: {low: 0.01, high: 1.0, log: true}
      batch_size: {choices: [64, 128]}
    objective: val_acc
    trials: 6

``base`` is a network and any :class:`~moderncnn.run.config.TrainConfig` settings (or ``recipe: RECIPE:BUDGET``
and a network); ``space`` ranges over settings and, under ``model_kwargs``, the network's own options. Settings are
checked by the engine's own validation at every corner of the space, so a sweep that would fail in trial 17 is
refused now, in one line naming the field.
"""

from __future__ import annotations

import itertools
import random
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moderncnn.errors import ConfigError, UsageError
from moderncnn.run.config import TrainConfig, check_type, default_settings, make_config

BUNDLED = Path(__file__).parent / "examples"
OBJECTIVES = {"val_acc": "maximize", "best_val_acc": "maximize", "val_loss": "minimize"}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
CONSTRAINTS = ("params",)
_KEYS = {"base", "space", "objective", "trials", "sampler", "pruner", "constraints", "retrain", "heartbeat", "seed"}
_RANGE_KEYS = {"low", "high", "log", "step"}
# A constraint counts as one no trial can meet when none of this many sampled networks meets it.
_FEASIBILITY_SAMPLES = 200


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a range (``low``/``high``, ``log``, ``step``) or ``choices``."""

    name: str
    kind: str  # "int", "float" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    model_kwarg: bool = False  # a keyword of the network's builder, not a TrainConfig setting

    def corners(self) -> list:
        """The values that bound the range (or every choice): the ones validation tries."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def draw(self, rng: random.Random):
        """A random value of this dimension (for the feasibility check of the constraints)."""
        if self.kind == "categorical":
            return rng.choice(self.choices)
        if self.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        return rng.uniform(self.low, self.high)


@dataclass
class SweepSpec:
    """A checked sweep file (see the module docstring for the keys)."""

    name: str
    base: dict
    space: list[Param]
    objective: str = "val_acc"
    trials: int = 20
    sampler: str = "tpe"
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    constraints: dict = field(default_factory=dict)
    retrain: dict = field(default_factory=dict)
    heartbeat: float = 60.0
    seed: int | None = None
    raw: dict = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    def config(self, values: dict) -> TrainConfig:
        """The validated settings of one trial: the base with ``values`` (settings, and model keywords) applied."""
        settings = dict(self.base)
        # The network's own default options (vgg_d2l's width ratio), then the base's, then the sampled ones.
        kwargs = {
            **default_settings(settings["model"]).get("model_kwargs", {}),
            **(settings.pop("model_kwargs", None) or {}),
        }
        for param in self.space:
            if param.name not in values:
                continue
            if param.model_kwarg:
                kwargs[param.name] = values[param.name]
            else:
                settings[param.name] = values[param.name]
        model = settings.pop("model")
        return make_config(model, model_kwargs=kwargs, **settings)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (or a bundled example's name, e.g. ``googlenet_uva``)."""
    path = Path(path)
    if not path.is_file() and path.suffix not in (".yaml", ".yml") and (BUNDLED / f"{path}.yaml").is_file():
        path = BUNDLED / f"{path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        bundled = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
        raise ConfigError(f"cannot read sweep file {path}: {err.strerror}; bundled examples: {bundled}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return parse_spec(raw, name=path.stem)


def parse_spec(raw, name: str = "sweep", check: bool = True) -> SweepSpec:
    """Check a sweep file's contents; a :class:`ConfigError` in one line names the first wrong field.

    Args:
        raw: the file's contents.
        name: the study's name (the file's stem).
        check: also build the settings at every corner of the space and test the constraints (what a sweep's
            report, reading a file already checked, skips).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a sweep file is a mapping with base, space, objective and trials; got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown sweep key {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(_KEYS))}")
    for key in ("base", "space"):
        if not isinstance(raw.get(key), dict) or not raw[key]:
            raise ConfigError(f"sweep field {key!r} must be a non-empty mapping, got {raw.get(key)!r}")
    base = _base(raw["base"])
    spec = SweepSpec(
        name=name,
        base=base,
        space=_space(raw["space"], base),
        objective=_choice("objective", raw.get("objective", "val_acc"), tuple(OBJECTIVES)),
        trials=_positive_int("trials", raw.get("trials", 20)),
        sampler=_choice("sampler", raw.get("sampler", "tpe"), SAMPLERS),
        pruner=_pruner(raw.get("pruner", "median")),
        constraints=_constraints(raw.get("constraints") or {}),
        retrain=_retrain(raw.get("retrain") or {}, base),
        heartbeat=_positive_number("heartbeat", raw.get("heartbeat", 60)),
        seed=None if raw.get("seed") is None else _positive_int("seed", raw["seed"], minimum=0),
        raw=raw,
    )
    if not check:
        return spec
    _check_corners(spec)
    if spec.constraints:
        from moderncnn.sweep.constraints import check_feasible

        check_feasible(spec, _FEASIBILITY_SAMPLES)
    return spec


def _base(raw: dict) -> dict:
    """The base settings: a recipe's budget (``recipe: RECIPE:BUDGET``) under the settings given, checked now."""
    base = dict(raw)
    recipe = base.pop("recipe", None)
    if not isinstance(base.get("model"), str):
        raise ConfigError(
            f"sweep field 'base.model' must name a network (see `moderncnn models`), got {base.get('model')!r}"
        )
    if recipe is not None:
        from moderncnn.run.recipes import recipe_settings

        given = {k: v for k, v in base.items() if v is not None}
        base = {**recipe_settings(str(recipe), base["model"], base.get("dataset"), base.get("data_dir")), **given}
        base["model"] = raw["model"]
    try:
        config = make_config(base["model"], **{k: v for k, v in base.items() if k != "model"})
    except UsageError as err:  # a setting out of range, an unknown network
        raise ConfigError(f"sweep field 'base': {err}") from None
    if config.val_size == 0 and "val_size" not in base:
        # A sweep chooses on held-out training images: tuning on the test split would make its test figure meaningless.
        base["val_size"] = 0.1
    base.pop("run_dir", None)
    return base


def _space(raw: dict, base: dict) -> list[Param]:
    fields = typing.get_type_hints(TrainConfig)
    params = []
    for name, value in raw.items():
        if name == "model_kwargs":
            if not isinstance(value, dict) or not value:
                raise ConfigError(f"space 'model_kwargs' must map the network's options to ranges, got {value!r}")
            for kwarg, sub in value.items():
                if kwarg in fields:
                    raise ConfigError(f"space 'model_kwargs.{kwarg}': {kwarg} is a setting; put it at the top of space")
                params.append(_param(str(kwarg), sub, None, model_kwarg=True))
            continue
        if name not in fields or name in ("model", "run_dir"):
            valid = ", ".join(sorted(set(fields) - {"model", "run_dir"}))
            raise ConfigError(f"space {name!r} is no setting; valid: {valid}, or model_kwargs: {{OPTION: ...}}")
        params.append(_param(name, value, fields[name]))
    return params


def _param(name: str, raw, hint, model_kwarg: bool = False) -> Param:
    """One dimension, its type taken from the setting's annotation (a model keyword: from its bounds)."""
    where = f"space '{'model_kwargs.' if model_kwarg else ''}{name}'"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be {{low: A, high: B[, log: true]}} or {{choices: [...]}}, got {raw!r}")
    if "choices" in raw:
        extra = sorted(set(raw) - {"choices"})
        choices = raw["choices"]
        if extra or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list and stand alone, got {raw!r}")
        if hint is not None:
            choices = [check_type(name, c, hint) for c in choices]
        return Param(name, "categorical", choices=tuple(choices), model_kwarg=model_kwarg)
    extra = sorted(set(raw) - _RANGE_KEYS)
    if extra or "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where} needs low and high (optionally log, step) or choices; got keys {sorted(raw)}")
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
        raise ConfigError(f"{where}: low, high and step must be numbers, got {raw!r}")
    all_int = all(isinstance(v, int) for v in numbers)
    kinds = _numeric_kinds(hint) if hint is not None else ({int} if all_int else {float})
    if not kinds:
        raise ConfigError(f"{where}: a range needs a numeric setting, and {name} is not one; give choices instead")
    kind = "int" if kinds == {int} or (int in kinds and all_int) else "float"
    if kind == "int" and not all_int:
        raise ConfigError(f"{where}: {name} is an integer setting, so low, high and step must be integers; got {raw!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low {low}, high {high}")
    if log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: a log range needs low > 0 and no step, got {raw!r}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be positive, got {step}")
    return Param(name, kind, low=low, high=high, log=log, step=step, model_kwarg=model_kwarg)


def _numeric_kinds(hint) -> set:
    options = set(typing.get_args(hint)) if typing.get_args(hint) and typing.get_origin(hint) is not list else {hint}
    return {o for o in options if o in (int, float)}


def _check_corners(spec: SweepSpec) -> None:
    """Validate the settings at every corner of the space (ranges' bounds, every choice), one dimension at a time,
    with the engine's own checks: an out-of-range bound is refused now, naming the field."""
    for param in spec.space:
        for value in param.corners():
            try:
                config = spec.config({param.name: value})
                if param.model_kwarg:
                    from moderncnn.sweep.constraints import count_parameters

                    count_parameters(config)  # the network accepts the option and builds
            except UsageError as err:  # a setting out of range, or an option the network does not take
                prefix = "model_kwargs." if param.model_kwarg else ""
                raise ConfigError(f"space '{prefix}{param.name}' = {value!r}: {err}") from None


def _choice(key: str, value, valid: tuple) -> str:
    if value not in valid:
        raise ConfigError(f"sweep field {key!r} must be one of {', '.join(valid)}, got {value!r}")
    return value


def _positive_int(key: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"sweep field {key!r} must be an integer of at least {minimum}, got {value!r}")
    return value


def _positive_number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"sweep field {key!r} must be a positive number of seconds, got {value!r}")
    return float(value)


def _pruner(raw) -> dict:
    """``median`` / ``hyperband`` / ``none``, or a mapping ``{name: median, startup_trials: 3, warmup_epochs: 1}``."""
    pruner = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(pruner, dict):
        raise ConfigError(f"sweep field 'pruner' must be one of {', '.join(PRUNERS)} or a mapping, got {raw!r}")
    valid = {"name", "startup_trials", "warmup_epochs"}
    unknown = sorted(set(pruner) - valid)
    if unknown:
        raise ConfigError(f"sweep field 'pruner' has unknown keys {unknown}; valid: {', '.join(sorted(valid))}")
    _choice("pruner", pruner.get("name", "median"), PRUNERS)
    for key in ("startup_trials", "warmup_epochs"):
        if key in pruner:
            _positive_int(f"pruner.{key}", pruner[key], minimum=0)
    return {"name": "median", **pruner}


def _constraints(raw) -> dict:
    """``params: {low: N, high: M}``: the network's parameter count, checked before a trial trains."""
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep field 'constraints' must be a mapping such as {{params: {{low: 1000}}}}, got {raw!r}")
    checked = {}
    for name, bounds in raw.items():
        if name not in CONSTRAINTS:
            raise ConfigError(f"unknown constraint {name!r}; valid: {', '.join(CONSTRAINTS)}")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"low", "high"}:
            raise ConfigError(
                f"constraint {name!r} must be {{low: N, high: M}} (either may be left out), got {bounds!r}"
            )
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"constraint '{name}.{key}' must be a number, got {value!r}")
        if bounds.get("low", 0) > bounds.get("high", float("inf")):
            raise ConfigError(f"constraint {name!r}: low must not exceed high, got {bounds}")
        checked[name] = dict(bounds)
    return checked


def _retrain(raw, base: dict) -> dict:
    """Settings over the best trial's for ``sweep report --best`` (its full-length run), checked as settings."""
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep field 'retrain' must be a mapping of settings, got {raw!r}")
    try:
        TrainConfig.from_dict({"model": base["model"], **raw})
    except ConfigError as err:
        raise ConfigError(f"sweep field 'retrain': {err}") from None
    return dict(raw)


def corner_points(spec: SweepSpec) -> list[dict]:
    """Every combination of the corners of the model keywords' dimensions (at most 64), for the feasibility check."""
    dims = [p for p in spec.space if p.model_kwarg]
    combos = itertools.islice(itertools.product(*(p.corners() for p in dims)), 64)
    return [dict(zip((p.name for p in dims), values, strict=True)) for values in combos]
