"""Predict and export: image files through a run's preprocessing, and exports checked against the eager network."""

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import moderncnn as mc
from moderncnn.cli import main
from moderncnn.deploy import ExportError, export, export_module, predict
from moderncnn.engine import make_config, train
from moderncnn.run.checkpoint import load_run

export_module_file = importlib.import_module("moderncnn.deploy.export")  # the function `export` shadows the module

TOLERANCE = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root: Path, channels: int) -> Path:
    dataset = f"synthetic:image_size=28,channels={channels},num_train=256,num_test=64"
    config = make_config(
        "lenet_bn", dataset=dataset, epochs=1, batch_size=64, limit_batches=2, run_dir=str(root / f"run{channels}")
    )
    return train(config, quiet=True).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """Two tiny trained runs of BN-LeNet: on grey (1-channel) and on RGB (3-channel) 28 px images."""
    root = tmp_path_factory.mktemp("runs")
    return {1: _train(root, 1), 3: _train(root, 3)}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Grey and RGB images of several sizes and formats in a class-named folder, a corrupt PNG and a text file."""
    root = tmp_path_factory.mktemp("images")
    folder = root / "18deg"  # one of the synthetic dataset's class names
    folder.mkdir()
    rng = np.random.default_rng(0)

    def pixels(*shape):
        return rng.integers(0, 256, shape, dtype=np.uint8)

    Image.fromarray(pixels(40, 30)).save(folder / "grey_40x30.png")
    Image.fromarray(pixels(20, 20, 3)).save(folder / "rgb_20x20.png")
    Image.fromarray(pixels(64, 50, 3)).save(folder / "rgb_64x50.jpg", quality=95)
    Image.fromarray(pixels(28, 28)).save(folder / "grey_28x28.jpeg")
    Image.fromarray(pixels(33, 45, 3)).save(root / "rgb_33x45.bmp")
    Image.fromarray(pixels(30, 30, 3)).convert("P").save(folder / "palette_30x30.gif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    (root / "notes.txt").write_text("not an image, and not named like one: ignored in a folder")
    return root


READABLE = {"grey_40x30.png", "rgb_20x20.png", "rgb_64x50.jpg", "grey_28x28.jpeg", "rgb_33x45.bmp", "palette_30x30.gif"}


def by_hand(path: str, info) -> torch.Tensor:
    """The network's input for one image, built with PIL and numpy only (float resize), not moderncnn's code."""
    mode = "L" if info.in_channels == 1 else "RGB"
    with Image.open(path) as im:
        array = np.asarray(im.convert(mode), dtype=np.float32).reshape(im.height, im.width, -1) / 255
    size = info.input_size
    channels = []
    for c in range(array.shape[-1]):
        plane = Image.fromarray(array[..., c], mode="F").resize((size, size), Image.BILINEAR)  # antialiased
        channels.append((np.asarray(plane) - info.mean[c]) / info.std[c])
    return torch.from_numpy(np.stack(channels)).float()


# ---------------------------------------------------------------------------------------------------- predict


def test_predict_skips_a_corrupt_file_by_name_and_predicts_the_others(runs, images):
    predictions, failures = predict(runs[1], images)
    assert sorted(Path(p.path).name for p in predictions) == sorted(READABLE)
    assert [(Path(f.path).name, f.reason) for f in failures] == [
        ("broken.png", "not an image (no format PIL can read)")
    ]
    # The folder names a class: that is the true label; the .bmp beside the folder has none.
    truth = {Path(p.path).name: p.true_label for p in predictions}
    assert truth["rgb_64x50.jpg"] == "18deg" and truth["rgb_33x45.bmp"] is None


@pytest.mark.parametrize("channels", [1, 3])
def test_prediction_equals_the_network_on_the_image_preprocessed_by_hand(runs, images, channels):
    # Grey and RGB files of other sizes, into a grey and an RGB network: conversion, resize, scale, normalisation.
    net, info = load_run(runs[channels] / "checkpoints" / "best.ckpt")
    predictions, _ = predict(runs[channels], images, top_k=10)
    assert len(predictions) == len(READABLE)
    names = info.class_names
    scale = torch.tensor(info.std)[:, None, None], torch.tensor(info.mean)[:, None, None]
    for p in predictions:
        x = by_hand(p.path, info)
        with torch.no_grad():
            expected = torch.log_softmax(net(x[None]), dim=1)[0]
            not_normalised = torch.log_softmax(net(x[None] * scale[0] + scale[1]), dim=1)[0]
        assert p.label == names[int(expected.argmax())]
        # Log-probabilities: a barely trained network's probabilities are all near 1/10, its logits less alike.
        got = torch.tensor([p.probs[p.classes.index(name)] for name in names]).log()
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        # The comparison can tell: leaving out one step of the preprocessing moves them far more than that.
        assert (not_normalised - expected).abs().max() > 20 * 1e-5


def test_top_k_is_ordered_and_probabilities_sum_to_at_most_one(runs, images):
    predictions, _ = predict(runs[1], images, top_k=3, batch_size=2)  # batches of 2: a batch ends mid-folder
    for p in predictions:
        assert len(p.classes) == 3 == len(set(p.classes))
        assert p.probs == sorted(p.probs, reverse=True) and p.prob == p.probs[0] and p.label == p.classes[0]
        assert 0 < sum(p.probs) <= 1 + 1e-6
    everything, _ = predict(runs[1], images, top_k=100)  # more than the 10 classes: all of them
    assert all(len(p.classes) == 10 and sum(p.probs) == pytest.approx(1, abs=1e-5) for p in everything)
    # The batch size does not change the results (beyond float rounding: convolutions pick kernels by batch size).
    batched = predict(runs[1], images, top_k=3, batch_size=64).predictions
    assert [p.classes for p in batched] == [p.classes for p in predictions]
    torch.testing.assert_close([p.probs for p in batched], [p.probs for p in predictions], atol=1e-6, rtol=0)


def test_predict_takes_a_checkpoint_file_and_refuses_other_files(runs, images, tmp_path):
    image = images / "18deg" / "rgb_20x20.png"
    from_file = predict(runs[1] / "checkpoints" / "last.ckpt", [image]).predictions
    from_run = predict(runs[1], [image], checkpoint="last").predictions
    assert from_file == from_run and len(from_file) == 1
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="not a moderncnn training checkpoint"):
        predict(tmp_path / "foreign.ckpt", [image])


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_predict_json_names_the_corrupt_file_and_exits_1(runs, images, capsys):
    code, out, err = run_cli(capsys, "predict", runs[1], images, "--json", "--top-k", "2")
    data = json.loads(out)
    assert code == 1
    assert sorted(Path(p["path"]).name for p in data["predictions"]) == sorted(READABLE)
    assert all(len(p["top_k"]) == 2 and p["label"] == p["top_k"][0]["class"] for p in data["predictions"])
    assert [Path(f["path"]).name for f in data["failures"]] == ["broken.png"]
    assert "broken.png" in err and err.count("\n") == 1


def test_cli_predict_csv_table_and_grid_smoke(runs, images, capsys, tmp_path, monkeypatch):
    readable = [images / "18deg" / name for name in ("grey_40x30.png", "rgb_64x50.jpg")]
    code, out, err = run_cli(
        capsys, "predict", runs[1], *readable, "--csv", "--top-k", "2", "--show", tmp_path / "g.png"
    )
    rows = out.splitlines()
    assert code == 0
    assert rows[0] == "path,class_1,prob_1,class_2,prob_2" and len(rows) == 3
    assert "wrote" in err and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.chdir(images)  # short paths: the table wraps long ones
    code, out, _ = run_cli(capsys, "predict", runs[1], "18deg/grey_40x30.png", "18deg/rgb_64x50.jpg")
    assert code == 0 and "18deg/grey_40x30.png" in out and "18deg/rgb_64x50.jpg" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/no-such-run", "{images}"], "no run directory or checkpoint at"),
        (["{run}", "{tmp}"], "no image files in"),  # an empty folder
        (["{run}", "{tmp}/missing.png"], "not found: "),
        (["{run}", "{images}", "--top-k", "0"], "top_k must be a positive integer"),
        (["{run}", "{images}", "--device", "warp"], "unknown device"),
    ],
)
def test_cli_predict_usage_errors_are_one_line_with_exit_2(runs, images, tmp_path, capsys, args, message):
    argv = [a.format(tmp=tmp_path, images=images, run=runs[1]) for a in args]
    code, out, err = run_cli(capsys, "predict", *argv)
    assert code == 2 and out == ""
    assert err.startswith("moderncnn predict: error: ") and message in err and err.count("\n") == 1


def test_import_moderncnn_stays_light_and_offers_predict():
    code = (
        "import sys, moderncnn; heavy = {'lightning', 'onnx', 'onnxruntime', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy; from moderncnn.deploy.predict import predict; assert moderncnn.predict is predict"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------------- export


def _load_back(fmt: str, path: Path):
    """An export loaded with its own runtime, independently of moderncnn's verification."""
    if fmt in ("onnx", "triton"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
    if fmt == "pt2":
        return torch.export.load(str(path)).module()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated")
        return torch.jit.load(str(path))


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript", "triton"])
def test_export_a_run_writes_a_verified_model_and_its_preprocessing(runs, tmp_path, fmt, record_property):
    out = tmp_path / ("repo" if fmt == "triton" else f"model.{fmt}")
    result = export(runs[1], fmt, out)
    record_property("max_abs_diff", result.max_abs_diff)
    net, info = load_run(runs[1] / "checkpoints" / "best.ckpt")
    if fmt == "triton":
        folder = out / "lenet_bn"
        assert result.path == folder and result.metadata == folder / "preprocessing.json"
        model_file = folder / "1" / "model.onnx"
        config = (folder / "config.pbtxt").read_text()
        for line in ('name: "lenet_bn"', 'platform: "onnxruntime_onnx"', "max_batch_size: 64", 'name: "images"',
                     "dims: [ 1, 28, 28 ]", 'name: "logits"', "dims: [ 10 ]", 'label_filename: "labels.txt"',
                     "data_type: TYPE_FP32", "dynamic_batching { }"):  # fmt: skip
            assert line in config
        assert (folder / "labels.txt").read_text().splitlines() == info.class_names
    else:
        model_file = out
        assert result.path == out and result.metadata == tmp_path / f"model.{fmt}.json"
    meta = json.loads(result.metadata.read_text())
    assert meta["preprocessing"]["mean"] == info.mean and meta["preprocessing"]["std"] == info.std
    assert meta["preprocessing"]["resize"] == [28, 28] and meta["input"]["shape"] == ["batch", 1, 28, 28]
    assert meta["class_names"] == info.class_names and meta["model"] == "lenet_bn"
    assert meta["verification"]["max_abs_diff"] == result.max_abs_diff <= TOLERANCE
    assert (result.opset is not None) == (fmt in ("onnx", "triton")) and meta["opset"] == result.opset
    # Our own check, at a batch size the export's verification did not use.
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(_load_back(fmt, model_file)(x), net(x), atol=TOLERANCE, rtol=0)
    assert not [p for p in model_file.parent.parent.rglob(".moderncnn-export-*")]  # no staging folder left


# The smallest network of each family at (nearly) its smallest input, so every family's layers go through every
# exporter in the normal suite. Textbook networks with a fixed-size classifier are built for that input.
FAMILY_SAMPLES = {
    "lenet": ("lenet", 1, 12),
    "alexnet": ("alexnet_d2l", 1, 65),  # 22M parameters at 65 px; torchvision's alexnet keeps 57M at any size
    "vgg": ("vgg_d2l", 1, 32),  # with width_ratio=8, the textbook's "small VGG" made smaller
    "nin": ("nin", 1, 67),
    "googlenet": ("googlenet_d2l", 3, 16),
    "inception": ("inception_bn", 1, 16),
    "resnet": ("resnet18_d2l", 3, 16),
    "densenet": ("densenet_d2l", 3, 32),
    "airbench": ("airbench94", 3, 16),
}
KWARGS = {"vgg_d2l": {"width_ratio": 8}}


def _network(name: str, channels: int, size: int) -> torch.nn.Module:
    kwargs = dict(KWARGS.get(name, {}))
    if mc.get_model_info(name).fixed_input_size:
        kwargs["input_size"] = size
    return mc.create_model(name, num_classes=7, in_channels=channels, **kwargs)


def test_the_family_samples_cover_every_family():
    assert sorted(FAMILY_SAMPLES) == sorted(mc.list_families())
    for family, (name, _, size) in FAMILY_SAMPLES.items():
        info = mc.get_model_info(name)
        assert info.family == family and size >= info.min_input_size


# "triton" is the ONNX export (torch.onnx, checked with onnxruntime) plus Triton's files, so it stands for "onnx" here;
# the plain "onnx" format of every network is in the slow test below, and of a trained run above.
@pytest.mark.parametrize("fmt", ["triton", "pt2", "torchscript"])
@pytest.mark.parametrize("family", list(FAMILY_SAMPLES))
def test_every_family_exports_to_every_format(tmp_path, family, fmt, record_property):
    name, channels, size = FAMILY_SAMPLES[family]
    net = _network(name, channels, size)
    result = export_module(net, fmt, tmp_path / "out", input_shape=(channels, size, size), name=name)
    record_property("max_abs_diff", result.max_abs_diff)
    assert json.loads(result.metadata.read_text())["class_names"] == [str(i) for i in range(7)]
    # Untrained, these networks' logits are small (0.02 for AlexNet): hold the export to 1e-5 of their size too.
    with torch.no_grad():
        scale = net.eval()(torch.randn(3, channels, size, size)).abs().max().item()
    assert scale > 0 and result.max_abs_diff <= min(TOLERANCE, 1e-5 * scale)


def _calibrate_batchnorm(net: torch.nn.Module, shape: tuple[int, ...]) -> torch.nn.Module:
    """BatchNorm statistics from random batches: activations at a trained network's scale, logits near 1, not 1e7."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(torch.randn(16, *shape))
    return net.eval()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript", "triton"])
@pytest.mark.parametrize("name", mc.list_models())
def test_every_network_exports_to_every_format(tmp_path, name, fmt, record_property):
    # At 32 px or the network's minimum, whichever is larger: the graph is the same at any size (adaptive pooling),
    # except for the textbook networks with a fixed-size classifier, which are built for that size.
    info = mc.get_model_info(name)
    size = max(info.min_input_size, 32)
    shape = (info.in_channels, size, size)
    kwargs = {"input_size": size} if info.fixed_input_size else {}
    net = _calibrate_batchnorm(mc.create_model(name, num_classes=10, in_channels=info.in_channels, **kwargs), shape)
    # The export must be as close to the network as the network's own float32 arithmetic is to exact: in the
    # deepest ResNets that is about 1e-3 (ResNet-152), so 1e-4 alone would fail faithful exports.
    tolerance = max(TOLERANCE, 2 * export_module_file.float32_error(net, shape))
    result = export_module(net, fmt, tmp_path / "out", input_shape=shape, name=name, tolerance=tolerance)
    record_property("max_abs_diff", result.max_abs_diff)  # in --junitxml reports
    assert result.max_abs_diff <= tolerance


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript", "triton"])
def test_an_export_that_differs_is_refused_with_its_difference_and_leaves_nothing(tmp_path, monkeypatch, fmt):
    real = export_module_file._load_exported

    def perturbed(format, path):
        run = real(format, path)
        return lambda x: run(x) + 3e-4

    monkeypatch.setattr(export_module_file, "_load_exported", perturbed)
    out = tmp_path / "exports" / "model"
    message = r"differs from the eager network by 0\.0003 .*tolerance 0\.0001.* float32 logits differ from float64"
    with pytest.raises(ExportError, match=message):
        export_module(_network("lenet", 1, 12), fmt, out, input_shape=(1, 12, 12))
    # Neither the model, its JSON, the staging folder, nor the folder made for them.
    assert os.listdir(tmp_path) == []


def test_a_failed_export_keeps_the_earlier_good_one(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model.onnx"
    good = export(runs[1], "onnx", out)
    before = out.read_bytes(), good.metadata.read_text()
    monkeypatch.setattr(export_module_file, "max_abs_diff", lambda *args: float("nan"))
    code, out_text, err = run_cli(capsys, "export", runs[1], "--format", "onnx", "--out", out)
    assert code == 2 and out_text == ""
    assert err.startswith("moderncnn export: error: the onnx export differs from the eager network by nan")
    assert (out.read_bytes(), good.metadata.read_text()) == before


def test_torchscript_missing_from_torch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delattr(torch.jit, "trace")
    with pytest.raises(ExportError, match="has no TorchScript"):
        export_module(_network("lenet", 1, 12), "torchscript", tmp_path / "m.pt", input_shape=(1, 12, 12))


def test_cli_export_prints_the_measured_difference(runs, tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", runs[3], "--format", "pt2", "--out", tmp_path / "m.pt2")
    assert code == 0 and err == ""
    assert out.startswith(f"wrote {tmp_path / 'm.pt2'} (pt2): max abs difference from the eager network ")
    assert f"preprocessing and class names: {tmp_path / 'm.pt2.json'}" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/no-such-run", "--format", "onnx"], "no run directory or checkpoint at"),
        (["{run}", "--format", "tflite"], "unknown export format 'tflite'; choose one of onnx, pt2, torchscript"),
        (["{run}", "--format", "onnx", "--out", "{tmp}"], "is a directory"),
        (["{run}", "--format", "triton", "--name", "a/b"], "a Triton model name uses"),
    ],
)
def test_cli_export_errors_are_one_line_with_exit_2(runs, tmp_path, capsys, args, message):
    argv = [a.format(tmp=tmp_path, run=runs[1]) for a in args]
    code, out, err = run_cli(capsys, "export", *argv)
    assert code == 2 and out == ""
    assert err.startswith("moderncnn export: error: ") and message in err and err.count("\n") == 1
