"""Training runs on generated data: the run directory, determinism, resume after SIGKILL, refusals and errors."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import EASY_FOLDER_SETTINGS, dark_and_light_folder
from moderncnn.engine import TrainConfig, load_checkpoint, make_config, train
from moderncnn.engine.recorder import TIMING_COLUMNS, AtomicCheckpointIO

DATA = "synthetic:image_size=28,num_train=1200,num_test=300"
CLI = [str(Path(sys.executable).with_name("moderncnn"))]


def config(tmp_path: Path, name: str = "run", **overrides) -> TrainConfig:
    settings = {
        "dataset": DATA,
        "epochs": 3,
        "batch_size": 64,
        "lr": 0.5,
        "val_size": 200,
        "run_dir": str(tmp_path / name),
    }
    return make_config("lenet_bn", **{**settings, **overrides})


def metrics(run_dir: Path, timing: bool = False) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def test_a_run_directory_holds_everything_about_the_run(tmp_path):
    result = train(config(tmp_path), quiet=True)
    run = tmp_path / "run"
    assert result.run_dir == run
    for name in ("config.yaml", "metrics.csv", "curves.png", "results.json", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = metrics(run, timing=True)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert all(float(r["examples_per_sec"]) > 0 and float(r["epoch_seconds"]) > 0 for r in rows)
    # The textbook's summary line.
    assert str(result).startswith(f"loss {result.train_loss:.3f}, train acc {result.train_acc:.3f}, test acc ")
    assert str(result).endswith(" examples/sec on cpu")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == "lenet_bn" and saved["lr"] == 0.5 and saved["run_dir"] == str(run)
    results = json.loads((run / "results.json").read_text())
    assert results["test_acc"] == pytest.approx(result.test_acc, abs=1e-6) and results["summary"] == str(result)
    assert results["recipe"] is None and results["budget"] is None  # a plain `train`, not a `reproduce` run
    # The checkpoint has what predict/export need, and loads as tensors and plain types only.
    hparams = load_checkpoint(run / "checkpoints" / "best.ckpt")["hyper_parameters"]
    assert hparams["config"]["model"] == "lenet_bn" and hparams["class_names"][1] == "18deg"
    assert hparams["in_channels"] == 1 and hparams["input_size"] == 28 and len(hparams["mean"]) == 1


def test_the_network_learns(tmp_path):
    data = "synthetic:image_size=28,num_train=1200,num_test=300,num_classes=4"
    result = train(config(tmp_path, dataset=data, epochs=4, lr=1.0, momentum=0.9), quiet=True)
    assert result.test_acc > 0.6  # 4 classes: chance is 0.25


def test_same_seed_same_metrics_and_config_repeats_the_run(tmp_path):
    # --deterministic: the auto speed choices (bf16, a thread count that follows the machine's load) are fast, not
    # bit-identical; this is the setting that promises the same run twice.
    train(config(tmp_path, "a", deterministic=True, epochs=2), quiet=True)
    train(config(tmp_path, "b", deterministic=True, epochs=2), quiet=True)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    repeated = dataclasses.replace(TrainConfig.load(tmp_path / "a" / "config.yaml"), run_dir=str(tmp_path / "c"))
    train(repeated, quiet=True)
    assert metrics(tmp_path / "c") == metrics(tmp_path / "a")
    train(config(tmp_path, "d", seed=7, deterministic=True, epochs=2), quiet=True)
    assert metrics(tmp_path / "d") != metrics(tmp_path / "a")


def _cli_args(run_dir: Path, epochs: int = 3) -> list[str]:
    return ["train", "lenet_bn", "--dataset", "synthetic:image_size=28,num_train=6000,num_test=300",
            "--epochs", str(epochs), "--batch-size", "64", "--lr", "0.5", "--val-size", "200", "--quiet",
            "--run-dir", str(run_dir), "--deterministic"]  # fmt: skip


def test_a_run_killed_in_epoch_two_resumes_to_the_same_result(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(CLI + _cli_args(straight), check=True, capture_output=True)

    proc = subprocess.Popen(CLI + _cli_args(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # well into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["epoch"] for r in metrics(killed)] == ["0"], "the kill must land during epoch 2"

    resumed = subprocess.run(CLI + ["train", "--resume", str(killed), "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert metrics(killed) == metrics(straight)
    assert "test acc" in resumed.stdout


def test_ctrl_c_keeps_last_checkpoint_and_says_how_to_resume(tmp_path):
    run = tmp_path / "interrupted"
    # Ctrl-C as a terminal delivers it. A process started in the background by a shell without job control (`cmd &`
    # in a script, as CI may start this suite) inherits SIGINT ignored, and Python then keeps ignoring it: the child
    # gets the default disposition back, as an interactive shell gives it.
    proc = subprocess.Popen(CLI + _cli_args(run, epochs=5), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert f"moderncnn train --resume {run}" in out + err
    load_checkpoint(last)  # intact and ours


def test_sigterm_ends_a_run_like_ctrl_c_with_exit_143(tmp_path, monkeypatch, capsys):
    # Issue 25, cause 8: Lightning turned SIGTERM into exit 0 with no message, so a scheduler reported success.
    from moderncnn.cli import main
    from moderncnn.engine import training

    real = training.plot_curves

    def then_terminate(run_dir):  # at the end of epoch 1, as a scheduler's stop or a SLURM preemption would
        real(run_dir)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(training, "plot_curves", then_terminate)
    run = tmp_path / "terminated"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = "synthetic:image_size=28,channels=1,num_train=256,num_test=64"
        with pytest.raises(SystemExit) as caught:
            main(["train", "lenet_bn", "--dataset", data, "--epochs", "3", "--batch-size", "64", "--limit-batches", "2",
                  "--quiet", "--run-dir", str(run)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert caught.value.code == 143
    assert "stopped by SIGTERM in epoch 2; " in err and f"Resume with: moderncnn train --resume {run}" in err
    assert not (run / "results.json").exists() and not (run / ".lock").exists()
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0  # the end of epoch 1, intact
    monkeypatch.setattr(training, "plot_curves", real)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0 and (run / "results.json").is_file()


def test_atomic_checkpoint_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    class Boom:
        def __reduce__(self):
            raise KeyboardInterrupt  # as if the process were stopped half-way through writing

    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "x": Boom()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))


def test_non_finite_loss_stops_the_run_naming_the_step_and_keeps_checkpoints(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = torch.nn.CrossEntropyLoss.forward

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = original(self, logits, target)
        return loss * float("nan") if calls["n"] > 25 else loss  # after epoch 1 (17 steps + 4 val batches)

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", poisoned)
    cfg = config(tmp_path, epochs=3)
    with pytest.raises(RuntimeError, match=r"the loss became nan at step \d+ \(epoch 1, batch \d+\); lower the"):
        train(cfg, quiet=True)
    for name in ("last.ckpt", "best.ckpt"):
        assert load_checkpoint(tmp_path / "run" / "checkpoints" / name)["epoch"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lenet", "--optimizer", "rmsprop"], "optimizer must be one of sgd, adam, adamw, muon, got 'rmsprop'"),
        (["lenet", "--lr", "-0.1"], "lr must be positive, got -0.1"),
        (["lenet", "--batch-size", "0"], "batch_size must be at least 1, got 0"),
        (["lenet", "--augment", "autoaugment"], "augment must be one of none, d2l, cifar, uva"),
        (["lenett"], "unknown model 'lenett'; did you mean lenet"),
        (["--resume", "/nonexistent/run"], "cannot resume /nonexistent/run: it has no config.yaml"),
        ([], "name a MODEL"),
        (["lenet", "--precision", "16-mixed", "--accelerator", "cpu"], "precision 16-mixed needs a GPU"),
    ],
)
def test_invalid_settings_fail_in_one_line_before_any_work(capsys, argv, message):
    from moderncnn.cli import main

    started = time.perf_counter()
    assert main(["train", *argv]) == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert time.perf_counter() - started < 5


def test_two_cpu_processes_aggregate_metrics_like_one(tmp_path):
    """DDP on CPU (gloo): 301 test and 201 validation images split unevenly over 2 ranks still count once each."""
    from moderncnn.engine.evaluate import evaluate

    run = tmp_path / "ddp"
    args = ["train", "lenet_bn", "--dataset", "synthetic:image_size=28,num_train=600,num_test=301", "--epochs", "1",
            "--batch-size", "64", "--val-size", "201", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
            "--quiet", "--run-dir", str(run)]  # fmt: skip
    one_thread_each = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a 2-core machine
    done = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, env=one_thread_each)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("examples/sec on cpu") == 1  # one report, from rank 0
    results = json.loads((run / "results.json").read_text())
    single = evaluate(run, checkpoint="last")
    assert single.images == 301
    assert results["test_acc"] == pytest.approx(single.accuracy, abs=1e-6)
    assert float(metrics(run)[-1]["val_acc"]) == pytest.approx(
        evaluate(run, checkpoint="last", split="val").accuracy, abs=1e-6
    )


def test_evaluate_reports_accuracy_per_class_and_a_confusion_matrix(tmp_path, capsys):
    from moderncnn.cli import main

    result = train(config(tmp_path, epochs=1), quiet=True)
    assert main(["evaluate", str(result.run_dir), "--checkpoint", "last", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(result.test_acc, abs=1e-6) and report["images"] == 300
    matrix = torch.tensor(report["confusion"])
    assert matrix.sum() == 300 and matrix.diag().sum() / 300 == pytest.approx(report["accuracy"], abs=1e-6)
    per_class = (matrix.diag() / matrix.sum(1)).tolist()
    assert report["per_class"] == pytest.approx(per_class)
    true, predicted, count = report["worst_pairs"][0]
    names = report["classes"]
    off = matrix.clone().fill_diagonal_(0)
    assert count == off.max() == off[names.index(true), names.index(predicted)]
    assert Path(report["confusion_png"]).is_file()
    assert main(["evaluate", str(result.run_dir), "--split", "val"]) == 0
    assert "val accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(result.run_dir), "--split", "holdout"]) == 2
    assert "has no 'holdout' split" in capsys.readouterr().err


def test_training_on_an_image_folder_with_a_corrupt_file(tmp_path):
    """The DataLoader path: PNG files decoded by workers, torchvision transforms, one bad file skipped."""
    cfg = make_config(
        dataset=f"imagefolder:{dark_and_light_folder(tmp_path)}",
        cache=False,  # the cached path: tests/test_cache.py
        data_dir=str(tmp_path / "data"),
        run_dir=str(tmp_path / "run"),
        **EASY_FOLDER_SETTINGS,
    )
    with pytest.warns(UserWarning, match="broken.jpg"):
        result = train(cfg, quiet=True)
    hparams = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["hyper_parameters"]
    assert hparams["class_names"] == ["dark", "light"] and hparams["input_size"] == 28
    assert [r["epoch"] for r in metrics(tmp_path / "run")] == ["0", "1", "2", "3"]
    assert result.test_acc >= 0.9  # dark vs light is easy


@pytest.mark.parametrize(
    ("schedule", "extra", "expected"),
    [
        ("multistep", {"milestones": [1, 2], "gamma": 0.1}, [0.5, 0.05, 0.005]),
        # Cosine over 3 epochs of 5 limited steps each: 0.5 * (1 + cos(pi * epoch / 3)) at each epoch start.
        ("cosine", {}, [0.5, 0.375, 0.125]),
        ("none", {}, [0.5, 0.5, 0.5]),
    ],
)
def test_learning_rate_schedules_follow_epochs(tmp_path, schedule, extra, expected):
    train(config(tmp_path, schedule=schedule, limit_batches=5, **extra), quiet=True)
    assert [float(r["lr"]) for r in metrics(tmp_path / "run")] == pytest.approx(expected)


def test_bf16_mixed_precision_trains_on_the_cpu(tmp_path):
    data = "synthetic:image_size=28,num_train=1200,num_test=300,num_classes=4"  # as test_the_network_learns
    result = train(config(tmp_path, dataset=data, epochs=4, lr=1.0, momentum=0.9, precision="bf16-mixed"), quiet=True)
    assert result.test_acc > 0.6  # 4 classes: chance is 0.25
    weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(v.dtype == torch.float32 for k, v in weights.items() if v.is_floating_point())  # master weights


def test_compiled_network_trains_and_saves_plain_weights(tmp_path):
    result = train(config(tmp_path, compile=True, epochs=1), quiet=True)
    keys = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    assert keys and not any("_orig_mod" in k for k in keys)  # loadable into the plain network
    from moderncnn.engine.evaluate import evaluate

    assert evaluate(tmp_path / "run", checkpoint="last").accuracy == pytest.approx(result.test_acc, abs=1e-6)


def test_a_fixed_input_network_is_built_for_the_resize_it_trains_at(tmp_path):
    # alexnet_d2l's classifier is sized for 224 px; at --resize 65 it is built for 65 px, and so is its reload.
    settings = {
        **config(tmp_path, epochs=1, limit_batches=2, batch_size=32, resize=65).to_dict(),
        "model": "alexnet_d2l",
    }
    run = train(TrainConfig.from_dict(settings), quiet=True)
    from moderncnn.run.checkpoint import load_run

    net, info = load_run(run.run_dir / "checkpoints" / "last.ckpt")
    assert info.input_size == 65 and net(torch.zeros(2, 1, 65, 65)).shape == (2, 10)
    assert json.loads((run.run_dir / "results.json").read_text())["input_shape"] == [1, 65, 65]
