"""The `moderncnn` command: models and summary, their JSON, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import moderncnn as mc
from moderncnn.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_lists_every_network(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0
    assert sorted(r["name"] for r in rows) == sorted(mc.list_models())
    assert {"family", "variant", "input_shape", "min_input_size", "params", "flops", "source"} <= set(rows[0])


def test_models_table_for_one_family(capsys):
    code, out, _ = run(capsys, "models", "--family", "densenet")
    assert code == 0
    for name in mc.list_models("densenet"):
        assert name in out
    assert "resnet18" not in out
    assert "239,146" in out  # densenet_uva's parameters


def test_summary_prints_the_books_alexnet(capsys):
    code, out, _ = run(capsys, "summary", "alexnet_d2l", "--input", "1x1x224x224")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "Conv2d output shape:\t torch.Size([1, 96, 54, 54])"
    assert lines[13] == "Flatten output shape:\t torch.Size([1, 6400])"
    assert lines[20] == "Linear output shape:\t torch.Size([1, 10])"
    assert lines[21] == "Total params: 46,764,746"


def test_summary_sizes_a_fixed_head_for_the_requested_input(capsys):
    # The book's lazy layers adapt to the input; so does the summary of a fixed-head network.
    code, out, _ = run(capsys, "summary", "lenet", "--input", "1x1x32x32")
    assert code == 0
    assert "Flatten output shape:\t torch.Size([1, 576])" in out


def test_summary_json(capsys):
    code, out, _ = run(capsys, "summary", "resnet20", "--json", "--num-classes", "100")
    data = json.loads(out)
    assert code == 0
    assert data["model"] == "resnet20" and data["input_shape"] == [1, 3, 32, 32]
    assert data["layers"][-1] == {"name": "fc", "type": "Linear", "output_shape": [1, 100], "params": 6500}
    assert data["total_params"] == mc.count_parameters(mc.create_model("resnet20", num_classes=100))[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "resnt18"], "unknown model 'resnt18'; did you mean resnet18"),
        (["summary", "resnet18", "--input", "1x3x224"], "--input must be NxCxHxW"),
        (["summary", "resnet18", "--input", "1x3xaxb"], "--input must be NxCxHxW"),
        (["summary", "alexnet", "--input", "1x3x32x32"], "needs inputs of at least 63x63, got 32x32"),
        (["summary", "resnet18", "--input", "1x4x64x64"], "in_channels must be 1 (grey) or 3 (RGB), got 4"),
        (["models", "--family", "transformers"], "unknown family 'transformers'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_console_script_smoke():
    """Smoke test: the installed entry point runs and its help lists the subcommands."""
    script = Path(sys.executable).with_name("moderncnn")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "models" in result.stdout and "summary" in result.stdout


def test_data_stats_json_has_the_promised_keys(capsys):
    code, out, _ = run(capsys, "data", "stats", "synthetic:num_classes=4,channels=3", "--val-size", "100", "--json")
    info = json.loads(out)
    assert code == 0
    assert {"splits", "classes", "mean", "std"} <= set(info) and len(info["mean"]) == 3
    assert info["splits"]["val"]["size"] == 100 and sum(info["splits"]["train"]["class_counts"]) == 1900


def test_data_stats_table(capsys):
    code, out, _ = run(capsys, "data", "stats", "synthetic")
    assert code == 0 and "train (2,000)" in out and "0deg" in out and "mean " in out


def test_data_preview_writes_a_png(capsys, tmp_path):
    from PIL import Image

    out = tmp_path / "grid.png"
    code, text, _ = run(capsys, "data", "preview", "synthetic:channels=3", "--augment", "cifar", "--out", str(out))
    assert code == 0 and str(out) in text
    with Image.open(out) as image:
        width, height = image.size
    assert height > width  # eight rows of an image beside its five augmented versions


def test_data_errors_are_one_line(capsys, tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", offline)  # never download in a test
    code, _, err = run(capsys, "data", "stats", "cifar100", "--data-dir", str(tmp_path))
    assert code == 2 and "cifar100 is not in" in err and err.count("\n") == 1
