"""Writing safely: locations checked before the work, atomic writes, one-line errors naming the path; figure paths."""

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moderncnn import files
from moderncnn.data import load_dataset
from moderncnn.data.preview import MAX_COUNT, preview_grid
from moderncnn.errors import ModernCNNError, OutputError, UsageError
from moderncnn.files import abandoned, atomic_path, ensure_writable, make_folder, mark_owner, write_text
from moderncnn.plotting import figure_path, pyplot, save_figure

ROOT = os.geteuid() == 0  # root writes into read-only folders: the tests use places no one can write to as well


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A path no one can write, not even root: it goes through a regular file."""
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "sub" / "out.png"


def one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------- ensure_writable


def test_ensure_writable_refuses_a_path_through_a_file_naming_both(blocked):
    with pytest.raises(OutputError) as caught:
        ensure_writable(blocked)
    text = one_line(caught.value)
    assert str(blocked) in text and f"{blocked.parent.parent} is a file, not a folder" in text
    assert isinstance(caught.value, ModernCNNError) and isinstance(caught.value, OSError)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_ensure_writable_refuses_a_folder_that_takes_no_files():
    with pytest.raises(OutputError, match=r"cannot write /proc/moderncnn-test/grid\.png: "):
        ensure_writable("/proc/moderncnn-test/grid.png")


@pytest.mark.skipif(ROOT, reason="root ignores permission bits")
def test_ensure_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"ro/x\.png: permission denied"):
            ensure_writable(folder / "x.png")
    finally:
        folder.chmod(0o755)


def test_ensure_writable_refuses_a_full_device(tmp_path, monkeypatch):
    usage = files.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage._replace(free=300 * 1024))
    with pytest.raises(OutputError) as caught:
        ensure_writable(tmp_path / "model.onnx", need_bytes=50 << 20)
    assert "has 300.0 KB free and this needs about 50.0 MB" in one_line(caught.value)
    with pytest.raises(OutputError, match="needs about 1.0 MB"):  # nothing is written to a nearly full disk
        ensure_writable(tmp_path / "grid.png")


def test_ensure_writable_accepts_missing_folders_and_leaves_no_trace(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.png"
    assert ensure_writable(target) == target
    assert os.listdir(tmp_path) == []  # no folder made, no probe file left
    with pytest.raises(OutputError, match="it is a folder; give a file name"):
        ensure_writable(tmp_path)
    assert ensure_writable(tmp_path, folder=True) == tmp_path


# ------------------------------------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "deep" / "results.json"
    write_text(target, "first")
    write_text(target, "second")
    assert target.read_text() == "second" and os.listdir(target.parent) == ["results.json"]


def test_a_write_that_fails_midway_keeps_the_old_file_and_names_the_path(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(OutputError) as caught, atomic_path(target) as tmp:
        tmp.write_text("half of the new conte")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert one_line(caught.value).startswith(f"cannot write {target}: disk full (no space left on the device); ")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(KeyError), atomic_path(target) as tmp:  # any other error: the same clean-up, unchanged
        tmp.write_text("new")
        raise KeyError("bug")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_make_folder_names_the_file_in_the_way(tmp_path):
    (tmp_path / "runs").write_text("")
    runs = tmp_path / "runs"
    with pytest.raises(OutputError, match=f"^cannot write {runs}: {runs} is a file, not a folder"):
        make_folder(runs)
    with pytest.raises(OutputError, match=f"^cannot write {runs}/a/x.png: {runs} is a file, not a folder"):
        make_folder(runs / "a", target=runs / "a" / "x.png")


# ------------------------------------------------------------------------------------- folders owned by a process


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_folder_of_a_dead_process_on_this_host_is_abandoned(tmp_path):
    mine, dead, elsewhere, unmarked = (tmp_path / n for n in ("mine", "dead", "elsewhere", "unmarked"))
    for folder in (mine, dead, elsewhere, unmarked):
        folder.mkdir()
    mark_owner(mine)
    owner = {"pid": dead_pid(), "host": socket.gethostname(), "started": time.time()}
    (dead / files.OWNER_FILE).write_text(json.dumps(owner))
    (elsewhere / files.OWNER_FILE).write_text(json.dumps({**owner, "host": "another-host"}))
    assert not abandoned(mine) and abandoned(dead) and not abandoned(elsewhere)
    assert not abandoned(unmarked)  # just made: its process may be about to mark it
    old = time.time() - 2 * 3600
    os.utime(unmarked, (old, old))
    assert abandoned(unmarked)


# ------------------------------------------------------------------------------------------------------ figures


@pytest.mark.parametrize(
    "given, expected",
    [
        ("grid.png", "grid.png"),
        ("grid.PDF", "grid.PDF"),
        ("grid.svg", "grid.svg"),
        ("grid", "grid.png"),
        ("run.v2", "run.v2.png"),
        ("img/", "img/preview.png"),  # a folder, by its trailing slash, made when missing
        ("existing", "existing/preview.png"),  # a folder, because it is one
    ],
)
def test_figure_path_rule(tmp_path, given, expected):
    (tmp_path / "existing").mkdir()
    assert figure_path(f"{tmp_path}/{given}", "preview.png") == tmp_path / expected


def test_save_figure_writes_where_the_rule_says_and_frees_the_figure(tmp_path, blocked):
    plt = pyplot()
    fig, _ = plt.subplots()
    assert save_figure(fig, f"{tmp_path}/img/", default_name="x.png") == tmp_path / "img" / "x.png"
    assert (tmp_path / "img" / "x.png").read_bytes()[:4] == b"\x89PNG"
    fig, _ = plt.subplots()
    with pytest.raises(OutputError, match=f"cannot write {blocked}"):
        save_figure(fig, blocked)
    assert plt.get_fignums() == []


# ------------------------------------------------------------------------------------------------ data preview


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic:image_size=12,num_train=40,num_test=10")


@pytest.mark.parametrize("count", [-1, 0, MAX_COUNT + 1, 2.5, True])
def test_preview_refuses_a_count_that_is_not_a_number_of_images(synthetic, tmp_path, count):
    with pytest.raises(UsageError) as caught:
        preview_grid(synthetic, tmp_path / "g.png", count=count)
    assert one_line(caught.value) == f"count must be a number of images from 1 to {MAX_COUNT}, got {count!r}"
    assert os.listdir(tmp_path) == []


def test_preview_writes_where_it_says(synthetic, tmp_path):
    assert preview_grid(synthetic, f"{tmp_path}/img/", count=3) == tmp_path / "img" / "preview.png"
    assert preview_grid(synthetic, tmp_path / "grid", count=3) == tmp_path / "grid.png"
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "img"] and os.listdir(tmp_path / "img") == ["preview.png"]


def test_preview_checks_its_output_before_drawing(synthetic, blocked, monkeypatch):
    import moderncnn.data.preview as preview

    monkeypatch.setattr(preview, "pyplot", lambda: pytest.fail("drew a figure for an unwritable location"))
    with pytest.raises(OutputError, match=f"cannot write {blocked}: .* is a file, not a folder"):
        preview_grid(synthetic, blocked)


def test_cli_data_preview_refuses_a_bad_count_and_prints_the_path_it_wrote(capsys, tmp_path):
    from moderncnn.cli import main

    data = "synthetic:image_size=12,num_train=40,num_test=10"
    for count in ("-1", "0"):
        assert main(["data", "preview", data, "--count", count, "--out", str(tmp_path / "g.png")]) == 2
        out, err = capsys.readouterr()
        assert (
            out == "" and err == f"moderncnn data: error: count must be a number of images from 1 to 256, got {count}\n"
        )
    assert main(["data", "preview", data, "--count", "2", "--out", str(tmp_path / "img")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'img.png'}\n" and (tmp_path / "img.png").is_file()
    assert main(["data", "preview", data, "--count", "2", "--out", f"{tmp_path}/grids/"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'grids' / 'preview.png'}\n"
    assert sorted(os.listdir(tmp_path)) == ["grids", "img.png"]


# ----------------------------------------------------------------- issue 25, causes 1 and 2: targets never written


def test_the_record_of_a_run_is_refused_and_its_figures_are_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: lenet\n")
    assert files.RunDir.record_holding(run / "config.yaml") is None  # a config alone makes no run
    (run / "metrics.csv").write_text("epoch\n")
    for inside in ("config.yaml", "metrics.csv", "results.json", "checkpoints/best.ckpt", "tensorboard/v0/events"):
        with pytest.raises(OutputError, match="belongs to the run directory"):
            ensure_writable(run / inside)
        with pytest.raises(OutputError, match="belongs to the run directory"), atomic_path(run / inside) as tmp:
            tmp.write_text("x")
    with pytest.raises(OutputError, match="belongs to the run directory"):
        ensure_writable(run / "checkpoints" / "repo", folder=True)
    assert (run / "config.yaml").read_text() == "model: lenet\n" and (run / "metrics.csv").read_text() == "epoch\n"
    write_text(run / "curves.png", "redrawn")  # a figure of the run, and files of a folder that is no run
    write_text(tmp_path / "config.yaml", "x")
    ensure_writable(tmp_path / "other" / "checkpoints" / "best.ckpt")


def test_a_device_node_is_refused_before_and_during_a_write():
    for method in (lambda: ensure_writable("/dev/null"), lambda: write_text("/dev/null", "x")):
        with pytest.raises(OutputError) as caught:
            method()
        assert one_line(caught.value) == (
            "cannot write /dev/null: it is a character device, not a regular file; give the name of a file to write"
        )
    assert Path("/dev/null").is_char_device()


def test_atomic_path_does_not_replace_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="FIFO"), atomic_path(fifo) as tmp:
        tmp.write_text("x")
    assert Path(fifo).is_fifo() and [p.name for p in tmp_path.iterdir()] == ["pipe"]
