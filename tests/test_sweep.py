"""Sweeps: the smallest sweep file runs and reports, bad files are refused in one line, workers share one study
without running a trial twice or losing one, and a killed worker's trial is failed and retried.

The tests that start worker processes (about a minute on 2 cores) are marked slow; `.ci/run` runs them after
`make test`, so CI checks them every time."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pytest
import yaml

from moderncnn.cli import main
from moderncnn.engine import TrainConfig
from moderncnn.errors import ConfigError
from moderncnn.sweep import parse_spec

SMALLEST = """\
base: {model: lenet_bn, dataset: digits, resize: 28, epochs: 2}
space:
  lr: {low: 0.01, high: 1.0, log: true}
  batch_size: {choices: [64, 128]}
objective: val_acc
trials: 6
"""

# Tiny trials for the worker tests: a few batches of generated images, a heartbeat of one second.
TINY = {
    "base": {
        "model": "lenet_bn",
        "dataset": "synthetic:image_size=28,num_train=512,num_test=64",
        "epochs": 1,
        "batch_size": 32,
        "limit_batches": 2,
        "val_size": 64,
        "threads": 1,
    },
    "space": {"lr": {"low": 0.05, "high": 0.5, "log": True}, "momentum": {"choices": [0.0, 0.9]}},
    "trials": 3,
    "pruner": "none",
    "heartbeat": 1,
}


def _write(tmp_path, text_or_dict, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text_or_dict if isinstance(text_or_dict, str) else yaml.safe_dump(text_or_dict))
    return path


def _report(out, capsys) -> dict:
    capsys.readouterr()
    assert main(["sweep", "report", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_smallest_sweep_file_runs_and_reports(tmp_path, capsys):
    spec = _write(tmp_path, SMALLEST)
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--trials", "2"]) == 0
    assert "study spec:" in capsys.readouterr().out
    style = dict(matplotlib.rcParams)
    report = _report(out, capsys)
    assert dict(matplotlib.rcParams) == style  # Optuna's figures leave the process's matplotlib style as it was
    trials = report["trials"]
    assert [t["number"] for t in trials] == [0, 1] and report["objective"] == "val_acc"
    for trial in trials:
        assert trial["state"] in ("COMPLETE", "PRUNED")
        assert 0.01 <= trial["params"]["lr"] <= 1.0 and trial["params"]["batch_size"] in (64, 128)
        # Each trial is a normal run directory whose config.yaml holds its parameters and reruns it.
        config = TrainConfig.load(Path(trial["run_dir"]) / "config.yaml")
        assert (config.lr, config.batch_size) == (trial["params"]["lr"], trial["params"]["batch_size"])
        assert (config.model, config.dataset, config.epochs, config.resize) == ("lenet_bn", "digits", 2, 28)
        assert config.val_size == 0.1  # chosen on held-out training images, not the test split
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert done and report["best"] == max(done, key=lambda t: t["value"])["number"]
    for trial in done:
        results = json.loads((Path(trial["run_dir"]) / "results.json").read_text())
        assert trial["value"] == pytest.approx(results["val_acc"]) and 0 <= trial["value"] <= 1
    assert (out / "history.png").stat().st_size > 0

    assert main(["sweep", "report", str(out), "--best", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retrain"] == f"moderncnn train --config {out / 'best.yaml'}"
    best = TrainConfig.load(out / "best.yaml")
    assert best.lr == trials[report["best"]]["params"]["lr"] and best.run_dir is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"space": {"lrr": {"low": 0.1, "high": 1.0}}}, "space 'lrr' is no setting; valid:"),
        ({"space": {"batch_size": {"low": 16.5, "high": 64}}}, "space 'batch_size': batch_size is an integer setting"),
        ({"space": {"optimizer": {"low": 1, "high": 2}}}, "space 'optimizer': a range needs a numeric setting"),
        ({"space": {"lr": {"low": -1.0, "high": 1.0}}}, "space 'lr' = -1.0: lr must be positive"),
        ({"space": {"lr": {"low": 0.1, "high": "high"}}}, "space 'lr': low, high and step must be numbers"),
        (
            {"space": {"optimizer": {"choices": ["sgd", "lion"]}}},
            "space 'optimizer' = 'lion': optimizer must be one of",
        ),
        ({"space": {"model_kwargs": {"width": {"low": 1, "high": 2}}}}, "space 'model_kwargs.width' = 1: lenet_bn"),
        ({"base": {"model": "lenet_bn", "epochz": 2}}, "sweep field 'base': unknown settings epochz"),
        ({"objective": "test_acc"}, "sweep field 'objective' must be one of val_acc, best_val_acc, val_loss"),
        ({"trials": 0}, "sweep field 'trials' must be an integer of at least 1"),
        ({"pruner": "asha"}, "sweep field 'pruner' must be one of median, hyperband, none"),
        ({"budget": 3}, "unknown sweep key 'budget'"),
        ({"constraints": {"params": {"low": 10**9}}}, "constraint 'params' {'low': 1000000000} cannot be met"),
        ({"constraints": {"flops": {"low": 1}}}, "unknown constraint 'flops'; valid: params"),
    ],
)
def test_a_bad_sweep_file_is_refused_in_one_line_naming_the_field(tmp_path, capsys, change, message):
    raw = {**yaml.safe_load(SMALLEST), **change}
    with pytest.raises(ConfigError, match=None) as caught:
        parse_spec(raw)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    capsys.readouterr()
    assert main(["sweep", str(_write(tmp_path, raw)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moderncnn sweep: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_constraint_rejects_networks_before_they_train(tmp_path):
    # lenet_bn's classifier is sized for its input: at 28 px it has 44,878 parameters, at 32 px more. A constraint
    # that admits only the first rejects every 32 px trial before it trains.
    from moderncnn.registry import create_model
    from moderncnn.sweep import run_sweep

    raw = {**TINY, "space": {"resize": {"choices": [28, 32]}}, "constraints": {"params": {"high": 44_878}}}
    run_sweep(parse_spec({**raw, "trials": 2, "seed": 0}, name="narrow"), tmp_path / "narrow", quiet=True)
    trials = _trials(tmp_path / "narrow")
    trained = [t for t in trials if "rejected" not in t.user_attrs]
    assert len(trained) == 2 and {t.state.name for t in trained} == {"COMPLETE"}
    assert len(trials) > 2  # the seed samples 32 px before the second 28 px trial
    for trial in trials:
        params = sum(p.numel() for p in create_model("lenet_bn", input_size=trial.params["resize"]).parameters())
        assert (trial in trained) == (params <= 44_878)
        if trial not in trained:  # pruned before training: no run directory
            assert trial.state.name == "PRUNED" and "run_dir" not in trial.user_attrs
            assert trial.user_attrs["rejected"] == f"{params:,} parameters, outside [0, 44,878]"
    assert sorted(p.name for p in (tmp_path / "narrow").glob("trial-*")) == [f"trial-{t.number:04d}" for t in trained]


def _trials(out) -> list:
    from moderncnn.sweep.report import load_study

    return load_study(out)[0].get_trials()


def _check_no_trial_twice_none_lost(out, target: int) -> list:
    """Every trial ran in its own run directory once; the study holds ``target`` trials that trained."""
    trials = _trials(out)
    trained = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(trained) >= target and not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    dirs = [t.user_attrs["run_dir"] for t in trained]
    assert len(dirs) == len(set(dirs))  # no two trials in one directory
    for trial in trained:
        rows = (out / trial.user_attrs["run_dir"] / "metrics.csv").read_text().strip().splitlines()[1:]
        assert [int(r.split(",")[0]) for r in rows] == list(range(len(trial.intermediate_values)))  # each epoch once
    return trials


@pytest.mark.slow  # worker processes: .ci/run runs these after `make test`
def test_two_workers_share_one_sqlite_study_with_no_trial_run_twice_and_none_lost(tmp_path):
    from moderncnn.sweep import run_sweep

    spec = parse_spec(TINY, name="two")
    run_sweep(spec, tmp_path / "two", workers=2, quiet=True)
    trials = _check_no_trial_twice_none_lost(tmp_path / "two", TINY["trials"])
    # Run by the worker processes (how many each took depends on how fast each started), not by this one.
    assert os.getpid() not in {t.user_attrs["owner"]["pid"] for t in trials}


@pytest.mark.slow  # worker processes: .ci/run runs these after `make test`
def test_a_killed_worker_leaves_its_trial_failed_and_it_is_retried_when_the_command_runs_again(tmp_path):
    spec = _write(tmp_path, {**TINY, "base": {**TINY["base"], "epochs": 2}})
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "moderncnn.cli", "sweep", str(spec), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = time.monotonic()
    while not (out / "trial-0000" / "config.yaml").exists():  # written once the trial starts training
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() - started < 120
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(3.5)  # the heartbeat's grace period (3 x 1 s) passes
    from moderncnn.sweep import load_spec, run_sweep

    run_sweep(load_spec(spec), out, quiet=True)  # the same command again, here in-process
    trials = _check_no_trial_twice_none_lost(out, TINY["trials"])
    killed = trials[0]
    assert killed.state.name == "FAIL" and not (out / "trial-0000" / "results.json").exists()
    retries = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state.name == "COMPLETE"


def test_a_journal_file_storage_fails_a_dead_workers_trial_and_retries_it(tmp_path):
    # Optuna gives journal storages no heartbeat: a running trial whose worker process on this host is gone is failed
    # and queued again (Optuna's RetryHeartbeatStaleTrialCallback) when the command runs again.
    import socket

    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from moderncnn.sweep import run_sweep
    from moderncnn.sweep.worker import open_study

    spec = parse_spec({**TINY, "trials": 1}, name="journal")
    storage = f"journal:{tmp_path / 'journal.log'}"
    study = open_study(spec, storage)
    dead = study.ask({"lr": FloatDistribution(0.05, 0.5, log=True), "momentum": CategoricalDistribution([0.0, 0.9])})
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead.set_user_attr("owner", {"host": socket.gethostname(), "pid": int(gone.stdout)})
    run_sweep(spec, tmp_path / "journal", storage=storage, quiet=True)
    trials = _trials(tmp_path / "journal")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["retry_of"] == 0


def _postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (initdb, pg_ctl), the newest version first."""
    import shutil

    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file():
            return folder
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on a free 127.0.0.1 port, its files in a temporary folder; stopped afterwards.
    initdb refuses root, so as root the server runs as the `postgres` user (Debian's package creates it)."""
    import pwd
    import shutil
    import socket
    import tempfile

    pytest.importorskip("psycopg", reason="the PostgreSQL driver (psycopg, in the dev extras) is missing")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); the SQLite tests still run")
    prefix = []
    folder = Path(tempfile.mkdtemp(prefix="moderncnn-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user for initdb, which refuses root")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"

    def run(*argv):
        subprocess.run(prefix + [str(bindir / argv[0]), *argv[1:]], check=True, capture_output=True, timeout=120)

    run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # worker processes: .ci/run runs these after `make test`
def test_a_postgresql_server_serves_one_study_to_two_workers(tmp_path, postgres):
    from moderncnn.sweep import run_sweep

    spec = parse_spec(TINY, name="pg")
    run_sweep(spec, tmp_path / "pg", workers=2, storage=postgres, quiet=True)
    assert yaml.safe_load((tmp_path / "pg" / "sweep.yaml").read_text())["storage"] == postgres
    trials = _check_no_trial_twice_none_lost(tmp_path / "pg", TINY["trials"])
    assert os.getpid() not in {t.user_attrs["owner"]["pid"] for t in trials}
