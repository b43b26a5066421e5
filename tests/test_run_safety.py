"""A run directory has one owner; finished runs say so and extend honestly; failed starts leave nothing half-made."""

import json
import os
import subprocess
import sys

import pytest

from moderncnn.engine import make_config, train
from moderncnn.errors import ConfigError, OutputError
from moderncnn.rundir import RunDir, RunLockedError

DATA = "synthetic:image_size=28,num_train=128,num_test=32"


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(run, **kw):
    settings = {"dataset": DATA, "epochs": 1, "batch_size": 32, "limit_batches": 2, "run_dir": str(run)}
    settings = {**settings, "deterministic": True, **kw}  # the extension test compares metrics exactly
    return make_config("lenet_bn", **settings)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_run_directory_held_by_a_live_process_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():  # this process stands for the other writer: it is alive
        with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
            train(_config(run.path), quiet=True)
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()  # the holder's lock is untouched
    assert not run.lock_file.exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    with pytest.warns(UserWarning, match="taking over the lock"):
        result = train(_config(run.path), quiet=True)
    assert result.run_dir == run.path and run.is_finished and not run.lock_file.exists()


def test_two_processes_on_one_run_directory_one_is_refused(tmp_path):
    # As the issue reproduced it: two `train` commands started together on the same --run-dir.
    argv = [sys.executable, "-m", "moderncnn.cli", "train", "lenet_bn", "--dataset", DATA, "--epochs", "2"]
    argv += ["--batch-size", "32", "--run-dir", str(tmp_path / "same"), "--quiet"]
    procs = [subprocess.Popen(argv + ["--seed", str(s)], stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    # Refused while the other trains ("in use by process"), or, where it reached the lock only after the other had
    # finished (seen since the pre-flight checks of issue 25 run before the lock), because the folder holds a run.
    assert ("is in use by process" in refused or "already holds a run" in refused) and "Traceback" not in refused
    seeds = {line.split(": ")[1] for line in (tmp_path / "same" / "config.yaml").read_text().splitlines()
             if line.startswith("seed:")}  # fmt: skip
    assert len(seeds) == 1  # one run's settings, and its checkpoints: nothing interleaved


def test_resuming_a_finished_run_says_it_is_finished(tmp_path):
    run = RunDir(tmp_path / "run")
    train(_config(run.path), quiet=True)
    events = sorted(run.tensorboard.rglob("events*"))
    with pytest.raises(ConfigError, match="finished all its 1 epochs"):
        train(None, resume=run.path, quiet=True)
    assert sorted(run.tensorboard.rglob("events*")) == events  # nothing started


def test_a_finished_run_extends_to_more_epochs_like_a_longer_run(tmp_path):
    straight, extended = RunDir(tmp_path / "straight"), RunDir(tmp_path / "extended")
    train(_config(straight.path, epochs=2, schedule="multistep", milestones=[1]), quiet=True)
    train(_config(extended.path, epochs=1, schedule="multistep", milestones=[1]), quiet=True)
    train(None, resume=extended.path, epochs=2, quiet=True)
    assert extended.read_metrics() == [
        {**row, "examples_per_sec": extended.read_metrics()[i]["examples_per_sec"],
         "epoch_seconds": extended.read_metrics()[i]["epoch_seconds"]}
        for i, row in enumerate(straight.read_metrics())
    ]  # fmt: skip
    assert extended.read_results()["epochs"] == 2


def test_a_cosine_schedule_is_not_extended(tmp_path):
    run = RunDir(tmp_path / "run")
    train(_config(run.path, schedule="cosine"), quiet=True)
    with pytest.raises(ConfigError, match="cosine schedule was shaped for 1"):
        train(None, resume=run.path, epochs=3, quiet=True)
    with pytest.raises(ConfigError, match="can only extend"):
        train(None, resume=run.path, epochs=0, quiet=True)


def test_a_failed_start_leaves_no_run_directory(tmp_path, monkeypatch):
    from moderncnn.engine.datamodule import ImageDataModule

    def broken(*args, **kwargs):
        raise ConfigError("something only the data could tell")

    monkeypatch.setattr(ImageDataModule, "setup", broken)
    with pytest.raises(ConfigError):
        train(_config(tmp_path / "run"), quiet=True)
    assert not (tmp_path / "run").exists()


def test_a_run_with_only_its_config_is_started_by_resume(tmp_path):
    # What a run killed before its first checkpoint (or an older failed start) leaves behind.
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    _config(run.path).save(run.config)
    result = train(None, resume=run.path, quiet=True)
    assert run.is_finished and result.run_dir == run.path


def test_an_unwritable_run_location_fails_in_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=str(blocker / "run")):
        train(_config(blocker / "run"), quiet=True)
