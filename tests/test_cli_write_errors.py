"""Commands that write check where first, say what failed in one line, and print what they computed before writing.

These need the command line to turn a ``ModernCNNError`` (here ``OutputError``, an ``OSError``) into one line and
exit code 2, and ``predict --show`` to check its grid's location before predicting and to ask ``predict`` for
thumbnails (issue 17, items 4 and 5).
"""

import json
import os
import stat
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from moderncnn.cli import main
from moderncnn.errors import OutputError


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


@pytest.fixture
def images(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path in paths:
        PIL.Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(path)
    return paths


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A location no one can write, root included: under a regular file."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "out.png"


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(blocked: Path) -> str:
    return f"cannot write {blocked}: {blocked.parent} is a file, not a folder; choose another location\n"


def test_export_to_an_unwritable_location(run, blocked, capsys):
    target = blocked.with_suffix(".onnx")
    code, out, err = cli(capsys, "export", run, "--format", "onnx", "--out", target)
    assert (code, out) == (2, "") and err == "moderncnn export: error: " + refused(target)


def test_data_preview_to_an_unwritable_location(blocked, capsys):
    code, out, err = cli(capsys, "data", "preview", "synthetic:image_size=12,num_train=40", "--out", blocked)
    assert (code, out) == (2, "") and err == "moderncnn data: error: " + refused(blocked)


def test_predict_show_to_an_unwritable_location_is_refused_before_predicting(run, images, blocked, capsys):
    code, out, err = cli(capsys, "predict", run, *images, "--show", blocked)
    assert (code, out) == (2, "") and err == "moderncnn predict: error: " + refused(blocked)


def test_predict_prints_its_table_before_a_grid_that_fails_to_write(run, images, tmp_path, capsys, monkeypatch):
    import errno

    import moderncnn.plotting as figures
    from moderncnn.files import output_error

    def full(path, **kwargs):
        raise output_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(figures, "atomic_path", full)  # the disk fills up after the check
    code, out, err = cli(capsys, "predict", run, *images, "--json", "--show", tmp_path / "grid.png")
    assert code == 2 and [p["path"] for p in json.loads(out)["predictions"]] == [str(p) for p in images]  # not lost
    assert (
        err
        == f"moderncnn predict: error: cannot write {tmp_path / 'grid.png'}: disk full (no space left on the device); "
        + ("choose a location you can write to, with free space\n")
    )
    assert isinstance(output_error("x", OSError(errno.ENOSPC, "")), OutputError)


def test_predict_show_reads_each_image_once(run, images, tmp_path, capsys, monkeypatch):
    # The grid is drawn from thumbnails made while predicting: no full-size image is decoded (or held) twice.
    opened = []
    real = PIL.Image.open

    def counting(fp, *args, **kwargs):
        opened.append(Path(getattr(fp, "name", fp)).name)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting)
    code, _, _ = cli(capsys, "predict", run, *images, "--show", tmp_path / "grid.png")
    assert code == 0 and sorted(opened) == sorted(path.name for path in images)


# ------------------------------------------------------------------- issue 25, causes 1 and 2: what must not be written


def digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("inside", ["checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml", "metrics.csv"])
def test_export_never_writes_over_a_file_of_a_run(run, inside, capsys):
    before = digest(run)
    code, out, err = cli(capsys, "export", run, "--format", "onnx", "--out", run / inside)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert f"cannot write {run / inside}: it belongs to the run directory {run.resolve()}" in err
    assert digest(run) == before


def test_export_beside_a_run_file_does_not_write_its_json_over_results(run, capsys):
    before = digest(run)
    code, _, err = cli(capsys, "export", run, "--format", "torchscript", "--out", run / "results")
    assert code == 2 and f"cannot write {run / 'results.json'}: it belongs to the run directory" in err
    assert digest(run) == before


def test_figures_never_write_over_a_file_of_a_run_even_through_a_symlink(run, images, tmp_path, capsys):
    before = digest(run)
    (tmp_path / "link").symlink_to(run)
    for target in (run / "checkpoints" / "best.png", tmp_path / "link" / "checkpoints" / "x.png"):
        code, out, err = cli(capsys, "predict", run, *images, "--show", target)
        assert (code, out) == (2, "") and f"cannot write {target}: it belongs to the run directory" in err
    code, _, err = cli(capsys, "explain", run, images[0], "--out", run / "tensorboard")
    assert code == 2 and "belongs to the run directory" in err
    assert digest(run) == before


def test_a_fifo_is_never_replaced_by_a_regular_file(run, images, tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for argv in (("export", run, "--format", "onnx", "--out", fifo), ("predict", run, *images, "--show", fifo)):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and err.endswith(
            f"cannot write {fifo}: it is a FIFO (named pipe), not a regular file; give the name of a file to write\n"
        )
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
