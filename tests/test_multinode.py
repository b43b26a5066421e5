"""Two simulated nodes on one machine train like two processes on one node, and only global rank 0 writes a run.

Each "node" is a ``moderncnn train`` process with its own working directory (its own disk) and one CPU device,
launched as Lightning expects on a cluster it does not manage: ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK`` and
``WORLD_SIZE`` in the environment, ``--num-nodes 2``, gloo over 127.0.0.1.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "moderncnn.cli"]
TRAIN = ["train", "lenet_bn", "--dataset", "synthetic:image_size=28,num_train=384,num_test=96", "--epochs", "1",
         "--batch-size", "32", "--val-size", "64", "--accelerator", "cpu", "--strategy", "ddp", "--quiet",
         "--deterministic"]  # fmt: skip
RESULTS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")  # all of metrics.csv but the timing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], cwd: Path, **variables) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1", **variables}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if name not in variables:
            env.pop(name, None)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(CLI + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def results(run: Path) -> tuple[list[tuple[str, ...]], float]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [tuple(row[k] for k in RESULTS) for row in csv.DictReader(f)]
    return rows, json.loads((run / "results.json").read_text())["test_acc"]


def test_two_nodes_train_like_two_local_processes_and_only_rank_0_writes(tmp_path):
    port = str(free_port())
    nodes = [
        start(
            TRAIN + ["--devices", "1", "--num-nodes", "2"],
            tmp_path / f"node{rank}",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            NODE_RANK=str(rank),
            WORLD_SIZE="2",
        )
        for rank in (0, 1)
    ]
    reference = start(TRAIN + ["--devices", "2", "--run-dir", "reference"], tmp_path)
    out0, out1 = (finish(node) for node in nodes)
    finish(reference)

    (run,) = (tmp_path / "node0" / "runs").iterdir()  # one run directory, on node 0
    assert f"run directory: runs/{run.name}" in out0
    assert os.listdir(tmp_path / "node1") == []  # node 1 wrote nothing at all...
    assert "node 1: global rank 0 holds the run (on node 0, 127.0.0.1)" in out1  # ...and said who does
    assert results(run) == results(tmp_path / "reference")
