"""What a run is, apart from Lightning: one frozen plan decides the input size, and using a trained network never
loads Lightning."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moderncnn.data import load_dataset
from moderncnn.run.config import make_config
from moderncnn.run.plan import resolve
from moderncnn.run.speed import Hardware

SOURCE = Path(__file__).resolve().parents[1] / "src" / "moderncnn"
PLAN = SOURCE / "run" / "plan.py"
# The shapes an input-size rule takes: a size chosen between a setting and a fallback ("resize or input_size", the
# benchmark's and the data module's), the images' own side as a fallback ("resize or native"), the smallest input a
# network accepts weighed against a size (the recipe's "native"), the rule's answer patched up or written back into
# a config, and a function of the rule's name.
SIZE_RULES = [
    re.compile(r"\bresize\b[^=\n#]*\bor\b[^\n#]*\b(input_size|folder_size|image_size)\b"),
    re.compile(r"\b(image_size|native)\s+or\b|\w*size\s+or\s+[\w.]*\b(image_size|native)\b"),
    re.compile(r"max\(.*min_input_size|[<>]=?\s*[\w.]*min_input_size|min_input_size\s*[<>]"),
    re.compile(r"resolve_resize\(.*\)\s+or\b|\b(config|cfg)\.resize\s*=|\[[\"']resize[\"']\]\s*=\s*resolve_resize"),
    re.compile(r"def\s+(resolve_resize|trained_resize|native_resize|input_size)\s*\("),
]


def test_no_code_outside_the_plan_computes_an_input_size():
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path == PLAN or "models" in path.relative_to(SOURCE).parts:  # the networks state their own sizes
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(rule.search(line) for rule in SIZE_RULES):
                found.append(f"{path.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert not found, "input sizes computed outside run/plan.py:\n" + "\n".join(found)
    # The patterns do find the rule where it lives (a test that could not fail would prove nothing).
    assert sum(any(rule.search(line) for rule in SIZE_RULES) for line in PLAN.read_text().splitlines()) >= 5


def test_a_validated_config_is_frozen_and_the_plan_records_its_decisions():
    config = make_config("lenet_bn", dataset="digits", val_size=180, batch_size=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.resize = 28
    dataset = load_dataset("digits", val_size=180, seed=config.seed)
    plan = resolve(config, dataset, Hardware("cpu", bf16="", cores=2, compiler=False))
    # 8 px digits are raised to LeNet's 28 px input; the speed choices are made for the hardware given.
    assert (plan.resize, plan.input_size, plan.in_channels, plan.num_classes) == (28, 28, 1, 10)
    assert (plan.speed.precision, plan.speed.channels_last, plan.speed.compile) == ("32", True, False)
    assert plan.settings["resize"] == 28 and plan.settings["precision"] == "32" and plan.settings["compile"] is False
    assert plan.data["resize"] == 28 and plan.data["mean"] == list(plan.mean) and 0.2 < plan.mean[0] < 0.4
    # The config it was resolved from is left as given.
    assert (config.resize, config.precision, config.compile) == (None, "auto", "auto")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.resize = 32


def test_using_a_trained_network_never_imports_lightning(tmp_path):
    # deploy, serve, inspect and reports: import them, predict an image with a published weight, serve's reader and
    # the features of a layer; Lightning stays out (import-linter's contract says the same of the imports).
    script = f"""
import sys
import numpy as np
from PIL import Image
import moderncnn.deploy, moderncnn.serve, moderncnn.inspect, moderncnn.reports.compare
from moderncnn.deploy import predict
from moderncnn.serve import load_model
image = "{tmp_path / "seven.png"}"
Image.fromarray(np.full((8, 8), 200, np.uint8)).save(image)
(prediction,), failures = predict("weights:lenet_bn-digits", image, top_k=3)
assert not failures and len(prediction.classes) == 3, failures
model = load_model("weights:lenet_bn-digits")
pixels, x = model.read(open(image, "rb").read())
assert tuple(x.shape) == (1, 28, 28) and model.probabilities(x[None]).shape == (1, 10)
assert "lightning" not in sys.modules and "lightning.pytorch" not in sys.modules, "lightning was imported"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
