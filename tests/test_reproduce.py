"""Recipes (published experiments as data), the reproduce runner and the comparison report."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import moderncnn as mc
from moderncnn.data import data_root
from moderncnn.reports.compare import compare
from moderncnn.reproduce import list_recipes, load_recipe, reproduce

CLI = [str(Path(sys.executable).with_name("moderncnn"))]
GREY = "synthetic:image_size=28,num_train=600,num_test=300"


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the bundled recipes hold the published settings and figures ----------------------------------------------


def test_bundled_recipes_are_listed():
    assert [r.name for r in list_recipes()] == ["d2l-ch7", "uva-tutorial5", "airbench"]
    for recipe in list_recipes():
        # The speed-run paper's settings are its fast budget already: it has the published one and a smoke test.
        budgets = {"full", "smoke"} if recipe.name == "airbench" else {"full", "quick", "fast", "smoke"}
        assert set(recipe.budgets) == budgets
        assert recipe.source and recipe.notes


def test_d2l_recipe_has_the_books_settings_per_network():
    recipe = load_recipe("d2l-ch7")
    expected = {  # network: (resize, batch, lr), as train_ch6 is called in the book
        "alexnet_d2l": (224, 128, 0.01),
        "vgg_d2l": (224, 128, 0.05),
        "nin": (224, 128, 0.1),
        "googlenet_d2l": (96, 128, 0.1),
        "lenet_bn": (28, 256, 1.0),
        "resnet18_d2l": (96, 256, 0.05),
        "densenet_d2l": (96, 256, 0.1),
    }
    configs = {c.model: c for c in recipe.configs("full")}
    assert list(configs) == list(expected)
    for model, (resize, batch, lr) in expected.items():
        c = configs[model]
        assert (c.resize, c.batch_size, c.lr) == (resize, batch, lr), model
        assert (c.optimizer, c.momentum, c.weight_decay, c.init, c.epochs) == ("sgd", 0.0, 0.0, "xavier", 10)
        assert (c.dataset, c.val_size, c.schedule, c.test_checkpoint) == ("fashion-mnist", 0, "none", "last")
    assert configs["vgg_d2l"].model_kwargs == {"width_ratio": 4}
    published = recipe.network("nin").published
    assert published == {
        "book_test_acc": 0.790,
        "book_examples_per_sec": 3088,
        "book_median_test_acc": 0.832,
        "zh_test_acc": 0.873,
        "zh_examples_per_sec": 1617,
    }
    assert recipe.network("lenet_bn").published["book_median_test_acc"] == 0.843


def test_uva_recipe_has_the_tutorials_settings_and_its_parameter_counts_are_ours():
    recipe = load_recipe("uva-tutorial5")
    configs = {c.model: c for c in recipe.configs("full")}
    assert list(configs) == ["googlenet_uva", "resnet_uva", "preact_resnet_uva", "densenet_uva"]
    for c in configs.values():
        assert (c.dataset, c.val_size, c.seed, c.augment, c.batch_size, c.epochs) == (
            "cifar10",
            5000,
            42,
            "uva",
            128,
            180,
        )
        assert (c.schedule, c.milestones, c.gamma, c.test_checkpoint) == ("multistep", [100, 150], 0.1, "best")
        assert c.mean == [0.49139968, 0.48215841, 0.44653091] and c.std == [0.24703223, 0.24348513, 0.26158784]
    for model in ("googlenet_uva", "densenet_uva"):
        assert (configs[model].optimizer, configs[model].lr, configs[model].weight_decay) == ("adamw", 1e-3, 1e-4)
    for model in ("resnet_uva", "preact_resnet_uva"):
        c = configs[model]
        assert (c.optimizer, c.lr, c.momentum, c.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    # The tutorial's published parameter counts are those of our networks, exactly.
    for network in recipe.networks:
        net = mc.create_model(network.model, num_classes=10, in_channels=3)
        assert mc.count_parameters(net)[0] == network.published["uva_params"], network.model
    assert recipe.network("resnet_uva").published["uva_test_acc"] == 0.9106


def test_budgets_change_epochs_milestones_and_resolution():
    uva = {c.model: c for c in load_recipe("uva-tutorial5").configs("quick")}
    assert uva["resnet_uva"].epochs == 30 and uva["resnet_uva"].milestones == [17, 25]  # 100/150 of 180, scaled
    d2l = {c.model: c for c in load_recipe("d2l-ch7").configs("quick", dataset=GREY)}
    # Native resolution: 28 px, raised to the smallest input each network accepts.
    sizes = {m: c.resize for m, c in d2l.items()}
    assert sizes == {m: max(28, mc.get_model_info(m).min_input_size) for m in sizes}
    assert sizes["alexnet_d2l"] > 28 and sizes["lenet_bn"] == 28
    smoke = load_recipe("d2l-ch7").configs("smoke", only=["nin"], dataset=GREY)
    assert [c.model for c in smoke] == ["nin"] and smoke[0].limit_batches == 2 and smoke[0].epochs == 1


def test_recipe_errors_are_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe 'd2l-ch9'; bundled recipes: d2l-ch7, uva-tutorial5"):
        load_recipe("d2l-ch9")
    with pytest.raises(ValueError, match="has no budget 'huge'; it has full, quick, fast, smoke"):
        load_recipe("d2l-ch7").configs("huge")
    with pytest.raises(ValueError, match="has no network resnet50; it has alexnet_d2l"):
        load_recipe("d2l-ch7").configs("full", only=["resnet50"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndataset: cifar10\n")
    with pytest.raises(ValueError, match="recipe .*bad.yaml is malformed"):
        load_recipe(bad)
    bad.write_text("name: bad\ntitle: t\nsource: s\ndataset: cifar10\nnetworks: [{model: resnet_uvaa}]\n")
    with pytest.raises(ValueError, match="resnet_uva"):  # the closest valid name is suggested
        load_recipe(bad)
    result = cli("reproduce", "d2l-ch9")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- reproduce and compare, end to end on generated data ----------------------------------------------------------


def user_recipe(tmp_path: Path, lrs: dict[str, float]) -> Path:
    """A user's own recipe file: small networks on generated data, with made-up published figures."""
    path = tmp_path / "mine.yaml"
    recipe = {
        "name": "mine",
        "title": "my small comparison",
        "source": "this test",
        "dataset": GREY,
        "settings": {"epochs": 2, "batch_size": 64, "val_size": 100, "augment": "none", "test_checkpoint": "best"},
        "networks": [
            {"model": model, "settings": {"lr": lr}, "published": {"paper_acc": 0.5, "paper_speed": 1000}}
            for model, lr in lrs.items()
        ],
        "budgets": {"full": {}, "smoke": {"epochs": 1, "limit_batches": 2}},
        "published_columns": [
            {"key": "paper_acc", "label": "paper test acc", "ours": "test_acc", "compare": "diff"},
            {"key": "paper_speed", "label": "paper examples/sec", "ours": "examples_per_sec", "compare": "ratio"},
        ],
        "notes": "made-up figures",
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_reproduce_a_user_recipe_writes_runs_and_a_comparison(tmp_path):
    recipe = user_recipe(tmp_path, {"lenet_bn": 0.5, "resnet_uva": 0.1})
    out = tmp_path / "out"
    comparison = reproduce(recipe, "full", out=out, quiet=True, log=lambda line: None)
    assert [r.model for r in comparison.records] == ["lenet_bn", "resnet_uva"]
    for name in ("comparison.md", "comparison.csv", "comparison.png", "val_curves.png"):
        assert (out / name).is_file(), name
    rows = read_csv(out / "comparison.csv")
    for row, model in zip(rows, ["lenet_bn", "resnet_uva"], strict=True):
        results = json.loads((out / model / "results.json").read_text())
        assert row["model"] == model and int(row["params"]) == results["params"]
        assert float(row["test_acc"]) == results["test_acc"]
        assert float(row["paper_acc_diff"]) == pytest.approx(results["test_acc"] - 0.5, abs=1e-6)
        assert float(row["paper_speed_ratio"]) == pytest.approx(results["examples_per_sec"] / 1000, abs=1e-6)
        assert int(row["flops"]) == mc.count_flops(mc.create_model(model, in_channels=1), (1, 1, 28, 28))
        assert results["test_checkpoint"] == "best"
        assert (results["recipe"], results["budget"]) == (recipe.stem, "full")
    markdown = (out / "comparison.md").read_text()
    assert "Budget: **full** (the published settings)" in markdown
    assert "| lenet_bn |" in markdown and "| resnet_uva |" in markdown and "made-up figures" in markdown
    assert "examples/sec: training images per second" in markdown


def test_reproduce_again_keeps_finished_runs_and_refuses_other_settings(tmp_path):
    recipe = user_recipe(tmp_path, {"lenet_bn": 0.5})
    out = tmp_path / "out"
    reproduce(recipe, "smoke", out=out, quiet=True, log=lambda line: None)
    before = (out / "lenet_bn" / "results.json").read_text()
    lines = []
    reproduce(recipe, "smoke", out=out, quiet=True, log=lines.append)
    assert lines == [f"[1/1] lenet_bn: finished earlier in {out / 'lenet_bn'}; kept"]
    assert (out / "lenet_bn" / "results.json").read_text() == before
    markdown = (out / "comparison.md").read_text()
    assert "Budget: **smoke**" in markdown and "NOT comparable with the published ones" in markdown
    # A moved (or copied) reproduction folder keeps its finished runs: where a run lives is not a setting.
    moved = out.rename(tmp_path / "moved")
    lines = []
    reproduce(recipe, "smoke", out=moved, quiet=True, log=lines.append)
    assert lines == [f"[1/1] lenet_bn: finished earlier in {moved / 'lenet_bn'}; kept"]
    out = moved.rename(out)
    # The same folder with another learning rate would mix two experiments in one table.
    other = user_recipe(tmp_path, {"lenet_bn": 0.25})
    with pytest.raises(ValueError, match="holds a run with other settings \\(differs in lr\\)"):
        reproduce(other, "smoke", out=out, quiet=True, log=lambda line: None)


def test_a_failing_network_is_reported_and_the_others_still_run(tmp_path):
    recipe = user_recipe(tmp_path, {"lenet_bn": 1e38, "resnet_uva": 0.1})  # lenet_bn's logits overflow
    result = cli("reproduce", str(recipe), "--budget", "smoke", "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 1, result.stderr
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert "Did not finish:\n- lenet_bn: the loss became" in markdown
    assert "| resnet_uva |" in markdown and "| lenet_bn |" not in markdown


def test_compare_cli_on_runs_and_on_a_folder_of_runs(tmp_path):
    recipe = user_recipe(tmp_path, {"lenet_bn": 0.5, "resnet_uva": 0.1})
    out = tmp_path / "out"
    reproduce(recipe, "smoke", out=out, quiet=True, log=lambda line: None)
    result = cli("compare", str(out / "resnet_uva"), str(out / "lenet_bn"), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "cmp" / "comparison.csv")
    assert [r["model"] for r in rows] == ["resnet_uva", "lenet_bn"]
    # The published figures and their columns travel with each run (reproduce.json): no recipe file is needed.
    assert float(rows[1]["paper_acc"]) == 0.5
    assert float(rows[1]["paper_acc_diff"]) == pytest.approx(float(rows[1]["test_acc"]) - 0.5, abs=1e-6)
    folder = cli("compare", str(out), "--out", str(tmp_path / "cmp2"))
    assert folder.returncode == 0 and [r["model"] for r in read_csv(tmp_path / "cmp2" / "comparison.csv")] == [
        "lenet_bn",
        "resnet_uva",
    ]
    for bad, message in ((tmp_path / "nothing", "is not a run directory"), (out / "comparison.csv", "not a run")):
        result = cli("compare", str(bad), "--out", str(tmp_path / "cmp3"))
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_reproduce_list(tmp_path):
    result = cli("reproduce", "--list")
    assert result.returncode == 0
    assert "d2l-ch7: Dive into Deep Learning" in result.stdout and "uva-tutorial5: UvA" in result.stdout


def test_smoke_budget_of_a_bundled_recipe_on_generated_data(tmp_path):
    # The d2l recipe's smallest and largest-input networks, on generated Fashion-MNIST-shaped data.
    out = tmp_path / "out"
    comparison = compare_smoke = reproduce(
        "d2l-ch7", "smoke", out=out, only=["lenet_bn", "nin"], overrides={"dataset": GREY}, quiet=True,
        log=lambda line: None,
    )  # fmt: skip
    assert [r.input_shape for r in comparison.records] == [[1, 67, 67], [1, 28, 28]]
    markdown = compare_smoke.markdown
    assert "another dataset than the recipe's fashion-mnist" in markdown and "Budget: **smoke**" in markdown
    assert "| nin |" in markdown and "0.790 (" in markdown  # the book's NiN figure beside ours
    # Compared again from the folder: the chapter's order (NiN before BN-LeNet), not the folders' names.
    assert [r.model for r in compare([out], tmp_path / "again").records] == ["nin", "lenet_bn"]


# --- on the real data (skipped without a data root) -----------------------------------------------------------------


def _has(folder: str) -> bool:
    return (data_root() / folder).is_dir()


# The book's seven networks and the tutorial's four at their real input sizes take about 80 s together here: they run
# with `make test-slow`; the generated-data smoke above covers their code path in `make test`.
@pytest.mark.skipif(not (_has("FashionMNIST") and _has("cifar-10-batches-py")), reason="real data not in the root")
@pytest.mark.parametrize(
    "recipe", [pytest.param("d2l-ch7", marks=pytest.mark.slow), pytest.param("uva-tutorial5", marks=pytest.mark.slow),
               "airbench"],
)  # fmt: skip
def test_smoke_budget_of_each_bundled_recipe_on_the_real_data(tmp_path, recipe):
    out = tmp_path / recipe
    result = cli("reproduce", recipe, "--budget", "smoke", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_csv(out / "comparison.csv")
    assert [r["model"] for r in rows] == [n.model for n in load_recipe(recipe).networks]
    assert "NOT comparable" in (out / "comparison.md").read_text()


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "a/b", "..", "", 7])
def test_a_recipe_name_is_never_a_path(tmp_path, name):
    # Issue 25, cause 7: runs/reproduce/<name>-<budget> must stay inside runs/reproduce, whoever wrote the recipe.
    recipe = yaml.safe_load(user_recipe(tmp_path, {"lenet_bn": 0.5}).read_text())
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump({**recipe, "name": name}))
    with pytest.raises(ValueError, match=r"recipe .*hostile.yaml: name must be a plain name \(letters, digits"):
        load_recipe(path)
    path.write_text(yaml.safe_dump({**recipe, "networks": [{"model": "../lenet_bn"}]}))
    with pytest.raises(ValueError, match="a network's model must be a plain name"):
        load_recipe(path)


def test_reproduce_refuses_a_recipe_named_as_a_path_in_one_line_writing_nothing(tmp_path, monkeypatch, capsys):
    from moderncnn.cli import main

    recipe = yaml.safe_load(user_recipe(tmp_path, {"lenet_bn": 0.5}).read_text())
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump({**recipe, "name": "../../escaped"}))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["reproduce", str(path), "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name must be a plain name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml", "mine.yaml", "work"]
    assert not any((tmp_path / "work").iterdir())


@pytest.mark.parametrize(
    ("change", "words"),
    [({"settings": "str"}, "settings must be a mapping"),
     ({"budgets": {"full": {}, "smoke": {"networks": {"lenet_bn": "x"}}}}, "budgets.smoke.networks.lenet_bn must be"),
     ({"networks": [{"model": "lenet_bn", "settings": [1]}]}, "networks.lenet_bn.settings must be a mapping")],
    ids=["settings", "budget-network", "network-settings"],
)  # fmt: skip
def test_recipe_entries_of_the_wrong_type_are_one_line(tmp_path, change, words):
    # Issue 25, cause 10: these gave a TypeError or ValueError traceback.
    recipe = yaml.safe_load(user_recipe(tmp_path, {"lenet_bn": 0.5}).read_text())
    path = tmp_path / "typed.yaml"
    path.write_text(yaml.safe_dump({**recipe, **change}))
    with pytest.raises(ValueError, match=f"recipe .*typed.yaml: {words}") as caught:
        load_recipe(path)
    assert "\n" not in str(caught.value)
