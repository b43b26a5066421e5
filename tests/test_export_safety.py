"""Exports that fail, are killed or meet an unwritable location leave nothing behind, and say where in one line."""

import errno
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import moderncnn as mc
from moderncnn import files
from moderncnn.deploy import export_module, staging
from moderncnn.errors import OutputError

ex = importlib.import_module("moderncnn.deploy.export")  # the function `export` shadows the module


pytestmark = pytest.mark.usefixtures("one_thread")


def lenet() -> torch.nn.Module:
    return mc.create_model("lenet", num_classes=3, in_channels=1, input_size=12)


def staged(folder):
    return sorted(p.name for p in folder.glob(f"{staging.PREFIX}*"))


def leftover(folder, pid: int, host: str | None = None, age: float = 0.0):
    """A staging folder as an export killed mid-way leaves it: a model file inside, marked with its process."""
    path = folder / f"{staging.PREFIX}{pid}{host or ''}"
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(b"half a model")
    if pid:
        owner = {"pid": pid, "host": host or socket.gethostname(), "started": time.time() - age}
        (path / files.OWNER_FILE).write_text(json.dumps(owner))
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_the_next_export_removes_the_staging_of_dead_exports_only(tmp_path):
    out = tmp_path / "exports" / "model.onnx"
    dead = leftover(out.parent, dead_pid())
    unmarked_old = leftover(out.parent, 0, age=2 * 3600)  # killed before marking it, or from an earlier version
    alive = leftover(out.parent, os.getpid())  # another export of this process, still running
    elsewhere = leftover(out.parent, dead_pid(), host="another-host")  # its process may run there
    unmarked_new = leftover(out.parent, 0, host="-new")  # its export may be about to mark it
    export_module(lenet(), "onnx", out, input_shape=(1, 12, 12))
    assert not dead.exists() and not unmarked_old.exists()
    assert staged(out.parent) == sorted(p.name for p in (alive, elsewhere, unmarked_new))
    for kept in (alive, elsewhere, unmarked_new):  # other tests look for staging folders left anywhere
        shutil.rmtree(kept)


KILLED = textwrap.dedent(
    """
    import importlib, sys, time
    import moderncnn as mc
    ex = importlib.import_module("moderncnn.deploy.export")
    real = ex._write_onnx
    def write_then_hang(*args):
        real(*args)
        print("staged", flush=True)
        time.sleep(600)
    ex._write_onnx = write_then_hang
    net = mc.create_model("lenet", num_classes=3, in_channels=1, input_size=12)
    ex.export_module(net, "triton", sys.argv[1], input_shape=(1, 12, 12), name="lenet")
    """
)


def test_a_killed_triton_export_stages_beside_the_repository_and_is_cleaned_next_time(tmp_path):
    repo = tmp_path / "models"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(repo)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "staged\n"  # the model is written in the staging folder, not yet moved
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (left,) = staged(tmp_path)  # beside the repository...
    assert (tmp_path / left / "lenet" / "1" / "model.onnx").is_file()
    assert json.loads((tmp_path / left / files.OWNER_FILE).read_text())["pid"] == proc.pid
    assert os.listdir(repo) == []  # ...and nothing inside it that a server would try to load
    result = export_module(lenet(), "triton", repo, input_shape=(1, 12, 12), name="lenet")
    assert result.path == repo / "lenet" and staged(tmp_path) == [] and os.listdir(repo) == ["lenet"]


def test_a_failing_triton_export_leaves_no_staging_anywhere(tmp_path, monkeypatch):
    repo = tmp_path / "models"
    export_module(lenet(), "triton", repo, input_shape=(1, 12, 12), name="lenet")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    seen = []
    real = ex._stage_triton

    def stage(net, example, folder, *args):
        seen.append(folder)
        return real(net, example, folder, *args)

    monkeypatch.setattr(ex, "_stage_triton", stage)
    monkeypatch.setattr(ex, "max_abs_diff", lambda *args: float("nan"))
    with pytest.raises(ex.ExportError, match="differs from the eager network by nan"):
        export_module(lenet(), "triton", repo, input_shape=(1, 12, 12), name="lenet")
    assert seen[0].parent.parent == tmp_path  # staged beside the repository, not in it
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # the earlier export, whole


def test_an_unwritable_location_is_refused_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(ex, "_write_onnx", lambda *args: pytest.fail("exported to an unwritable location"))
    target = tmp_path / "a-file" / "model.onnx"
    with pytest.raises(OutputError) as caught:
        export_module(lenet(), "onnx", target, input_shape=(1, 12, 12))
    assert str(caught.value) == (
        f"cannot write {target}: {tmp_path}/a-file is a file, not a folder; choose another location"
    )
    with pytest.raises(OutputError, match="cannot write /proc/models: "):
        export_module(lenet(), "triton", "/proc", input_shape=(1, 12, 12), name="models")


def test_a_full_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    usage = files.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage._replace(free=512 * 1024))
    monkeypatch.setattr(ex, "_write_onnx", lambda *args: pytest.fail("exported to a full disk"))
    with pytest.raises(OutputError, match=r"has 512\.0 KB free and this needs about 1\.\d MB"):
        export_module(lenet(), "onnx", tmp_path / "m.onnx", input_shape=(1, 12, 12))


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_a_disk_that_fills_up_midway_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, fmt):
    def full(save, path):
        path.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "_save_via_buffer", full)
    out = tmp_path / "new" / f"model.{fmt}"
    with pytest.raises(OutputError) as caught:
        export_module(lenet(), fmt, out, input_shape=(1, 12, 12))
    assert str(caught.value).startswith(f"cannot write {out}: disk full (no space left on the device); ")
    assert os.listdir(tmp_path) == []
