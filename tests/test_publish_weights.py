"""Publishing a finished run (``benchmarks/publish_weights.py``): the file, the table entry and the card; runs
without results.json, or whose converted weights miss the run's test accuracy, are refused."""

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import moderncnn as mc
from moderncnn.errors import CheckpointError
from moderncnn.weights.store import sha256_of
from moderncnn.weights.table import _read_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """BN-LeNet trained on digits for 2 epochs with the demo's settings (a few seconds)."""
    from moderncnn.demo import demo_config
    from moderncnn.engine import train

    run = tmp_path_factory.mktemp("runs") / "lenet_bn-digits"
    config = demo_config(run_dir=run, epochs=2)
    config = dataclasses.replace(config, precision="32")
    train(config, quiet=True)
    return run


def publish(run, out, **kwargs):
    from moderncnn.reproduce.publish import publish_run

    return publish_run(
        run,
        table_path=out / "table.json",
        files_dir=out / "files",
        cards_dir=out / "cards",
        log=lambda line: None,
        **kwargs,
    )


def test_a_run_becomes_a_file_an_entry_and_a_card(digits_run, tmp_path):
    from safetensors.torch import load_file

    entry = publish(digits_run, tmp_path, recipe="the demo, 2 epochs")
    results = json.loads((digits_run / "results.json").read_text())
    file = tmp_path / "files" / entry.file
    assert entry.sha256 == sha256_of(file.read_bytes()) and entry.size == file.stat().st_size
    assert abs(entry.test_acc - results["test_acc"]) <= 0.002 and entry.run_test_acc == results["test_acc"]
    assert {str(v.dtype) for v in load_file(file).values() if v.is_floating_point()} == {f"torch.{entry.dtype}"}
    assert _read_table(tmp_path / "table.json")[entry.name] == entry
    assert set(entry.jpeg_acc) == {"95", "75"} and "run_dir" not in entry.config
    card = (tmp_path / "cards" / f"{entry.name}.md").read_text()
    for fact in ("the demo, 2 epochs", "| lr | 0.1 |", "JPEG quality 75", f"{100 * entry.test_acc:.2f}%", "28x28"):
        assert fact in card
    assert card.count("\n| ") >= 10 + 40  # a row per class and per setting
    assert (tmp_path / "cards" / f"{entry.name}-confusion.png").stat().st_size > 1000


def test_a_run_without_results_is_refused(digits_run, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(digits_run, unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(CheckpointError, match="no results.json"):
        publish(unfinished, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_run_whose_weights_miss_its_test_accuracy_is_refused(digits_run, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(digits_run, changed)
    results = json.loads((changed / "results.json").read_text())
    results["test_acc"] = round(results["test_acc"] - 0.01, 6)  # 0.01 away: beyond the 0.002 allowed
    (changed / "results.json").write_text(json.dumps(results))
    with pytest.raises(CheckpointError, match=r"refusing .* even as float32"):
        publish(changed, tmp_path / "out")
    assert not (tmp_path / "out" / "table.json").exists()


def test_the_script_exits_1_on_a_refused_run(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("publish_weights", ROOT / "benchmarks" / "publish_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


def test_the_published_figure_comes_from_the_run_s_recipe_or_a_bundled_one():
    from moderncnn.reproduce.publish import published_figure

    figure = published_figure("resnet_uva", "cifar10", {})  # the bundled uva-tutorial5 recipe lists it
    assert (figure["label"], figure["value"]) == ("UvA test acc", 0.9106) and "Lippe" in figure["source"]
    origin = {
        "published": {"paper": 0.9125},
        "published_columns": [{"key": "paper", "label": "He et al. test acc", "ours": "test_acc"}],
        "heading": {"source": "He et al. 2016"},
    }
    assert published_figure("resnet20", "cifar10", origin)["value"] == 0.9125
    assert published_figure("lenet_bn", "digits", {}) == {}


def test_without_a_recipe_the_figure_is_the_one_the_network_s_source_reports():
    from moderncnn.reproduce.publish import published_figure

    figure = published_figure("resnet20", "cifar10", {})  # no recipe trains resnet20: He et al.'s table 6
    assert figure["value"] == 0.9125 and "He et al. 2016" in figure["source"] and "table 6" in figure["source"]
    assert published_figure("resnet110", "cifar10", {})["value"] == 0.9357
    assert published_figure("resnet20", "fashion-mnist", {}) == {}  # the paper reports CIFAR-10 only
    assert mc.get_weights_info("resnet20-cifar10").published["value"] == 0.9125  # the shipped card compares with it
