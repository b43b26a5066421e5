"""Time-to-accuracy settings: the weight average (EMA), flip TTA, MixUp/CutMix, cutout, weight-decay groups, the
one-cycle schedule, the recipes' ``fast`` budgets, ``train --recipe`` and ``lr-find``."""

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from moderncnn.data.augment import BatchAugment, reference_transform
from moderncnn.engine import load_checkpoint, make_config, train
from moderncnn.engine.averaging import ema_update
from moderncnn.engine.evaluate import evaluate
from moderncnn.engine.module import ImageClassifier, batch_mixer, parameter_groups
from moderncnn.errors import UsageError
from moderncnn.registry import create_model
from moderncnn.run.recipes import list_recipes, load_recipe, read_recipe, recipe_settings

DATA = "synthetic:image_size=28,num_train=1200,num_test=300,num_classes=4"


def config(tmp_path: Path, name: str = "run", **overrides):
    settings = {"dataset": DATA, "epochs": 2, "batch_size": 64, "lr": 0.5, "val_size": 200}
    return make_config("lenet_bn", **{**settings, "run_dir": str(tmp_path / name), **overrides})


def lrs(run_dir: Path) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


# The weight average


def test_ema_decay_warms_up_then_holds():
    averaged, current = [torch.zeros(3)], [torch.ones(3)]
    ema_update(0.99)(averaged, current, torch.tensor(1))  # after one update: decay (1 + 1) / (10 + 1)
    assert averaged[0] == pytest.approx(torch.full((3,), 1 - 2 / 11))
    late = [torch.zeros(3)]
    ema_update(0.99)(late, current, torch.tensor(10_000))  # long after: the decay itself
    assert late[0] == pytest.approx(torch.full((3,), 0.01))
    counter = [torch.tensor(3)]
    ema_update(0.99)(counter, [torch.tensor(7)], torch.tensor(5))  # integer buffers follow the network
    assert counter[0].item() == 7


def test_the_averaged_weights_are_validated_tested_and_saved(tmp_path):
    result = train(config(tmp_path, ema=0.9, limit_batches=6), quiet=True)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    saved, live = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert saved.keys() == live.keys()
    assert any(not torch.equal(saved[k], live[k]) for k in saved if saved[k].is_floating_point())
    # The test pass saw the saved (averaged) weights: evaluating the checkpoint gives the same accuracy.
    assert evaluate(tmp_path / "run", checkpoint="last").accuracy == pytest.approx(result.test_acc, abs=1e-6)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_weights"] == "ema"


def test_a_run_with_a_weight_average_resumes_both(tmp_path):
    train(config(tmp_path, ema=0.9, limit_batches=4, epochs=1, schedule="none"), quiet=True)
    train(None, resume=tmp_path / "run", epochs=2, quiet=True)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 1 and "current_model_state" in checkpoint and "averaging_state" in checkpoint
    assert checkpoint["averaging_state"]["n_averaged"].item() == 8  # 4 steps per epoch, two epochs, one average


# Initialisation


def test_classifier_bias_starts_nin_s_class_block_positive_and_is_refused_without_a_bias():
    # NiN's last ReLU sits behind its class block: a class whose map starts (or is pushed) below zero everywhere
    # never gets a gradient again; biases started at 1 keep every map alive in the first steps
    cfg = make_config("nin", dataset=DATA, init="xavier", classifier_bias=1.0)
    module = ImageClassifier(cfg.to_dict(), 10, 1, list("abcdefghij"), [0.0], [1.0], 67)
    class_block = module.net.get_submodule("7.4")
    assert torch.equal(class_block.bias, torch.ones(10))
    assert not torch.equal(module.net.get_submodule("7.0").bias, torch.ones(10))  # only the classifier's
    plain = ImageClassifier(
        make_config("nin", dataset=DATA, init="xavier").to_dict(), 10, 1, list("abcdefghij"), [0.0], [1.0], 67
    )
    assert torch.equal(plain.net.get_submodule("7.4").bias, torch.zeros(10))
    cfg = make_config("airbench94", dataset=DATA, classifier_bias=1.0)
    with pytest.raises(UsageError, match=r"classifier_bias: airbench94's classifier \(head\) has no bias"):
        ImageClassifier(cfg.to_dict(), 10, 3, list("abcdefghij"), [0.0] * 3, [1.0] * 3, 32)


# Test-time augmentation


class _LeftVersusRight(nn.Module):
    """Logits read from the left and right image columns: a network that is not mirror-symmetric."""

    def forward(self, x):
        return torch.stack([x[..., 0].mean(dim=(1, 2)), x[..., -1].mean(dim=(1, 2))], dim=1)


def _classifier(**settings) -> ImageClassifier:
    cfg = make_config("lenet_bn", dataset=DATA, **settings)
    module = ImageClassifier(cfg.to_dict(), 2, 1, ["left", "right"], [0.0], [1.0], 28)
    module.net = _LeftVersusRight()
    return module


@pytest.mark.parametrize("tta", [False, True])
def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror(tta):
    x = torch.zeros(4, 1, 28, 28)
    x[..., 0] = 3.0  # bright on the left: class 0 without TTA; with its mirror averaged the logits tie
    y = torch.tensor([1, 1, 1, 1])
    module = _classifier(tta=tta)
    module._evaluate((x, y), "test")
    logits = torch.tensor([[1.5, 1.5]] * 4) if tta else torch.tensor([[3.0, 0.0]] * 4)
    assert module.test_loss.compute().item() == pytest.approx(nn.functional.cross_entropy(logits, y).item())


@pytest.mark.parametrize("tta_val", [True, False])
def test_tta_val_false_validates_on_one_view_and_tests_on_all(tta_val):
    x = torch.zeros(4, 1, 28, 28)
    x[..., 0] = 3.0
    y = torch.tensor([1, 1, 1, 1])
    module = _classifier(tta="flip", tta_val=tta_val)
    module._evaluate((x, y), "val")
    module._evaluate((x, y), "test")
    tied, one_view = torch.tensor([[1.5, 1.5]] * 4), torch.tensor([[3.0, 0.0]] * 4)
    expected_val = tied if tta_val else one_view
    assert module.val_loss.compute().item() == pytest.approx(nn.functional.cross_entropy(expected_val, y).item())
    assert module.test_loss.compute().item() == pytest.approx(nn.functional.cross_entropy(tied, y).item())


def test_a_run_tested_with_tta_says_so_and_evaluate_repeats_it(tmp_path):
    result = train(config(tmp_path, tta=True, epochs=1, limit_batches=6), quiet=True)
    assert "with flip TTA" in str(result)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_tta"] is True
    tested = evaluate(tmp_path / "run", checkpoint="last")
    assert tested.tta and tested.accuracy == pytest.approx(result.test_acc, abs=1e-6)
    assert not evaluate(tmp_path / "run", checkpoint="last", tta=False).tta


# MixUp, CutMix, cutout, weight decay


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.2, 0.0), (0.0, 1.0), (0.2, 1.0)])
def test_mixed_batches_have_label_probabilities_that_sum_to_one(mixup, cutmix):
    torch.manual_seed(0)
    mixer = batch_mixer(mixup, cutmix, num_classes=10)
    images, labels = torch.rand(16, 3, 8, 8), torch.arange(16) % 10
    mixed, targets = mixer(images, labels)
    assert mixed.shape == images.shape and targets.shape == (16, 10)
    assert torch.allclose(targets.sum(dim=1), torch.ones(16))
    assert (targets.max(dim=1).values < 1).all()  # every image blended with another (a different label)
    assert batch_mixer(0.0, 0.0, 10) is None


def test_training_with_mixup_and_cutmix_learns(tmp_path):
    settings = {"mixup": 0.2, "cutmix": 1.0, "epochs": 3, "lr": 1.0, "momentum": 0.9, "deterministic": True}
    result = train(config(tmp_path, **settings), quiet=True)
    assert result.test_acc > 0.4  # 4 classes: chance is 0.25 (mixing slows the start; 0.54 when written)


def test_cutout_blanks_one_square_of_the_given_side_in_each_training_image():
    images = torch.full((5, 3, 12, 12), 255, dtype=torch.uint8)  # normalised to 1 everywhere
    blanked = BatchAugment("none", mean=[0.0] * 3, std=[1.0] * 3, cutout=4, generator=torch.Generator().manual_seed(0))
    out = blanked(images)
    assert ((out == 0).sum(dim=(1, 2, 3)) == 3 * 16).all()  # a 4x4 square, all channels
    rows = (out[:, 0] == 0).any(dim=2).sum(dim=1)
    assert (rows == 4).all()  # one square, wholly inside the image
    evaluation = BatchAugment("none", mean=[0.0] * 3, std=[1.0] * 3, cutout=4, train=False)
    assert (evaluation(images) == 1).all()
    one = reference_transform("none", mean=[0.0] * 3, std=[1.0] * 3, cutout=4)(images[0])
    assert (one == 0).sum() == 3 * 16  # the DataLoader path blanks the same square


def test_cutout_as_large_as_the_image_is_refused(tmp_path):
    from moderncnn.errors import ConfigError

    with pytest.raises(ConfigError, match="cutout 28 px blanks the whole 28 px image"):
        train(config(tmp_path, cutout=28), quiet=True)


def test_normalisation_layers_and_biases_can_go_without_weight_decay():
    net = create_model("resnet20", num_classes=10)
    decayed, exempt = parameter_groups(net, 5e-4, 0.0)
    assert decayed["weight_decay"] == 5e-4 and exempt["weight_decay"] == 0.0
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    expected_exempt = {id(p) for m in norms for p in m.parameters()} | {id(net.fc.bias)}
    assert {id(p) for p in exempt["params"]} == expected_exempt
    assert len(decayed["params"]) + len(exempt["params"]) == len(list(net.parameters()))
    assert len(parameter_groups(net, 5e-4, None)) == 1  # by default every parameter decays alike


def test_one_cycle_rises_then_anneals(tmp_path):
    train(config(tmp_path, schedule="onecycle", epochs=4, limit_batches=5, lr=0.4), quiet=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([torch.zeros(1)], lr=0.4), 0.4, total_steps=20)
    expected = []
    for step in range(20):
        if step % 5 == 0:
            expected.append(schedule.get_last_lr()[0])
        schedule.optimizer.step()
        schedule.step()
    logged = lrs(tmp_path / "run")
    assert logged == pytest.approx(expected)
    assert logged[0] < logged[1] > logged[3]  # warm-up over the first 30 %, then cosine annealing


# Recipes and the command line


def test_both_bundled_recipes_have_a_fast_budget_for_every_network():
    # The book and the tutorial; the speed-run paper's own settings are already its fast ones (full and smoke only).
    for recipe in [r for r in list_recipes() if r.name != "airbench"]:
        assert "fast" in recipe.budgets, recipe.name
        if recipe.name == "uva-tutorial5":
            for cfg in recipe.configs("fast"):
                assert (cfg.schedule, cfg.tta, cfg.optimizer, cfg.norm_weight_decay) == (
                    "onecycle",
                    "flip-shift",
                    "sgd",
                    0.0,
                )
        fast = recipe.budgets["fast"]
        assert set(fast.get("networks", {})) <= {n.model for n in recipe.networks}


def test_a_budget_sets_networks_apart_and_the_caller_still_wins():
    recipe = load_recipe("uva-tutorial5")
    googlenet = recipe.settings_for("googlenet_uva", "fast")
    resnet = recipe.settings_for("resnet_uva", "fast", epochs=3)
    assert googlenet["epochs"] == recipe.budgets["fast"]["networks"]["googlenet_uva"]["epochs"]
    assert googlenet["optimizer"] == "sgd"  # the budget's, over the network's published adamw
    assert resnet["epochs"] == 3


def test_train_recipe_fast_finds_the_recipe_for_the_network_or_the_dataset():
    assert recipe_settings("fast", "resnet_uva", "cifar10")["tta"] == "flip-shift"  # listed by uva-tutorial5
    assert recipe_settings("fast", "resnet20", "cifar10")["schedule"] == "onecycle"  # uva-tutorial5's dataset
    assert recipe_settings("uva-tutorial5:fast", "resnet20")["dataset"] == "cifar10"
    with pytest.raises(UsageError, match="no budget 'fastest'"):
        recipe_settings("uva-tutorial5:fastest", "resnet20")
    with pytest.raises(UsageError, match="no bundled recipe trains resnet20 or synthetic"):
        recipe_settings("fast", "resnet20", "synthetic")


def test_the_train_command_line_layers_recipe_then_flags():
    from moderncnn.cli import build_parser
    from moderncnn.cli.train import settings_from

    args = build_parser().parse_args(["train", "resnet20", "--dataset", "cifar10", "--recipe", "fast", "--epochs", "2"])
    cfg = settings_from(args)
    assert (cfg.epochs, cfg.schedule, cfg.label_smoothing, cfg.tta) == (2, "onecycle", 0.1, "flip-shift")
    args = build_parser().parse_args(["train", "resnet20", "--recipe", "fast", "--config", "x.yaml"])
    with pytest.raises(UsageError, match="--recipe and --config"):
        settings_from(args)


def test_a_budget_naming_a_network_the_recipe_lacks_is_refused(tmp_path):
    text = (Path(load_recipe("uva-tutorial5").path)).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("googlenet_uva: {epochs: 20}", "resnet20: {epochs: 20}"))
    with pytest.raises(UsageError, match="budget fast sets networks the recipe does not list: resnet20"):
        read_recipe(bad)


@pytest.mark.parametrize(
    ("recipe_name", "network", "dataset", "expected"),
    [
        # The tutorial's budget: one-cycle, six-view TTA, label smoothing 0.1.
        ("uva-tutorial5", "resnet_uva", "synthetic:image_size=32,channels=3,num_train=600,num_test=100",
         {"schedule": "onecycle", "tta": "flip-shift", "label_smoothing": 0.1, "lr": 0.1}),
        # The book's: its per-network epochs and rate give way to the smoke size's epochs, not its rate.
        ("d2l-ch7", "nin", "synthetic:image_size=28,channels=1,num_train=600,num_test=100",
         {"schedule": "onecycle", "tta": "flip-shift", "init": "xavier", "classifier_bias": 1.0, "lr": 0.03}),
    ],
)  # fmt: skip
def test_a_fast_budget_trains_at_smoke_size(tmp_path, recipe_name, network, dataset, expected):
    from moderncnn.reproduce import reproduce

    recipe = load_recipe(recipe_name)
    overrides = {"dataset": dataset, "val_size": 100, "epochs": 2, "limit_batches": 2}
    comparison = reproduce(recipe, "fast", out=tmp_path / "out", only=[network], overrides=overrides, quiet=True)
    assert not comparison.failures
    saved = yaml_load(tmp_path / "out" / network / "config.yaml")
    assert {key: saved[key] for key in expected} == expected and saved["epochs"] == 2
    results = json.loads((tmp_path / "out" / network / "results.json").read_text())
    assert (results["recipe"], results["budget"]) == (recipe_name, "fast")


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_lr_find_writes_its_plot_and_values(tmp_path, monkeypatch):
    from moderncnn.engine.lr_find import lr_find

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    result = lr_find(make_config("lenet_bn", dataset=DATA, momentum=0.9), steps=30, out=tmp_path / "lr.png", quiet=True)
    assert "TQDM_DISABLE" not in os.environ  # quiet switched tqdm off while it ran, and left the variable as found
    assert result.plot.is_file() and result.plot.stat().st_size > 1000
    with open(result.table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.lrs) >= 10
    assert float(rows[0]["lr"]) == pytest.approx(1e-6) and all(math.isfinite(float(r["loss"])) for r in rows)
    assert result.suggestion is None or 1e-6 <= result.suggestion <= 1.0
