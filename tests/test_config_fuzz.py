"""Hundreds of generated bad config files through the command line: each is refused in one line naming the setting.

The values are drawn from a fixed seed: wrong types for every field (derived from the field annotations, so a new
setting is covered the day it is added), values out of range, and unknown keys; a config may hold several at once.
"""

import dataclasses
import random
import typing

import pytest
import yaml

from moderncnn.cli import main
from moderncnn.errors import ConfigError
from moderncnn.run.config import TrainConfig, check_type, make_config

POOL = ["ten", "", 1.5, -3, 0, True, None, [1], ["a"], {"a": 1}, 1e9]

# Values of the right type but outside what the setting accepts.
OUT_OF_RANGE = {
    "epochs": [0, -1],
    "batch_size": [0, -64],
    "lr": [0.0, -0.1],
    "momentum": [1.0, -0.5, 2.0],
    "weight_decay": [-1e-4],
    "label_smoothing": [1.0, -0.1],
    "gamma": [0.0, -1.0],
    "milestones": [[0], [-5, 10]],
    "warmup_epochs": [-1, 99],
    "devices": [0],
    "num_nodes": [0],
    "num_workers": [-1],
    "val_size": [-1, -0.5],
    "resize": [0, 3],
    "limit_batches": [0, -2],
    "optimizer": ["rmsprop", "SGD", "Muon"],
    "schedule": ["step", "exponential"],
    "flip": ["sometimes"],
    "tta": ["five-crop", 3],
    "muon_lr": [0.0, -0.1],
    "muon_momentum": [1.0],
    "classifier_lr": [0.0],
    "bn_momentum": [1.5, -0.1],
    "bn_eps": [0.0],
    "precision": ["64", "fp8"],
    "init": ["orthogonal"],
    "augment": ["autoaugment"],
    "test_checkpoint": ["first"],
    "model": ["resnet", "lenett"],
    "mean": [[0.5, 0.5]],
    "std": [[0.0]],
    "dataset": [""],
    "checkpoint_every": ["ten", "-3", "10 minutes"],
}


def _wrong_types(name: str, kind) -> list:
    wrong = []
    for value in POOL:
        try:
            check_type(name, value, kind)
        except ConfigError:
            wrong.append(value)
    return wrong


def _cases(count: int = 300, seed: int = 0) -> list[tuple[dict, set[str]]]:
    rng = random.Random(seed)
    base = make_config("lenet_bn", dataset="digits").to_dict()
    hints = typing.get_type_hints(TrainConfig)
    bad: dict[str, list] = {f.name: _wrong_types(f.name, hints[f.name]) for f in dataclasses.fields(TrainConfig)}
    for name, values in OUT_OF_RANGE.items():
        bad[name] = bad[name] + values
    singles = [(name, value) for name, values in bad.items() for value in values]
    cases = []
    for name, value in singles:  # every single fault once
        cases.append(({**base, name: value}, {name}))
    while len(cases) < count:  # then a few at once, and unknown keys
        picks = rng.sample(singles, rng.randint(2, 3))
        values = {**base, **dict(picks)}
        names = {name for name, _ in picks}
        if rng.random() < 0.3:
            key = rng.choice(["epoch", "learning_rate", "batchsize", "Model", "extra"])
            values[key] = 1
            names = {key}  # unknown keys are reported first
        cases.append((values, names))
    return cases


def test_the_generator_covers_every_setting():
    covered = {name for _, names in _cases() for name in names}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= covered


@pytest.mark.parametrize("chunk", range(4))
def test_bad_configs_are_refused_in_one_line_naming_the_setting(tmp_path, capsys, chunk):
    cases = _cases()
    path = tmp_path / "config.yaml"
    for values, names in cases[chunk::4]:
        path.write_text(yaml.safe_dump(values))
        code = main(["train", "--config", str(path)])
        err = capsys.readouterr().err
        assert code == 2, (values, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        message = err.lower()
        assert any(name.lower() in message for name in names), (names, err)
