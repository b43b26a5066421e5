"""The plumbing: a fast start, one error base class, settings typed from their fields, flags generated from them,
one input-size rule, one owner of the run-directory layout, and checkpoints refused for what they are."""

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from moderncnn import cli
from moderncnn.errors import CheckpointError, ConfigError, ModernCNNError
from moderncnn.run.checkpoint import load_checkpoint, load_run
from moderncnn.run.config import TrainConfig, config_from, make_config
from moderncnn.run.plan import resolve_resize
from moderncnn.rundir import RunDir

HEAVY = ("torch", "lightning", "matplotlib", "torchvision", "onnx")


def _subcommands() -> list[list[str]]:
    parser = cli.build_parser()
    commands = []
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            if nested:
                commands += [[name, inner] for inner in nested[0].choices]
            else:
                commands.append([name])
    return commands


def test_help_of_every_command_loads_no_heavy_library():
    # A fresh interpreter: parse `--help` of the program and of every subcommand, then list what got imported.
    script = (
        "import contextlib, io, json, sys\n"
        "from moderncnn.cli import build_parser\n"
        f"for argv in [[]] + {_subcommands()!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        build_parser().parse_args(argv + ['--help'])\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_help_answers_quickly():
    # A generous bound (the target is 0.5 s on a quiet 2-core machine; a loaded CI machine may be slower).
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "moderncnn.cli", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0 and "train" in result.stdout
    assert elapsed < 2.0, f"moderncnn --help took {elapsed:.2f} s"


def test_every_setting_is_a_train_flag_with_its_choices():
    help_text = subprocess.run(
        [sys.executable, "-m", "moderncnn.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("flag"):
            assert "--" + f.name.replace("_", "-") in help_text, f.name
            for choice in f.metadata.get("choices") or ():
                assert choice in help_text
    # Those the hand-kept table used to miss.
    for flag in ("--milestones", "--gamma", "--nesterov", "--test-checkpoint", "--model-kwargs"):
        assert flag in help_text


def test_flags_reach_the_settings_with_their_types():
    args = cli.build_parser().parse_args(
        ["train", "resnet20", "--milestones", "3", "5", "--gamma", "0.5", "--nesterov", "--momentum", "0.9"]
        + ["--model-kwargs", "{preact: true}", "--val-size", "0.1", "--limit-batches", "2", "--compile", "false"]
        + ["--channels-last", "--no-cache", "--deterministic"]
    )
    config = config_from(args.model, None, **{name: getattr(args, name) for name in args.settings})
    assert config.milestones == [3, 5] and config.gamma == 0.5 and config.nesterov is True
    assert config.model_kwargs == {"preact": True} and config.val_size == 0.1 and config.compile == "false"
    assert config.channels_last == "true" and config.cache is False and config.deterministic is True
    assert config.limit_batches == 2 and isinstance(config.limit_batches, int)


def test_config_file_merges_with_flags(tmp_path):
    path = tmp_path / "config.yaml"
    make_config("lenet_bn", dataset="digits", epochs=3).save(path)
    config = config_from(None, path, epochs=5, lr=None)
    assert config.model == "lenet_bn" and config.dataset == "digits" and config.epochs == 5
    assert config_from("lenet", path).model == "lenet"
    with pytest.raises(ConfigError, match="name a MODEL"):
        config_from(None, None)


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("epochs", "ten", "setting 'epochs' must be an integer, got 'ten'"),
        ("epochs", 1.5, "setting 'epochs' must be an integer, got 1.5"),
        ("lr", [1], "setting 'lr' must be a number, got [1]"),
        ("model", 5, "setting 'model' must be a string, got 5"),
        ("batch_size", "64", "setting 'batch_size' must be an integer"),
        ("devices", "2", "setting 'devices' must be an integer"),
        ("dataset", 5, "setting 'dataset' must be a string"),
        ("seed", "abc", "setting 'seed' must be an integer"),
        ("model_kwargs", "x", "setting 'model_kwargs' must be a mapping"),
        ("resize", 28.5, "setting 'resize' must be an integer or null"),
        ("milestones", [1, "x"], "setting 'milestones[1]' must be an integer"),
        ("nesterov", "yes", "setting 'nesterov' must be true or false"),
        ("epochs", True, "setting 'epochs' must be an integer, got True"),
    ],
)
def test_settings_are_checked_against_their_types(setting, value, message):
    values = {**make_config("lenet_bn", dataset="digits").to_dict(), setting: value}
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(values)
    assert message in str(caught.value)


def test_an_integer_is_a_valid_float_setting():
    values = {**make_config("lenet_bn", dataset="digits").to_dict(), "lr": 1, "val_size": 100}
    config = TrainConfig.from_dict(values)
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.val_size == 100


@pytest.mark.parametrize(
    "model, augment, resize, native, expected",
    [
        ("lenet_bn", "none", None, 28, None),  # native size fits: untouched
        ("lenet_bn", "none", None, 8, 28),  # 8 px digits: up to the network's input
        ("alexnet_d2l", "d2l", None, 28, 224),  # the book's preset: the network's resolution
        ("resnet20", "cifar", None, None, 32),  # an image folder of mixed sizes
        ("resnet20", "cifar", 40, 32, 40),  # an explicit size wins
    ],
)
def test_one_rule_decides_the_input_size(model, augment, resize, native, expected):
    config = TrainConfig(model=model, augment=augment, resize=resize)
    assert resolve_resize(config, native) == expected


def test_a_trained_network_gets_images_at_its_own_size():
    config = TrainConfig(model="lenet_bn")
    assert resolve_resize(config, 28, trained_size=28) is None
    assert resolve_resize(config, 32, trained_size=28) == 28


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    from moderncnn.cli import models

    def user_error(args):
        raise ConfigError("epochs must be at least 1, got 0")

    def bug(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(models, "cmd_models", user_error)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == "moderncnn models: error: epochs must be at least 1, got 0\n"
    monkeypatch.setenv("MODERNCNN_DEBUG", "1")
    with pytest.raises(ConfigError):
        cli.main(["models"])
    monkeypatch.delenv("MODERNCNN_DEBUG")
    monkeypatch.setattr(models, "cmd_models", bug)
    with pytest.raises(ValueError, match="invariant"):  # not exit 2: a bug is not a usage error
        cli.main(["models"])


def test_every_user_error_is_also_the_builtin_a_caller_expects():
    # A bad value is a ValueError, a run that cannot go on a RuntimeError, a location that cannot be written an OSError.
    from moderncnn import errors

    for name in dir(errors):
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, ModernCNNError) and kind is not ModernCNNError:
            assert issubclass(kind, (ValueError, RuntimeError, OSError)), name


def test_the_model_table_is_computed_once_per_model_code(tmp_path, monkeypatch):
    from moderncnn import summarize as summary

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real = summary._table_row
    monkeypatch.setattr(summary, "_table_row", lambda name: calls.append(name) or real(name))
    first = summary.model_table("lenet")
    assert calls == ["lenet", "lenet_bn"] and len(list((tmp_path / "moderncnn").glob("model-table-*.json"))) == 1
    assert summary.model_table("lenet") == first and calls == ["lenet", "lenet_bn"]  # read back, not recomputed
    monkeypatch.setattr(summary, "_table_cache", lambda: tmp_path / "other-code.json")  # as if the code changed
    summary.model_table("lenet")
    assert calls == ["lenet", "lenet_bn"] * 2


# --- run directories and checkpoints -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunDir:
    from moderncnn.engine import train

    root = tmp_path_factory.mktemp("run")
    config = make_config(
        "lenet_bn", dataset="synthetic:image_size=8,num_train=128,num_test=32", epochs=1, batch_size=32,
        run_dir=str(root / "run"),
    )  # fmt: skip
    return RunDir(train(config, quiet=True).run_dir)


def test_a_run_records_its_resolved_size_flops_and_device(run):
    config = TrainConfig.load(run.config)
    assert config.resize == 28  # 8 px images upsampled for LeNet, said in config.yaml before training
    results = run.read_results()
    assert results["flops"] > 0 and results["input_shape"] == [1, 28, 28]
    assert "torch" in results["device_name"]
    assert RunDir.of_checkpoint(run.best) == run and RunDir.of_checkpoint(Path("loose.ckpt")) is None


def test_compare_reads_only_the_run_directory(run, tmp_path):
    # In a fresh interpreter: the report of a run imports neither the engine nor the recipes.
    script = (
        "import json, sys\n"
        "from moderncnn.reports.compare import compare\n"
        f"compare([{str(run)!r}], {str(tmp_path / 'cmp')!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('moderncnn.engine', 'moderncnn.reproduce')))))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []
    assert "lenet_bn" in (tmp_path / "cmp" / "comparison.md").read_text()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"is empty \(0 bytes\)"),
        (b"random bytes that are no checkpoint", "is corrupt"),
        ("truncated", "is truncated"),
    ],
)
def test_broken_checkpoints_are_called_what_they_are(run, tmp_path, content, message):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(run.best.read_bytes()[:4000] if content == "truncated" else content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_weights_that_do_not_fit_their_settings_are_refused_in_one_line(run, tmp_path):
    checkpoint = torch.load(run.best, weights_only=True)
    checkpoint["hyper_parameters"]["num_classes"] = 3  # the settings now describe another network
    path = tmp_path / "mixed.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as caught:
        load_run(path)
    assert "do not fit the lenet_bn" in str(caught.value) and "\n" not in str(caught.value)


def test_a_run_whose_config_names_another_network_is_refused(run, tmp_path):
    import shutil

    copy = RunDir(tmp_path / "copy")
    shutil.copytree(run.path, copy.path)
    text = copy.config.read_text().replace("model: lenet_bn", "model: lenet")
    copy.config.write_text(text)
    with pytest.raises(CheckpointError, match="holds a lenet_bn but .* names lenet"):
        load_run(copy.path)


def test_the_layout_is_spelled_in_one_module():
    source = Path(__file__).parents[1] / "src" / "moderncnn"
    spelled = []
    for path in source.rglob("*.py"):
        if path.name == "rundir.py":
            continue
        text = path.read_text()
        for name in ('"config.yaml"', '"metrics.csv"', '"results.json"', '"checkpoints"', '"reproduce.json"'):
            if name in text:
                spelled.append(f"{path.relative_to(source)}: {name}")
    assert spelled == []


def test_public_functions_are_not_shadowed_by_submodules_whatever_the_import_order():
    # `make demo` once failed with "'module' object is not callable": a submodule named like the function the
    # package exports (engine.train) replaced it once imported first. Fresh interpreters, both orders.
    script = (
        "import moderncnn.deploy, moderncnn.inspect, moderncnn.summarize\n"
        "import moderncnn as mc\n"
        "from moderncnn.engine import train, make_config\n"
        "assert callable(train) and callable(mc.summary) and callable(mc.predict), (train, mc.summary)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
